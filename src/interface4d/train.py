"""Train the 3D CNN (classifier or step-fraction regressor), data-parallel with Horovod.

One process per Horovod rank (``horovodrun -np R -H localhost:R --gloo python -m
interface4d.train ...``); without horovodrun it runs as a single rank. The engine is
``horovod.tensorflow`` with ``hvd.DistributedGradientTape`` in a custom ``tf.function`` step:
``horovod.tensorflow.keras`` is broken on Keras 3 (its DistributedOptimizer silently does not
average gradients; horovod#4290 and the project's stack notes).

Semantics
---------
* Development cells: ``dev_fraction`` (of the network's block) of the training cells (per
  thickness and kind,
  :func:`interface4d.datasets.dev_cells`) are held out of the gradient steps; every epoch ends
  with their loss and metric, early stopping (``patience``) and model selection (the saved
  network is the epoch with the best development loss) look at them alone. The validation rows
  of the dataset are never read here: changing them changes no trained weight.
* ``batch_size`` is the *global* batch, split evenly over the ranks, and the learning rate is
  for it: the same config takes the same steps on any number of ranks (Adam by default, or SGD
  with momentum, the paper's recipe).
* Examples are identified by :func:`interface4d.datasets.example_uid` (their cell and line),
  not by their row in the file: the shuffle and the augmentation draws of a training example do
  not depend on which other cells the file holds.
* Each epoch the training examples are permuted with ``default_rng([seed, 2, epoch])``,
  truncated to a multiple of the number of ranks, and rank ``r`` takes ``perm[r::ranks]``: every
  rank runs the same number of steps with the same batch sizes, so the average of the ranks' mean
  gradients is the mean gradient over the union of their batches (the single-rank batch).
* Classifier loss: cross-entropy, each class weighted by ``n / (2 n_class)`` over the training
  examples with ``class_balance: weights`` (balanced classes whatever the grid).
* Input: the transform of :mod:`interface4d.inputs` and the per-voxel statistics of the
  transformed, augmented training examples are built into the model (:mod:`interface4d.model`).
* Augmentation (Poisson noise + rotation, :mod:`interface4d.augment`) on training examples
  every epoch; development examples draw from the fixed ``augment.val_seed``.
* Dropout seeds are reset at the start of every epoch from (seed, epoch, rank), so a resumed run
  replays the same masks as an uninterrupted one.
* A checkpoint (``ckpt-epochNNNN.npz``: weights, optimizer state, the best epoch's weights,
  epoch, history, fingerprint) is written atomically by rank 0 every ``epochs // 30`` epochs
  (every epoch in runs under 60) and at the last; a start
  resumes from the latest one whose fingerprint (task, model, optimiser except ``epochs``,
  seeds, input, development share, class balance, augmentation, ranks, dataset sha256) matches
  and whose epoch is <= ``epochs``; rank 0 loads it and broadcasts. Other checkpoints are
  deleted.
* Only rank 0 writes files (besides the test-only per-rank digests).

Outputs: the Keras model (``.keras``, the best development epoch), the history CSV (``epoch,
loss, accuracy|mae, dev_loss, dev_accuracy|dev_mae``) and a provenance JSON.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import logging
import math
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
CKPT_PER_RUN = 30  # checkpoints every epochs // 30 epochs (every epoch for runs under 60)
SHUFFLE_STREAM = 2
STATS_STREAM = 4
STATS_EXAMPLES = 512
STATS_MIN_DRAWS = 64  # augmented draws the input statistics rest on, at least


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
    if cfg["classifier"]["skip"] != "none":
        raise ConfigError(
            f"config key 'training.classifier.skip' = {cfg['classifier']['skip']!r}: the "
            "linear skip applies to the step-position regressors only"
        )
    if cfg["classifier"]["mixup"]:
        raise ConfigError(
            f"config key 'training.classifier.mixup' = {cfg['classifier']['mixup']!r}: mixup "
            "applies to the step-position regressors only"
        )
    lo, hi = cfg["augment"]["dose"]
    if lo > hi:
        raise ConfigError(f"config key 'training.augment.dose' = {[lo, hi]}: low > high")
    return cfg


# --------------------------------------------------------------------------- data


class _Data:
    """The training cells of one dataset, split into the cells the gradient steps see (``fit``)
    and the development cells (``dev``); batches read on demand by row number, never the whole
    file. The validation rows are not read."""

    def __init__(self, path: str | Path, task: str, dev_fraction: float, seed: int):
        from interface4d.datasets import H5Examples, cell_strata, dev_cells

        self.path = Path(path)
        self.task = task
        self.train = H5Examples(self.path, "train")
        self.example_shape = tuple(int(s) for s in self.train.example_shape)
        if len(self.example_shape) != 3:
            self.close()
            raise ValueError(f"{self.path}: examples must be (nx, k, k), not {self.example_shape}")
        rows = self.train.indices
        cells = self.train.cells[rows]
        self.dev_cells: list[str] = []
        if dev_fraction > 0:
            labels = self.train.targets(rows) if task == "classify" else None
            strata = cell_strata(cells, labels)
            self.dev_cells = sorted(dev_cells(sorted(set(cells)), dev_fraction, seed, strata))
        on_dev = np.isin(cells, self.dev_cells)
        self.fit_indices = self._by_uid(rows[~on_dev])
        self.dev_indices = self._by_uid(rows[on_dev])
        self.fit_cells = int(len(set(cells[~on_dev])))

    def _by_uid(self, rows: np.ndarray) -> np.ndarray:
        return rows[np.argsort(self.train.uids(rows), kind="stable")]

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.train.batch(indices)
        if self.task == "classify":
            if not np.isin(y, (0, 1)).all():
                raise ValueError(f"{self.path}: classification labels must be 0 or 1")
            y = y.astype(np.int32)
        else:
            y = y.astype(np.float32)
        return np.asarray(x, dtype=np.float32), y

    def labels(self, indices: np.ndarray) -> np.ndarray:
        return self.train.targets(indices).astype(np.int32)

    def close(self) -> None:
        self.train.close()


def class_weights(labels: np.ndarray, balance: str) -> np.ndarray:
    """Loss weight of each class (0 step, 1 intermixing): ``n / (2 n_c)`` with ``balance ==
    'weights'`` (each class weighs the same in the loss), else 1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2).astype(np.float64)
    if balance == "none" or (counts == 0).any():
        return np.ones(2, np.float32)
    return (counts.sum() / (2.0 * counts)).astype(np.float32)


def input_statistics(
    data: _Data,
    seed: int,
    transform_kind: str,
    augment: Mapping[str, Any],
    max_examples: int = STATS_EXAMPLES,
    batch: int = 64,
    min_draws: int = STATS_MIN_DRAWS,
    scale: str = "voxel",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-voxel mean and std (nx, k, k) of the transformed training inputs.

    From the ``fit`` examples (at most ``max_examples`` of them, a seeded subset) as the first
    epochs augment them: as many epochs' draws as make ``min_draws`` augmented examples. A
    regressor has one example per training cell (14 in the demo): one draw each gave per-voxel
    stds from 14 numbers, some voxels' near zero, whose standardised inputs then reached
    gradient norms of ~1000 in the first steps. ``scale``: the std per voxel or one scalar
    (:func:`interface4d.inputs.voxel_statistics`). Returns (mean, std, number of draws used).
    """
    from interface4d.augment import augment_batch
    from interface4d.inputs import transform, voxel_statistics

    idx = data.fit_indices
    if len(idx) > max_examples:
        rng = np.random.default_rng([int(seed), STATS_STREAM])
        idx = idx[np.sort(rng.choice(len(idx), max_examples, replace=False))]
    parts = []
    draws = max(1, math.ceil(min_draws / max(len(idx), 1)))
    for epoch in range(draws):
        for i in range(0, len(idx), batch):
            rows = idx[i : i + batch]
            x, _ = data.read(rows)
            x = augment_batch(
                x,
                data.train.uids(rows),
                split="train",
                seed=seed,
                epoch=epoch,
                dose_range=augment["dose"],
                rotation_deg=augment["rotation_deg"],
            )
            parts.append(transform(x, transform_kind))
    mean, std = voxel_statistics(np.concatenate(parts), transform_kind, scale=scale)
    return mean, std, len(idx) * draws


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
    mixup: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Augmented batches (x with a channel axis, y), in the order of ``indices``, the next one
    prepared in ``pool``. ``mixup > 0`` (training batches of a regressor): each example mixed
    with a partner from the fit examples first (:func:`interface4d.augment.mixup_draws`)."""
    from interface4d.augment import augment_batch, mixup_draws

    def prepare(chunk: np.ndarray):
        x, y = data.read(chunk)
        uids = data.train.uids(chunk)
        if mixup > 0:
            pos, lam = mixup_draws(
                uids,
                seed=augment_kw["seed"],
                epoch=augment_kw["epoch"],
                pool_size=len(data.fit_indices),
                alpha=mixup,
            )
            xp, yp = data.read(data.fit_indices[pos])
            x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * xp
            y = (lam * y + (1 - lam) * yp).astype(np.float32)
        x = augment_batch(x, uids, **augment_kw)
        return x[..., None], y

    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    pending = pool.submit(prepare, chunks[0]) if chunks else None
    for i in range(len(chunks)):
        batch = pending.result()
        pending = pool.submit(prepare, chunks[i + 1]) if i + 1 < len(chunks) else None
        yield batch


# --------------------------------------------------------------------------- TF pieces


def loss_and_metric_fns(task: str, weights: Sequence[float] = (1.0, 1.0), members: int = 1):
    """(mean loss, per-batch metric sum) as TF functions of (y, prediction); the classifier's
    cross-entropy weighs class ``c`` by ``weights[c]``.

    The prediction holds ``members`` networks' outputs side by side ((batch, K) or (batch, 2K),
    :func:`interface4d.model.members_view`): the loss is the mean of the members' own losses
    (each member fits the targets on its own), the metric that of their mean output (the
    ensemble's prediction, what the saved model outputs).
    """
    import tensorflow as tf

    k = int(members)
    if task == "classify":
        w = tf.constant(np.asarray(weights, np.float32))

        def loss_fn(y, pred):
            y = tf.cast(y, tf.int32)
            probs = tf.reshape(pred, (-1, k, 2))
            eps = tf.constant(1e-7, pred.dtype)
            yk = tf.repeat(y[:, None], k, axis=1)
            p = tf.gather(tf.clip_by_value(probs, eps, 1.0 - eps), yk, axis=2, batch_dims=2)
            return -tf.reduce_mean(tf.gather(w, y)[:, None] * tf.math.log(p))

        def metric_sum(y, pred):
            mean = tf.reduce_mean(tf.reshape(pred, (-1, k, 2)), axis=1)
            hit = tf.equal(tf.argmax(mean, axis=1, output_type=tf.int32), tf.cast(y, tf.int32))
            return tf.reduce_sum(tf.cast(hit, tf.float32))

    elif task == "regress":

        def loss_fn(y, pred):
            return tf.reduce_mean(tf.square(pred - tf.cast(y, pred.dtype)[:, None]))

        def metric_sum(y, pred):
            mean = tf.reduce_mean(pred, axis=1)
            return tf.reduce_sum(tf.abs(mean - tf.cast(y, pred.dtype)))

    else:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    return loss_fn, metric_sum


def make_train_step(
    model, optimizer, task: str, average_gradients: bool = True, weights=(1.0, 1.0)
):
    """A ``tf.function`` SGD step: ``step(x, y) -> (mean loss, metric sum, gradient norm)`` (the
    global L2 norm before any clipping).

    With ``average_gradients`` the tape is a ``hvd.DistributedGradientTape`` (gradients averaged
    over the ranks); ``False`` is the test-only switch that turns the averaging off, so that the
    tests can show they detect it. The tape's sources are the underlying ``tf.Variable``s
    (``v.value``), the gradients are applied to the Keras variables (Keras 3 + Horovod). An
    ensemble's members each get the gradient of their own loss (the sum of the members' losses).
    """
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from interface4d.model import members_view

    net, k = members_view(model)
    loss_fn, metric_sum = loss_and_metric_fns(task, weights, k)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            pred = net(x, training=True)
            loss = loss_fn(y, pred)
            total = loss * k if k > 1 else loss
        if average_gradients:
            tape = hvd.DistributedGradientTape(tape)
        grads = tape.gradient(total, [v.value for v in model.trainable_variables])
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, metric_sum(y, pred), tf.linalg.global_norm(grads)

    return step


def make_eval_step(model, task: str, weights=(1.0, 1.0)):
    """``evaluate(x, y) -> (loss sum, metric sum)`` without dropout."""
    import tensorflow as tf

    from interface4d.model import members_view

    net, k = members_view(model)
    loss_fn, metric_sum = loss_and_metric_fns(task, weights, k)

    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        pred = net(x, training=False)
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
    checkpoint_dir: str | Path,
    epoch: int,
    model,
    optimizer,
    history,
    fingerprint: str,
    best: Sequence[np.ndarray] | None = None,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``ckpt-epochNNNN.npz`` atomically (temp file + rename); keep the last two.

    ``best``: the weights of the best development epoch so far; ``state``: JSON-able training
    state (best epoch and score, whether early stopping ended the run)."""
    d = Path(checkpoint_dir)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "history": history, "fingerprint": fingerprint, **(state or {})}
    arrays = {f"model_{i:04d}": v.numpy() for i, v in enumerate(model.trainable_variables)}
    arrays.update({f"opt_{i:04d}": v.numpy() for i, v in enumerate(optimizer.variables)})
    arrays.update({f"best_{i:04d}": np.asarray(a) for i, a in enumerate(best or [])})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = _checkpoint_path(d, epoch)
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    for _, old in list_checkpoints(d)[:-CKPT_KEEP]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, model, optimizer) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Restore weights and optimizer state; return the checkpoint's meta (epoch, history, ...)
    and the best epoch's weights it holds."""
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
        best = [z[k] for k in sorted(k for k in z.files if k.startswith("best_"))]
    return meta, best


def _peek_meta(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z["meta"].tobytes().decode())
    except Exception as exc:  # a damaged file: ignore it, it will be replaced
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None


def write_history_csv(path: str | Path, history: Sequence[Mapping[str, Any]], task: str) -> None:
    m = METRIC[task]
    cols = ["epoch", "loss", m, "dev_loss", f"dev_{m}"]
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
        "input": cfg["input"],
        "class_balance": cfg["class_balance"],
        "augment": cfg["augment"],
        "ranks": ranks,
        "dataset_sha256": dataset_sha,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def make_optimizer(opt_cfg: Mapping[str, Any], steps_per_epoch: int = 1):
    """The configured optimiser (Adam, or SGD with momentum: the paper's) for the global batch;
    a cosine schedule decays the rate to 0 over ``epochs * steps_per_epoch`` steps."""
    import keras

    lr = float(opt_cfg["learning_rate"])
    if opt_cfg.get("schedule", "constant") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, int(opt_cfg["epochs"]) * int(steps_per_epoch))
        )
    decay = float(opt_cfg.get("weight_decay", 0.0)) or None
    clip = float(opt_cfg.get("clip_norm", 0.0)) or None
    if opt_cfg["optimizer"] == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr,
            momentum=float(opt_cfg["momentum"]),
            weight_decay=decay,
            global_clipnorm=clip,
        )
    return keras.optimizers.Adam(learning_rate=lr, weight_decay=decay, global_clipnorm=clip)


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
    """Train one network on the training cells of ``dataset_h5``; return the final metrics (on
    every rank).

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

    want = opt_cfg.get("ranks") or cfg["ranks"]
    if rank == 0 and int(want) != size:
        log.warning("training ranks = %s but running with %d Horovod ranks", want, size)
    data = _Data(dataset_h5, task, float(opt_cfg["dev_fraction"]), seed)
    n_fit, n_dev = len(data.fit_indices), len(data.dev_indices)
    global_batch = int(opt_cfg["batch_size"])
    if n_fit < size or global_batch < size:
        data.close()
        raise ValueError(
            f"{dataset_h5}: {n_fit} training examples and a global batch of {global_batch} for "
            f"{size} ranks (need at least one per rank)"
        )
    batch = global_batch // size
    if rank == 0 and batch * size != global_batch:
        log.warning(
            "global batch %d is not a multiple of %d ranks: %d", global_batch, size, batch * size
        )
    dataset_sha = hvd.broadcast_object(file_sha256(dataset_h5) if rank == 0 else None, 0)
    fingerprint = _fingerprint(task, cfg, size, dataset_sha)

    aug = cfg["augment"]
    stats = (
        input_statistics(data, seed, cfg["input"], aug, scale=opt_cfg["standardise"])
        if rank == 0
        else None
    )
    input_mean, input_std, stats_n = hvd.broadcast_object(stats, 0)
    weights = (
        class_weights(data.labels(data.fit_indices), cfg["class_balance"])
        if task == "classify"
        else np.ones(2, np.float32)
    )
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
        input_transform=cfg["input"],
        members=int(opt_cfg["members"]),
        skip=opt_cfg["skip"],
    )
    per_rank = (n_fit // size) // batch + bool((n_fit // size) % batch)
    optimizer = make_optimizer(opt_cfg, steps_per_epoch=per_rank)
    optimizer.build(model.trainable_variables)

    epochs, patience = int(opt_cfg["epochs"]), int(opt_cfg["patience"])
    mixup = float(opt_cfg["mixup"])
    start_epoch, history, best, state = _resume(
        checkpoint_dir, fingerprint, epochs, model, optimizer, rank
    )
    start_epoch, history, state, best = hvd.broadcast_object((start_epoch, history, state, best), 0)
    broadcast_state(model, optimizer, 0)
    if best is None:
        best = [v.numpy() for v in model.trainable_variables]

    ckpt_every = max(1, epochs // CKPT_PER_RUN)
    train_step = make_train_step(model, optimizer, task, average_gradients, weights)
    eval_step = make_eval_step(model, task, weights)
    metric = METRIC[task]
    timing: list[dict[str, float]] = []
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        for epoch in range(start_epoch, epochs):
            if state["stopped"]:
                break
            t0 = time.perf_counter()
            reseed_dropout(model, seed, epoch, rank)
            shard = shard_indices(data.fit_indices, seed, epoch, rank, size)
            sums = np.zeros(6, dtype=np.float64)  # train loss, metric, n; dev loss, metric, n
            grad_max = 0.0
            train_kw = {
                "split": "train",
                "seed": seed,
                "epoch": epoch,
                "dose_range": aug["dose"],
                "rotation_deg": aug["rotation_deg"],
            }
            for x, y in _batches(data, shard, batch, train_kw, pool, mixup):
                loss, msum, gnorm = train_step(tf.constant(x), tf.constant(y))
                grad_max = max(grad_max, float(gnorm))
                sums[0] += float(loss) * len(y)
                sums[1] += float(msum)
                sums[2] += len(y)
            t_train = time.perf_counter() - t0
            dev_kw = dict(train_kw, split="val", seed=int(aug["val_seed"]), epoch=0)
            for x, y in _batches(data, data.dev_indices[rank::size], batch, dev_kw, pool):
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
                "dev_loss": tot[3] / tot[5] if tot[5] else nan,
                f"dev_{metric}": tot[4] / tot[5] if tot[5] else nan,
            }
            if not math.isfinite(rec["loss"]):
                raise FloatingPointError(
                    f"{dataset_h5}: the training loss is {rec['loss']} at epoch {epoch + 1}: "
                    f"{task} diverged (lower training.{OPTIMISER_BLOCK[task]}.learning_rate)"
                )
            history.append(rec)
            # model selection: the best development loss (without development cells, the last)
            score = rec["dev_loss"] if tot[5] else -float(epoch)
            if state["best_epoch"] == 0 or score < state["best_score"]:
                state.update(best_epoch=epoch + 1, best_score=float(score))
                best = [v.numpy() for v in model.trainable_variables]
            elif tot[5] and patience and epoch + 1 - state["best_epoch"] >= patience:
                state["stopped"] = True
            speed = tot[2] / t_train if t_train > 0 else nan
            timing.append(
                {
                    "epoch": epoch + 1,
                    "train_s": t_train,
                    "epoch_s": t_epoch,
                    "samples_per_s": speed,
                    "max_grad_norm": grad_max,
                }
            )
            last = state["stopped"] or epoch + 1 == epochs
            if rank == 0 and (last or (epoch + 1) % ckpt_every == 0):
                save_checkpoint(
                    checkpoint_dir, epoch + 1, model, optimizer, history, fingerprint, best, state
                )
                log.info(
                    "epoch %d/%d loss %.4f %s %.4f dev_loss %.4f dev_%s %.4f "
                    "max grad norm %.3g samples/s %.1f (%d ranks, %.1f s)%s",
                    epoch + 1,
                    epochs,
                    rec["loss"],
                    metric,
                    rec[metric],
                    rec["dev_loss"],
                    metric,
                    rec[f"dev_{metric}"],
                    grad_max,
                    speed,
                    size,
                    t_epoch,
                    "; early stop" if state["stopped"] else "",
                )
            if stop_after_epoch is not None and epoch + 1 == stop_after_epoch:
                hvd.allreduce(tf.constant(0.0), op=hvd.Sum)  # rank 0's checkpoint is on disk
                log.warning("test option: SIGKILL after epoch %d", epoch + 1)
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        pool.shutdown(wait=True)
        data.close()

    for v, a in zip(model.trainable_variables, best, strict=True):
        v.assign(a)
    best_rec = dict(history[state["best_epoch"] - 1]) if history else {}
    final = {
        **best_rec,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(history),
        "stopped_early": bool(state["stopped"]),
        "epochs": epochs,
        "ranks": size,
        "resumed_from_epoch": start_epoch,
    }
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
                "n_fit": n_fit,
                "n_dev": n_dev,
                "fit_cells": data.fit_cells,
                "dev_cells": data.dev_cells,
                "validation_rows_read": 0,
                "example_shape": list(data.example_shape),
            },
            "input": {
                "transform": cfg["input"],
                "standardisation": "transformed augmented training examples: per voxel (sqrt, log)"
                " or one scalar std (linear)",
                "examples": stats_n,
            },
            "class_weights": [float(w) for w in weights],
            "ranks": size,
            "seeds": {
                "seed": seed,
                "val_seed": int(aug["val_seed"]),
                "shuffle": f"default_rng([seed, {SHUFFLE_STREAM}, epoch])",
            },
            "optimiser": {
                "name": opt_cfg["optimizer"],
                "learning_rate": float(opt_cfg["learning_rate"]),
                "momentum": float(opt_cfg["momentum"]),
                "global_batch_size": batch * size,
                "batch_size_per_rank": batch,
                "patience": patience,
                "members": int(opt_cfg["members"]),
            },
            "selection": "the epoch with the lowest development loss"
            if n_dev
            else "the last epoch (no development cells)",
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


def _resume(checkpoint_dir: Path, fingerprint: str, epochs: int, model, optimizer, rank: int):
    """Rank 0 loads the latest checkpoint of this fingerprint (others are removed): (start
    epoch, history, best weights or None, state)."""
    state: dict[str, Any] = {"best_epoch": 0, "best_score": float("inf"), "stopped": False}
    if rank != 0:
        return 0, [], None, state
    for ep, path in reversed(list_checkpoints(checkpoint_dir)):
        meta = _peek_meta(path)
        if meta is not None and meta.get("fingerprint") == fingerprint and ep <= epochs:
            meta, best = load_checkpoint(path, model, optimizer)
            log.info("resuming from checkpoint %s (epoch %d done)", path, ep)
            state.update({k: meta[k] for k in state if k in meta})
            return int(meta["epoch"]), list(meta["history"]), best or None, state
        log.warning(
            "removing checkpoint %s: another config, dataset or rank count, or beyond epoch %d",
            path,
            epochs,
        )
        path.unlink(missing_ok=True)
    return 0, [], None, state


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
