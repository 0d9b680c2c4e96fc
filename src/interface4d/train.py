"""Train the 3D CNN (classifier or step-fraction regressor), data-parallel with Horovod.

One process per Horovod rank (``horovodrun -np R -H localhost:R --gloo python -m
interface4d.train ...``); without horovodrun it runs as a single rank. :func:`train` runs
named steps in order; their pieces live in :mod:`interface4d.trainingdata` (split,
statistics, shards, batches), :mod:`interface4d.optimisation` (losses, the Horovod gradient
step, the optimiser) and :mod:`interface4d.checkpoints` (checkpoints, fingerprint, history CSV).

Semantics
---------
* Development cells: ``dev_fraction`` (of the network's block) of the training cells (per
  thickness and kind,
  :func:`interface4d.splits.dev_cells`) are held out of the gradient steps; every epoch ends
  with their loss and metric, early stopping (``patience``) and model selection (the saved
  network is the epoch with the best development loss) look at them alone. The validation rows
  of the dataset are never read here: changing them changes no trained weight.
* ``batch_size`` is the *global* batch, split evenly over the ranks, and the learning rate is
  for it: the same config takes the same steps on any number of ranks (Adam by default, or SGD
  with momentum, the paper's recipe).
* Examples are identified by :func:`interface4d.splits.example_uid` (their cell and line),
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
* Only rank 0 writes files.
* :class:`TrainHooks` lets a caller act at the end of every epoch and of the run (the tests
  kill a run there, and compare the ranks' final weights).

Outputs: the Keras model (``.keras``, the best development epoch), the history CSV (``epoch,
loss, accuracy|mae, dev_loss, dev_accuracy|dev_mae``) and a provenance JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from interface4d import versions
from interface4d.checkpoints import (
    fingerprint,
    initial_state,
    resume,
    write_history_csv,
    write_text_atomic,
)
from interface4d.config import ConfigError
from interface4d.epochs import EpochEnd as EpochEnd  # the hook's argument
from interface4d.epochs import Progress, Run, TrainEnd, TrainHooks, run_epochs
from interface4d.h5io import atomic_path
from interface4d.optimisation import (
    METRIC,
    OPTIMISER_BLOCK,
    TASKS,
    broadcast_state,
    make_optimizer,
    weights_digest,
)
from interface4d.provenance import file_sha256
from interface4d.reducedrefs import SourceError
from interface4d.trainingdata import SHUFFLE_STREAM, TrainingData, class_weights, input_statistics

log = logging.getLogger("interface4d.train")


# --------------------------------------------------------------------------- configuration


def complete_training_config(training_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the ``training`` block against the campaign schema, filling its defaults, and
    check what the schema cannot express (:func:`interface4d.config.check_training`)."""
    from interface4d.config import check_training, complete_block

    cfg = complete_block("training", training_cfg)
    check_training(cfg)
    return cfg


# --------------------------------------------------------------------------- the steps


class _Outputs(NamedTuple):
    model: Path
    history: Path
    provenance: Path


class _Inputs(NamedTuple):
    mean: np.ndarray
    std: np.ndarray
    examples: int  # augmented examples the statistics rest on
    class_weights: np.ndarray
    projection: np.ndarray | None = None  # (D, k): the projected members' subspace (project)


def _settle_config(task: str, training_cfg: Mapping[str, Any] | None):
    """The completed ``training`` block and the task's optimiser block of it."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    cfg = complete_training_config(training_cfg)
    return cfg, cfg[OPTIMISER_BLOCK[task]]


def _output_paths(out_dir, model_out, history_out, provenance_out) -> _Outputs:
    """The three output files, by default in ``out_dir``; the model must be a ``.keras``."""
    out_dir = Path(out_dir)
    outputs = _Outputs(
        Path(model_out) if model_out else out_dir / "model.keras",
        Path(history_out) if history_out else out_dir / "history.csv",
        Path(provenance_out) if provenance_out else out_dir / "provenance.json",
    )
    if outputs.model.suffix != ".keras":
        raise ValueError(f"the model file must end in .keras, not {outputs.model}")
    return outputs


def _start_ranks(seed: int, threads: int | None) -> tuple[int, int]:
    """TF threads, Horovod, the global seeds and deterministic ops: (rank, number of ranks)."""
    import tensorflow as tf

    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError as exc:  # TF already initialised in this process
            log.warning("cannot set TF threads to %s: %s", threads, exc)
    import horovod.tensorflow as hvd
    import keras

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return rank, size


def _open_data(dataset_h5, task: str, cfg, opt_cfg, rank: int, size: int) -> Run:
    """Open the training cells (fit and development split), check there is an example and a
    batch share for every rank, and fingerprint the run (rank 0 hashes the dataset)."""
    import horovod.tensorflow as hvd

    want = opt_cfg.get("ranks") or cfg["ranks"]
    if rank == 0 and int(want) != size:
        log.warning("training ranks = %s but running with %d Horovod ranks", want, size)
    data = TrainingData(dataset_h5, task, float(opt_cfg["dev_fraction"]), int(cfg["seed"]))
    n_fit = len(data.fit_indices)
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
    key = fingerprint(task, cfg, opt_cfg, size, dataset_sha)
    return Run(task, cfg, opt_cfg, dataset_h5, rank, size, data, batch, dataset_sha, key)


def _input_statistics_and_weights(run: Run) -> _Inputs:
    """Rank 0's input statistics of the augmented fit examples (broadcast) and the classes'
    loss weights."""
    import horovod.tensorflow as hvd

    cfg, data = run.cfg, run.data
    stats = (
        input_statistics(
            data,
            run.seed,
            cfg["input"],
            cfg["augment"],
            scale=run.opt["standardise"],
            symmetry=run.opt["symmetrise"],
        )
        if run.rank == 0
        else None
    )
    mean, std, n = hvd.broadcast_object(stats, 0)
    projection = None
    if int(run.opt["project"]) > 0:  # noiseless draws: the subspace of the signal alone
        from interface4d.trainingdata import SUBSPACE_MIN_DRAWS, input_subspace, training_draws

        if run.rank == 0:
            t = training_draws(
                data, run.seed, cfg["input"], cfg["augment"], min_draws=SUBSPACE_MIN_DRAWS,
                symmetry=run.opt["symmetrise"], shot_noise=False,
            )  # fmt: skip
            projection = input_subspace(t, mean, std, int(run.opt["project"]))
        projection = hvd.broadcast_object(projection, 0)
    weights = (
        class_weights(data.labels(data.fit_indices), cfg["class_balance"])
        if run.task == "classify"
        else np.ones(2, np.float32)
    )
    return _Inputs(mean, std, n, weights, projection)


def _build_model_and_optimiser(run: Run, inputs: _Inputs):
    """The network (input transform and statistics built in) and its built optimiser."""
    from interface4d.model import build_model

    mc = run.cfg["model"]
    model = build_model(
        run.data.example_shape,
        run.task,
        mc["filters"],
        mc["kernel_size"],
        mc["dense"],
        mc["dropout"],
        input_mean=inputs.mean,
        input_std=inputs.std,
        input_transform=run.cfg["input"],
        members=int(run.opt["members"]),
        skip=run.opt["skip"],
        symmetrise=run.opt["symmetrise"],
        projection=inputs.projection,
        projected_members=int(run.opt["projected_members"]),
    )
    if run.opt["skip_init"] == "ridge":  # every rank: the path is frozen, never broadcast
        from interface4d.warmstart import draw_examples, warm_start_skip

        x, y, cells = draw_examples(run.data, run.seed, run.cfg["augment"])
        run.warm_start = warm_start_skip(model, x, y, cells)
    share = len(run.data.fit_indices) // run.size
    per_rank = share // run.batch + bool(share % run.batch)
    optimizer = make_optimizer(run.opt, steps_per_epoch=per_rank)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _refit_skip(run: Run, model) -> None:
    """``skip_refit: ridge | replace``: every rank adds the same closed-form ridge fit of what
    the trained network misses to its linear path, or replaces the path by the ridge fit of
    what its CNN misses (same weights, same draws: nothing to broadcast)."""
    if run.opt["skip_refit"] != "none":
        from interface4d.warmstart import draw_examples, refit_skip

        x, y, cells = draw_examples(run.data, run.seed, run.cfg["augment"])
        run.skip_refit = refit_skip(model, x, y, cells, mode=run.opt["skip_refit"])


def _resume_or_start(run: Run, checkpoint_dir: Path, model, optimizer) -> Progress:
    """Rank 0 resumes from the latest matching checkpoint, if any, and every rank takes its
    progress, weights and optimizer state."""
    import horovod.tensorflow as hvd

    if run.rank == 0:
        found = resume(checkpoint_dir, run.fingerprint, run.epochs, model, optimizer)
    else:
        found = 0, [], None, initial_state()
    start_epoch, history, best, state = found
    start_epoch, history, state, best = hvd.broadcast_object((start_epoch, history, state, best), 0)
    broadcast_state(model, optimizer, 0)
    if best is None:
        best = [v.numpy() for v in model.trainable_variables]
    return Progress(start_epoch, history, best, state)


def _restore_best_epoch(run: Run, model, progress: Progress) -> dict[str, Any]:
    """Set the model to the selected epoch's weights; return the final metrics."""
    for v, a in zip(model.trainable_variables, progress.best, strict=True):
        v.assign(a)
    history, state = progress.history, progress.state
    best_rec = dict(history[state["best_epoch"] - 1]) if history else {}
    final = {
        **best_rec,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(history),
        "stopped_early": bool(state["stopped"]),
        "epochs": run.epochs,
        "ranks": run.size,
        "resumed_from_epoch": progress.start_epoch,
    }
    if progress.timing:
        final["samples_per_s"] = float(np.mean([t["samples_per_s"] for t in progress.timing]))
    return final


def _save_outputs(run: Run, model, history, outputs: _Outputs) -> None:
    """Rank 0: the Keras model and the history CSV."""
    with atomic_path(outputs.model, ".keras") as tmp:
        model.save(tmp)
    write_history_csv(outputs.history, history, METRIC[run.task])


def _provenance(
    run: Run,
    inputs: _Inputs,
    progress: Progress,
    final: Mapping[str, Any],
    digest: Mapping[str, Any],
    hooks: TrainHooks,
    t_start: float,
) -> dict[str, Any]:
    """The provenance record: data, input statistics, seeds, optimiser, selection, result,
    timing, host and versions."""
    cfg, opt, data = run.cfg, run.opt, run.data
    n_dev = len(data.dev_indices)
    return {
        "task": run.task,
        "training": cfg,
        "dataset": {
            "path": str(Path(run.dataset_h5).resolve()),
            "sha256": run.dataset_sha,
            "n_fit": len(data.fit_indices),
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
            "examples": inputs.examples,
        },
        "skip_warm_start": run.warm_start,
        "skip_refit": run.skip_refit,
        "class_weights": [float(w) for w in inputs.class_weights],
        "ranks": run.size,
        "seeds": {
            "seed": run.seed,
            "val_seed": int(cfg["augment"]["val_seed"]),
            "shuffle": f"default_rng([seed, {SHUFFLE_STREAM}, epoch])",
        },
        "optimiser": {
            "name": opt["optimizer"],
            "learning_rate": float(opt["learning_rate"]),
            "momentum": float(opt["momentum"]),
            "global_batch_size": run.batch * run.size,
            "batch_size_per_rank": run.batch,
            "patience": int(opt["patience"]),
            "members": int(opt["members"]),
        },
        "selection": "the epoch with the lowest development loss"
        if n_dev
        else "the last epoch (no development cells)",
        "average_gradients": bool(hooks.average_gradients),
        "resumed_from_epoch": progress.start_epoch,
        "final": final,
        "weights": digest,
        "timing": progress.timing,
        "wall_time_s": time.time() - t_start,
        "started": datetime.fromtimestamp(t_start, UTC).isoformat(),
        "host": socket.gethostname(),
        "versions": versions("tensorflow", "keras", "horovod", "numpy", "scipy", "h5py"),
    }


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
    hooks: TrainHooks | None = None,
) -> dict[str, Any]:
    """Train one network on the training cells of ``dataset_h5``; return the final metrics (on
    every rank).

    ``training_cfg`` is the campaign's ``training`` block (defaults filled here). Outputs (rank 0)
    go to ``model_out``/``history_out``/``provenance_out``, by default ``out_dir/model.keras``,
    ``out_dir/history.csv``, ``out_dir/provenance.json``. ``hooks``: callbacks into the run
    (:class:`TrainHooks`, used by the tests).
    """
    t_start = time.time()
    hooks = hooks or TrainHooks()
    cfg, opt_cfg = _settle_config(task, training_cfg)
    outputs = _output_paths(out_dir, model_out, history_out, provenance_out)
    checkpoint_dir = Path(checkpoint_dir)
    rank, size = _start_ranks(int(cfg["seed"]), threads)
    run = _open_data(dataset_h5, task, cfg, opt_cfg, rank, size)
    try:
        inputs = _input_statistics_and_weights(run)
        model, optimizer = _build_model_and_optimiser(run, inputs)
        progress = _resume_or_start(run, checkpoint_dir, model, optimizer)
        run_epochs(run, model, optimizer, inputs.class_weights, progress, checkpoint_dir, hooks)
        final = _restore_best_epoch(run, model, progress)
        _refit_skip(run, model)
    finally:
        run.data.close()
    digest = weights_digest(model)
    hooks.on_train_end(TrainEnd(rank, size, digest))
    if rank == 0:
        _save_outputs(run, model, progress.history, outputs)
        record = _provenance(run, inputs, progress, final, digest, hooks, t_start)
        write_text_atomic(outputs.provenance, json.dumps(record, indent=2, default=float) + "\n")
    return final


# --------------------------------------------------------------------------- CLI


def with_ranks(training_cfg: Mapping[str, Any], task: str, ranks: int) -> dict[str, Any]:
    """``training_cfg`` with the ranks a job runs: the network's own ``ranks`` where its block
    sets them, else ``training.ranks`` (which of the two :func:`_open_data` reads)."""
    out = copy.deepcopy(dict(training_cfg))
    own = out.get("classifier" if task == "classify" else "regressor")
    if own and own.get("ranks"):
        own["ranks"] = int(ranks)
    else:
        out["ranks"] = int(ranks)
    return out


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument(
        "--ranks",
        type=int,
        default=None,
        help="the Horovod ranks this job was started with (the workflow passes its threads): "
        "replaces the network's own ranks if the block sets them, else training.ranks",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None, hooks: TrainHooks | None = None) -> int:
    """The command line: parse ``argv``, then :func:`run`."""
    return run(build_parser().parse_args(argv), hooks)


def run(args: argparse.Namespace, hooks: TrainHooks | None = None) -> int:
    """``interface4d train``: set up logging and run :func:`train` on the parsed ``args``."""
    text = args.training_json
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        training_cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--training-json is not valid JSON: {exc}") from None
    if args.ranks is not None:
        training_cfg = with_ranks(training_cfg, args.task, args.ranks)
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
            hooks=hooks,
        )
    except (ConfigError, SourceError) as exc:  # one line: a bad config, a missing reduced file
        raise SystemExit(str(exc)) from None
    if rank == "0":
        log.info("final: %s", json.dumps(final, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
