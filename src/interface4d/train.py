"""Train the 3D CNN (classifier or step-fraction regressor), data-parallel with Horovod.

One process per Horovod rank (``horovodrun -np R -H localhost:R --gloo python -m
interface4d.train ...``); without horovodrun it runs as a single rank. The engine is
``horovod.tensorflow`` with ``hvd.DistributedGradientTape`` in a custom ``tf.function`` step:
``horovod.tensorflow.keras`` is broken on Keras 3 (its DistributedOptimizer silently does not
average gradients; horovod#4290 and the project's stack notes).

Semantics
---------
* ``batch_size`` is per rank; the learning rate is ``learning_rate * ranks`` (linear scaling,
  SGD with the configured momentum).
* Each epoch the training indices are permuted with ``default_rng([seed, 2, epoch])``, truncated
  to a multiple of the number of ranks, and rank ``r`` takes ``perm[r::ranks]``: every rank runs
  the same number of steps with the same batch sizes, so the average of the ranks' mean gradients
  is the mean gradient over the union of their batches.
* Validation: rank ``r`` evaluates ``val[r::ranks]``; sums are allreduced, so the metrics are
  exact over the whole validation split whatever the number of ranks.
* Augmentation (Poisson noise + rotation, :mod:`interface4d.augment`) on training and validation
  examples every epoch; validation draws from the fixed ``augment.val_seed``.
* Dropout seeds are reset at the start of every epoch from (seed, epoch, rank), so a resumed run
  replays the same masks as an uninterrupted one.
* A checkpoint (``ckpt-epochNNNN.npz``: weights, optimizer state, epoch, history, fingerprint) is
  written atomically by rank 0 after every epoch; a start resumes from the latest one whose
  fingerprint (task, model, optimiser except ``epochs``, seeds, augmentation, ranks, dataset
  sha256) matches and whose epoch is <= ``epochs``; rank 0 loads it and broadcasts. Other
  checkpoints are deleted.
* Only rank 0 writes files (besides the test-only per-rank digests).

Outputs: the Keras model (``.keras``), the history CSV (``epoch, loss, accuracy|mae, val_loss,
val_accuracy|val_mae``) and a provenance JSON.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interface4d import versions
from interface4d.config import ConfigError
from interface4d.h5io import atomic_path
from interface4d.reduce import file_sha256

log = logging.getLogger("interface4d.train")

TASKS = ("classify", "regress")
METRIC = {"classify": "accuracy", "regress": "mae"}
OPTIMISER_BLOCK = {"classify": "classifier", "regress": "regressor"}
CKPT_PREFIX = "ckpt-epoch"
CKPT_KEEP = 2
SHUFFLE_STREAM = 2
STATS_STREAM = 4
STATS_EXAMPLES = 512


# --------------------------------------------------------------------------- configuration


def complete_training_config(training_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the ``training`` block against the campaign schema, filling its defaults."""
    from jsonschema import validators

    from interface4d.config import _extend_with_default, load_schema

    schema = load_schema()
    sub = dict(schema["properties"]["training"])
    sub["$defs"] = schema["$defs"]
    sub["$schema"] = schema["$schema"]
    cfg = copy.deepcopy(dict(training_cfg or {}))
    cls = _extend_with_default(validators.validator_for(sub))
    errors = sorted(cls(sub).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"config key 'training.{'.'.join(str(p) for p in e.absolute_path)}' = "
            f"{e.instance!r}: {e.message}"
            for e in errors
        ]
        raise ConfigError("invalid training config:\n  " + "\n  ".join(lines))
    lo, hi = cfg["augment"]["dose"]
    if lo > hi:
        raise ConfigError(f"config key 'training.augment.dose' = {[lo, hi]}: low > high")
    return cfg


# --------------------------------------------------------------------------- data


class _Data:
    """The training and validation splits of one dataset (:class:`interface4d.datasets.H5Examples`,
    batches read on demand by sorted row numbers, never the whole file)."""

    def __init__(self, path: str | Path, task: str):
        from interface4d.datasets import H5Examples

        self.path = Path(path)
        self.task = task
        self.train = H5Examples(self.path, "train")
        try:
            self.val = H5Examples(self.path, "val")
        except BaseException:
            self.train.close()
            raise
        self.example_shape = tuple(int(s) for s in self.train.example_shape)
        if len(self.example_shape) != 3:
            self.close()
            raise ValueError(f"{self.path}: examples must be (nx, k, k), not {self.example_shape}")
        self.train_indices = self.train.indices
        self.val_indices = self.val.indices

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.train.batch(indices)  # any row of the file, whatever the split
        if self.task == "classify":
            if not np.isin(y, (0, 1)).all():
                raise ValueError(f"{self.path}: classification labels must be 0 or 1")
            y = y.astype(np.int32)
        else:
            y = y.astype(np.float32)
        return np.asarray(x, dtype=np.float32), y

    def close(self) -> None:
        self.train.close()
        self.val.close()


def input_statistics(
    data: _Data, seed: int, max_examples: int = STATS_EXAMPLES, batch: int = 64
) -> tuple[np.ndarray, float, int]:
    """Mean training stack (nx, k, k) and one scalar std of the residual ``x - mean``.

    From the raw (not augmented) training examples, at most ``max_examples`` of them (a seeded
    subset). The std is the root of the per-voxel variance averaged over the voxels (falls back
    to the overall std, then 1, if zero). Returns (mean, std, number of examples used).
    """
    idx = data.train_indices
    if len(idx) > max_examples:
        rng = np.random.default_rng([int(seed), STATS_STREAM])
        idx = np.sort(rng.choice(idx, max_examples, replace=False))
    total = np.zeros(data.example_shape, dtype=np.float64)
    total_sq = np.zeros(data.example_shape, dtype=np.float64)
    for i in range(0, len(idx), batch):
        x, _ = data.read(idx[i : i + batch])
        x = x.astype(np.float64)
        total += x.sum(axis=0)
        total_sq += np.square(x).sum(axis=0)
    n = len(idx)
    mean = total / n
    var = np.clip(total_sq / n - np.square(mean), 0.0, None)
    std = float(np.sqrt(var.mean()))
    if not std > 0:
        std = float(mean.std()) or 1.0
    return mean.astype(np.float32), std, n


def shard_indices(indices: np.ndarray, seed: int, epoch: int, rank: int, size: int) -> np.ndarray:
    """This rank's training examples for ``epoch`` (shuffled, equal length on every rank)."""
    perm = np.random.default_rng([int(seed), SHUFFLE_STREAM, int(epoch)]).permutation(indices)
    usable = (len(perm) // size) * size
    return perm[:usable][rank::size]


def _batches(
    data: _Data,
    indices: np.ndarray,
    batch_size: int,
    augment_kw: dict[str, Any],
    pool: ThreadPoolExecutor,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Augmented batches (x with a channel axis, y), the next one prepared in ``pool``."""
    from interface4d.augment import augment_batch

    def prepare(chunk: np.ndarray):
        idx = np.sort(chunk)
        x, y = data.read(idx)
        x = augment_batch(x, idx, **augment_kw)
        return x[..., None], y

    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    pending = pool.submit(prepare, chunks[0]) if chunks else None
    for i in range(len(chunks)):
        batch = pending.result()
        pending = pool.submit(prepare, chunks[i + 1]) if i + 1 < len(chunks) else None
        yield batch


# --------------------------------------------------------------------------- TF pieces


def loss_and_metric_fns(task: str):
    """(mean loss, per-batch metric sum) as TF functions of (y, prediction)."""
    import tensorflow as tf

    if task == "classify":

        def loss_fn(y, pred):
            y = tf.cast(y, tf.int32)
            eps = tf.constant(1e-7, pred.dtype)
            p = tf.gather(tf.clip_by_value(pred, eps, 1.0 - eps), y, axis=1, batch_dims=1)
            return -tf.reduce_mean(tf.math.log(p))

        def metric_sum(y, pred):
            hit = tf.equal(tf.argmax(pred, axis=1, output_type=tf.int32), tf.cast(y, tf.int32))
            return tf.reduce_sum(tf.cast(hit, tf.float32))

    elif task == "regress":

        def loss_fn(y, pred):
            return tf.reduce_mean(tf.square(pred[:, 0] - tf.cast(y, pred.dtype)))

        def metric_sum(y, pred):
            return tf.reduce_sum(tf.abs(pred[:, 0] - tf.cast(y, pred.dtype)))

    else:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    return loss_fn, metric_sum


def make_train_step(model, optimizer, task: str, average_gradients: bool = True):
    """A ``tf.function`` SGD step: ``step(x, y) -> (mean loss, metric sum)``.

    With ``average_gradients`` the tape is a ``hvd.DistributedGradientTape`` (gradients averaged
    over the ranks); ``False`` is the test-only switch that turns the averaging off, so that the
    tests can show they detect it. The tape's sources are the underlying ``tf.Variable``s
    (``v.value``), the gradients are applied to the Keras variables (Keras 3 + Horovod).
    """
    import horovod.tensorflow as hvd
    import tensorflow as tf

    loss_fn, metric_sum = loss_and_metric_fns(task)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loss = loss_fn(y, pred)
        if average_gradients:
            tape = hvd.DistributedGradientTape(tape)
        grads = tape.gradient(loss, [v.value for v in model.trainable_variables])
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, metric_sum(y, pred)

    return step


def make_eval_step(model, task: str):
    """``evaluate(x, y) -> (loss sum, metric sum)`` without dropout."""
    import tensorflow as tf

    loss_fn, metric_sum = loss_and_metric_fns(task)

    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        pred = model(x, training=False)
        n = tf.cast(tf.shape(x)[0], tf.float32)
        return loss_fn(y, pred) * n, metric_sum(y, pred)

    return evaluate


def broadcast_state(model, optimizer, root_rank: int = 0) -> None:
    """Copy rank ``root_rank``'s weights and optimizer state to every rank."""
    import horovod.tensorflow as hvd

    variables = [v.value for v in model.trainable_variables]
    variables += [v.value for v in optimizer.variables]
    hvd.broadcast_variables(variables, root_rank=root_rank)


def reseed_dropout(model, seed: int, epoch: int, rank: int) -> None:
    """Reset every seed generator of ``model`` from (seed, epoch, rank, layer number)."""
    j = 0
    for layer in model.layers:
        gen = getattr(layer, "seed_generator", None)
        if gen is None:
            continue
        s = np.random.default_rng([int(seed), 3, int(epoch), int(rank), j]).integers(2**31)
        gen.state.assign(np.array([s, 0], dtype=str(gen.state.dtype)))
        j += 1


def weights_digest(model) -> dict[str, Any]:
    """sha256 of the trainable weights (float32 bytes, in order) and their sum."""
    h = hashlib.sha256()
    total = 0.0
    for v in model.trainable_variables:
        a = np.ascontiguousarray(v.numpy(), dtype=np.float32)
        h.update(a.tobytes())
        total += float(a.astype(np.float64).sum())
    return {"sha256": h.hexdigest(), "sum": total}


# --------------------------------------------------------------------------- files


def _write_atomic_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _checkpoint_path(checkpoint_dir: Path, epoch: int) -> Path:
    return checkpoint_dir / f"{CKPT_PREFIX}{epoch:04d}.npz"


def list_checkpoints(checkpoint_dir: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the complete checkpoints in ``checkpoint_dir``, oldest first."""
    d = Path(checkpoint_dir)
    out = []
    for p in d.glob(f"{CKPT_PREFIX}*.npz"):
        digits = p.name[len(CKPT_PREFIX) : -len(".npz")]
        if digits.isdigit():
            out.append((int(digits), p))
    return sorted(out)


def save_checkpoint(
    checkpoint_dir: str | Path, epoch: int, model, optimizer, history, fingerprint: str
) -> Path:
    """Write ``ckpt-epochNNNN.npz`` atomically (temp file + rename); keep the last two."""
    d = Path(checkpoint_dir)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "history": history, "fingerprint": fingerprint}
    arrays = {f"model_{i:04d}": v.numpy() for i, v in enumerate(model.trainable_variables)}
    arrays.update({f"opt_{i:04d}": v.numpy() for i, v in enumerate(optimizer.variables)})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = _checkpoint_path(d, epoch)
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    for _, old in list_checkpoints(d)[:-CKPT_KEEP]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, model, optimizer) -> dict[str, Any]:
    """Restore weights and optimizer state; return the checkpoint's meta (epoch, history)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        mv, ov = model.trainable_variables, optimizer.variables
        if sum(k.startswith("model_") for k in z.files) != len(mv) or sum(
            k.startswith("opt_") for k in z.files
        ) != len(ov):
            raise ValueError(f"{path}: does not match the model/optimizer")
        for i, v in enumerate(mv):
            v.assign(z[f"model_{i:04d}"])
        for i, v in enumerate(ov):
            v.assign(z[f"opt_{i:04d}"])
    return meta


def _peek_meta(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z["meta"].tobytes().decode())
    except Exception as exc:  # a damaged file: ignore it, it will be replaced
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None


def write_history_csv(path: str | Path, history: Sequence[Mapping[str, Any]], task: str) -> None:
    m = METRIC[task]
    cols = ["epoch", "loss", m, "val_loss", f"val_{m}"]
    lines = [",".join(cols)]
    for rec in history:
        lines.append(",".join([str(int(rec["epoch"]))] + [repr(float(rec[c])) for c in cols[1:]]))
    _write_atomic_text(Path(path), "\n".join(lines) + "\n")


def read_history_csv(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def _fingerprint(task: str, cfg: Mapping[str, Any], ranks: int, dataset_sha: str) -> str:
    opt = dict(cfg[OPTIMISER_BLOCK[task]])
    opt.pop("epochs", None)
    key = {
        "task": task,
        "model": cfg["model"],
        "optimiser": opt,
        "seed": cfg["seed"],
        "augment": cfg["augment"],
        "ranks": ranks,
        "dataset_sha256": dataset_sha,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- training


def train(
    dataset_h5: str | Path,
    task: str,
    training_cfg: Mapping[str, Any] | None,
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    *,
    model_out: str | Path | None = None,
    history_out: str | Path | None = None,
    provenance_out: str | Path | None = None,
    threads: int | None = None,
    average_gradients: bool = True,
    stop_after_epoch: int | None = None,
    rank_digest_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train one network on ``dataset_h5``; return the final metrics (on every rank).

    ``training_cfg`` is the campaign's ``training`` block (defaults filled here). Outputs (rank 0)
    go to ``model_out``/``history_out``/``provenance_out``, by default ``out_dir/model.keras``,
    ``out_dir/history.csv``, ``out_dir/provenance.json``.

    Test-only options: ``average_gradients=False`` turns the Horovod gradient averaging off;
    ``stop_after_epoch=k`` SIGKILLs the process right after the checkpoint of epoch ``k`` (a hard
    kill: no final outputs); ``rank_digest_dir`` makes every rank write ``rank<r>.json`` with a
    digest of its final weights.
    """
    t_start = time.time()
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    cfg = complete_training_config(training_cfg)
    opt_cfg = cfg[OPTIMISER_BLOCK[task]]
    out_dir = Path(out_dir)
    model_out = Path(model_out) if model_out else out_dir / "model.keras"
    history_out = Path(history_out) if history_out else out_dir / "history.csv"
    provenance_out = Path(provenance_out) if provenance_out else out_dir / "provenance.json"
    if model_out.suffix != ".keras":
        raise ValueError(f"the model file must end in .keras, not {model_out}")
    checkpoint_dir = Path(checkpoint_dir)

    import tensorflow as tf

    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError as exc:  # TF already initialised in this process
            log.warning("cannot set TF threads to %s: %s", threads, exc)
    import horovod.tensorflow as hvd
    import keras

    from interface4d.model import build_model

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    seed = int(cfg["seed"])
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    if rank == 0 and int(cfg["ranks"]) != size:
        log.warning("training.ranks = %s but running with %d Horovod ranks", cfg["ranks"], size)
    data = _Data(dataset_h5, task)
    n_train, n_val = len(data.train_indices), len(data.val_indices)
    if n_train < size:
        data.close()
        raise ValueError(f"{dataset_h5}: {n_train} training examples for {size} ranks")
    dataset_sha = hvd.broadcast_object(file_sha256(dataset_h5) if rank == 0 else None, 0)
    fingerprint = _fingerprint(task, cfg, size, dataset_sha)

    stats = input_statistics(data, seed) if rank == 0 else None
    input_mean, input_std, stats_n = hvd.broadcast_object(stats, 0)
    mc = cfg["model"]
    model = build_model(
        data.example_shape,
        task,
        mc["filters"],
        mc["kernel_size"],
        mc["dense"],
        mc["dropout"],
        input_mean=input_mean,
        input_std=input_std,
    )
    lr = float(opt_cfg["learning_rate"]) * size
    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=float(opt_cfg["momentum"]))
    optimizer.build(model.trainable_variables)

    # Resume: rank 0 picks the latest matching checkpoint and loads it, then broadcasts.
    epochs = int(opt_cfg["epochs"])
    start_epoch, history = 0, []
    if rank == 0:
        for ep, path in reversed(list_checkpoints(checkpoint_dir)):
            meta = _peek_meta(path)
            if meta is not None and meta.get("fingerprint") == fingerprint and ep <= epochs:
                meta = load_checkpoint(path, model, optimizer)
                start_epoch, history = int(meta["epoch"]), list(meta["history"])
                log.info("resuming from checkpoint %s (epoch %d done)", path, ep)
                break
            log.warning(
                "removing checkpoint %s: another config, dataset or rank count, or beyond epoch %d",
                path,
                epochs,
            )
            path.unlink(missing_ok=True)
    start_epoch, history = hvd.broadcast_object((start_epoch, history), 0)
    broadcast_state(model, optimizer, 0)

    train_step = make_train_step(model, optimizer, task, average_gradients)
    eval_step = make_eval_step(model, task)
    batch = int(opt_cfg["batch_size"])
    aug = cfg["augment"]
    metric = METRIC[task]
    timing: list[dict[str, float]] = []
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            reseed_dropout(model, seed, epoch, rank)
            shard = shard_indices(data.train_indices, seed, epoch, rank, size)
            sums = np.zeros(6, dtype=np.float64)  # train loss, metric, n; val loss, metric, n
            train_kw = {
                "split": "train",
                "seed": seed,
                "epoch": epoch,
                "dose_range": aug["dose"],
                "rotation_deg": aug["rotation_deg"],
            }
            for x, y in _batches(data, shard, batch, train_kw, pool):
                loss, msum = train_step(tf.constant(x), tf.constant(y))
                sums[0] += float(loss) * len(y)
                sums[1] += float(msum)
                sums[2] += len(y)
            t_train = time.perf_counter() - t0
            val_kw = dict(train_kw, split="val", seed=int(aug["val_seed"]), epoch=0)
            for x, y in _batches(data, data.val_indices[rank::size], batch, val_kw, pool):
                lsum, msum = eval_step(tf.constant(x), tf.constant(y))
                sums[3] += float(lsum)
                sums[4] += float(msum)
                sums[5] += len(y)
            tot = hvd.allreduce(tf.constant(sums), op=hvd.Sum).numpy()
            t_epoch = time.perf_counter() - t0
            nan = float("nan")
            rec = {
                "epoch": epoch + 1,
                "loss": tot[0] / tot[2],
                metric: tot[1] / tot[2],
                "val_loss": tot[3] / tot[5] if tot[5] else nan,
                f"val_{metric}": tot[4] / tot[5] if tot[5] else nan,
            }
            history.append(rec)
            speed = tot[2] / t_train if t_train > 0 else nan
            timing.append(
                {"epoch": epoch + 1, "train_s": t_train, "epoch_s": t_epoch, "samples_per_s": speed}
            )
            if rank == 0:
                save_checkpoint(checkpoint_dir, epoch + 1, model, optimizer, history, fingerprint)
                log.info(
                    "epoch %d/%d loss %.4f %s %.4f val_loss %.4f val_%s %.4f "
                    "samples/s %.1f (%d ranks, %.1f s)",
                    epoch + 1,
                    epochs,
                    rec["loss"],
                    metric,
                    rec[metric],
                    rec["val_loss"],
                    metric,
                    rec[f"val_{metric}"],
                    speed,
                    size,
                    t_epoch,
                )
            if stop_after_epoch is not None and epoch + 1 == stop_after_epoch:
                hvd.allreduce(tf.constant(0.0), op=hvd.Sum)  # rank 0's checkpoint is on disk
                log.warning("test option: SIGKILL after epoch %d", epoch + 1)
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        pool.shutdown(wait=True)
        data.close()

    final = dict(history[-1]) if history else {}
    final.update({"epochs": epochs, "ranks": size, "resumed_from_epoch": start_epoch})
    if timing:
        final["samples_per_s"] = float(np.mean([t["samples_per_s"] for t in timing]))
    digest = weights_digest(model)
    if rank_digest_dir is not None:
        d = Path(rank_digest_dir)
        d.mkdir(parents=True, exist_ok=True)
        _write_atomic_text(
            d / f"rank{rank}.json", json.dumps({"rank": rank, "size": size, **digest})
        )
    if rank == 0:
        with atomic_path(model_out, ".keras") as tmp:
            model.save(tmp)
        write_history_csv(history_out, history, task)
        provenance = {
            "task": task,
            "training": cfg,
            "dataset": {
                "path": str(Path(dataset_h5).resolve()),
                "sha256": dataset_sha,
                "n_train": n_train,
                "n_val": n_val,
                "example_shape": list(data.example_shape),
            },
            "input_standardisation": {
                "examples": stats_n,
                "std": input_std,
                "mean_of_mean_stack": float(np.mean(input_mean)),
            },
            "ranks": size,
            "seeds": {
                "seed": seed,
                "val_seed": int(aug["val_seed"]),
                "shuffle": f"default_rng([seed, {SHUFFLE_STREAM}, epoch])",
            },
            "optimiser": {
                "name": "SGD",
                "learning_rate_per_rank": float(opt_cfg["learning_rate"]),
                "learning_rate": lr,
                "momentum": float(opt_cfg["momentum"]),
                "batch_size_per_rank": batch,
                "global_batch_size": batch * size,
            },
            "average_gradients": bool(average_gradients),
            "resumed_from_epoch": start_epoch,
            "final": final,
            "weights": digest,
            "timing": timing,
            "wall_time_s": time.time() - t_start,
            "started": datetime.fromtimestamp(t_start, UTC).isoformat(),
            "host": socket.gethostname(),
            "versions": versions("tensorflow", "keras", "horovod", "numpy", "scipy", "h5py"),
        }
        _write_atomic_text(provenance_out, json.dumps(provenance, indent=2, default=float) + "\n")
    return final


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m interface4d.train",
        description="Train the 3D CNN on a descriptor dataset; run under horovodrun for several "
        "ranks (horovodrun -np 2 -H localhost:2 --gloo python -m interface4d.train ...).",
    )
    p.add_argument("--dataset", required=True, help="descriptor HDF5 (x, y, split, cell)")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument(
        "--training-json",
        default="{}",
        help="the campaign's training block as JSON text, or @FILE holding it",
    )
    p.add_argument("--out-dir", default=".", help="default folder of the three outputs")
    p.add_argument("--model-out", help="Keras model file (.keras)")
    p.add_argument("--history-out", help="history CSV")
    p.add_argument("--provenance-out", help="provenance JSON")
    p.add_argument("--checkpoint-dir", required=True, help="per-epoch checkpoints, resumed from")
    p.add_argument("--threads", type=int, default=None, help="TF intra-op threads per rank")
    p.add_argument("-v", "--verbose", action="store_true")
    test = p.add_argument_group("test-only options")
    test.add_argument("--stop-after-epoch", type=int, help="SIGKILL after this epoch's checkpoint")
    test.add_argument(
        "--no-average-gradients",
        action="store_true",
        help="plain GradientTape instead of hvd.DistributedGradientTape (ranks diverge)",
    )
    test.add_argument("--debug-rank-digest", help="folder: each rank writes rank<r>.json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    text = args.training_json
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        training_cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--training-json is not valid JSON: {exc}") from None
    rank = os.environ.get("HOROVOD_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s [rank {rank}] %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        final = train(
            args.dataset,
            args.task,
            training_cfg,
            args.out_dir,
            args.checkpoint_dir,
            model_out=args.model_out,
            history_out=args.history_out,
            provenance_out=args.provenance_out,
            threads=args.threads,
            average_gradients=not args.no_average_gradients,
            stop_after_epoch=args.stop_after_epoch,
            rank_digest_dir=args.debug_rank_digest,
        )
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    if rank == "0":
        log.info("final: %s", json.dumps(final, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
