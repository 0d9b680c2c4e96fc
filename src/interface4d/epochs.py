"""The epoch loop of a training run (:func:`interface4d.train.train`): each epoch's gradient
steps on this rank's shard and the development loss summed over the ranks, model selection and
early stopping, rank 0's checkpoints and log lines, and the ``on_epoch_end`` hook.

Dropout seeds are reset at the start of every epoch from (seed, epoch, rank), so a resumed run
replays the same masks as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.checkpoints import checkpoint_interval, save_checkpoint
from interface4d.optimisation import (
    METRIC,
    OPTIMISER_BLOCK,
    make_eval_step,
    make_train_step,
    reseed_dropout,
)
from interface4d.trainingdata import TrainingData, augmented_batches, shard_indices

log = logging.getLogger("interface4d.epochs")


# --------------------------------------------------------------------------- hooks


@dataclass(frozen=True)
class EpochEnd:
    """What ``on_epoch_end`` is told: the epochs done (1-based), this rank, the number of
    ranks, the epoch's history row and the checkpoint written for it (rank 0, when one was
    due; else None)."""

    epoch: int
    rank: int
    size: int
    record: Mapping[str, float]
    checkpoint: Path | None


@dataclass(frozen=True)
class TrainEnd:
    """What ``on_train_end`` is told: this rank, the number of ranks and the digest of its
    final weights (:func:`interface4d.checkpoints.weights_digest`)."""

    rank: int
    size: int
    digest: Mapping[str, Any]


def _ignore(_end: Any) -> None:
    """The default hook: nothing."""


@dataclass(frozen=True)
class TrainHooks:
    """Callbacks of :func:`interface4d.train.train`, by default none; the tests use them
    (``tests/train_hooked.py``), the workflow does not.

    ``on_epoch_end(EpochEnd)`` runs on every rank at the end of every epoch, after rank 0 wrote
    the epoch's checkpoint (when one was due) and logged it; a hook that spans ranks must keep
    them in step (the same collective calls on every rank). The tests kill a run here.
    ``on_train_end(TrainEnd)`` runs on every rank with its final weights' digest.
    ``average_gradients=False`` takes a plain GradientTape instead of Horovod's distributed one:
    the ranks then diverge, the control that shows the averaging is what keeps them equal."""

    on_epoch_end: Callable[[EpochEnd], None] = _ignore
    on_train_end: Callable[[TrainEnd], None] = _ignore
    average_gradients: bool = True


@dataclass
class Run:
    """What every step of one run reads: the settled config, the ranks and the data."""

    task: str
    cfg: dict[str, Any]
    opt: dict[str, Any]  # the task's optimiser block
    dataset_h5: str | Path
    rank: int
    size: int
    data: TrainingData
    batch: int  # examples per rank and step
    dataset_sha: str
    fingerprint: str
    warm_start: dict[str, Any] | None = None  # the linear path's ridge start (rank 0)
    skip_refit: dict[str, Any] | None = None  # the linear path's ridge refit after training

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])

    @property
    def epochs(self) -> int:
        return int(self.opt["epochs"])


@dataclass
class Progress:
    """The run so far: where it started, the history, the best epoch's weights, the selection
    state (best epoch and score, stopped early) and each epoch's timing."""

    start_epoch: int
    history: list[dict[str, float]]
    best: list[np.ndarray]
    state: dict[str, Any]
    timing: list[dict[str, float]] = field(default_factory=list)


def run_epoch(run: Run, model, epoch: int, train_step, eval_step, pool):
    """One epoch on every rank: the gradient steps on this rank's shard, then the development
    loss and metric, summed over the ranks. Returns the history row, the timing row and the
    number of development examples."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    seed, rank, size, data, aug = run.seed, run.rank, run.size, run.data, run.cfg["augment"]
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
    mixup = float(run.opt["mixup"])
    space = run.cfg["input"] if run.opt["mixup_space"] == "transformed" else "linear"
    for x, y in augmented_batches(data, shard, run.batch, train_kw, pool, mixup, space):
        loss, msum, gnorm = train_step(tf.constant(x), tf.constant(y))
        grad_max = max(grad_max, float(gnorm))
        sums[0] += float(loss) * len(y)
        sums[1] += float(msum)
        sums[2] += len(y)
    t_train = time.perf_counter() - t0
    dev_kw = dict(train_kw, split="val", seed=int(aug["val_seed"]), epoch=0)
    for x, y in augmented_batches(data, data.dev_indices[rank::size], run.batch, dev_kw, pool):
        lsum, msum = eval_step(tf.constant(x), tf.constant(y))
        sums[3] += float(lsum)
        sums[4] += float(msum)
        sums[5] += len(y)
    tot = hvd.allreduce(tf.constant(sums), op=hvd.Sum).numpy()
    t_epoch = time.perf_counter() - t0
    nan = float("nan")
    metric = METRIC[run.task]
    rec = {
        "epoch": epoch + 1,
        "loss": tot[0] / tot[2],
        metric: tot[1] / tot[2],
        "dev_loss": tot[3] / tot[5] if tot[5] else nan,
        f"dev_{metric}": tot[4] / tot[5] if tot[5] else nan,
    }
    if not math.isfinite(rec["loss"]):
        raise FloatingPointError(
            f"{run.dataset_h5}: the training loss is {rec['loss']} at epoch {epoch + 1}: "
            f"{run.task} diverged (lower training.{OPTIMISER_BLOCK[run.task]}.learning_rate)"
        )
    timing = {
        "epoch": epoch + 1,
        "train_s": t_train,
        "epoch_s": t_epoch,
        "samples_per_s": tot[2] / t_train if t_train > 0 else nan,
        "max_grad_norm": grad_max,
    }
    return rec, timing, tot[5]


def select_epoch(run: Run, progress: Progress, rec, n_dev, model) -> None:
    """Model selection and early stopping: keep the weights of the epoch with the best
    development loss (without development cells, the last); stop after ``patience`` epochs
    without a better one."""
    state, epoch = progress.state, rec["epoch"] - 1
    patience = int(run.opt["patience"])
    score = rec["dev_loss"] if n_dev else -float(epoch)
    if state["best_epoch"] == 0 or score < state["best_score"]:
        state.update(best_epoch=epoch + 1, best_score=float(score))
        progress.best = [v.numpy() for v in model.trainable_variables]
    elif n_dev and patience and epoch + 1 - state["best_epoch"] >= patience:
        state["stopped"] = True


def log_epoch(run: Run, rec, timing, stopped: bool) -> None:
    """Rank 0's line for an epoch: losses, metrics, largest gradient norm, speed."""
    metric = METRIC[run.task]
    log.info(
        "epoch %d/%d loss %.4f %s %.4f dev_loss %.4f dev_%s %.4f "
        "max grad norm %.3g samples/s %.1f (%d ranks, %.1f s)%s",
        rec["epoch"],
        run.epochs,
        rec["loss"],
        metric,
        rec[metric],
        rec["dev_loss"],
        metric,
        rec[f"dev_{metric}"],
        timing["max_grad_norm"],
        timing["samples_per_s"],
        run.size,
        timing["epoch_s"],
        "; early stop" if stopped else "",
    )


def run_epochs(
    run: Run,
    model,
    optimizer,
    class_weights: np.ndarray,
    progress: Progress,
    checkpoint_dir: Path,
    hooks: TrainHooks,
) -> None:
    """The epoch loop, from the resumed epoch to ``epochs`` or an early stop: each epoch
    (:func:`run_epoch`), its selection (:func:`select_epoch`), rank 0's checkpoint (when due, and at
    the last epoch) and log line, then the ``on_epoch_end`` hook."""
    every = checkpoint_interval(run.epochs)
    train_step = make_train_step(model, optimizer, run.task, hooks.average_gradients, class_weights)
    eval_step = make_eval_step(model, run.task, class_weights)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        for epoch in range(progress.start_epoch, run.epochs):
            if progress.state["stopped"]:
                break
            rec, timing, n_dev = run_epoch(run, model, epoch, train_step, eval_step, pool)
            progress.history.append(rec)
            select_epoch(run, progress, rec, n_dev, model)
            progress.timing.append(timing)
            stopped = progress.state["stopped"]
            path = None
            if run.rank == 0 and (stopped or epoch + 1 == run.epochs or (epoch + 1) % every == 0):
                path = save_checkpoint(
                    checkpoint_dir,
                    epoch + 1,
                    model,
                    optimizer,
                    progress.history,
                    run.fingerprint,
                    progress.best,
                    progress.state,
                )
                log_epoch(run, rec, timing, stopped)
            hooks.on_epoch_end(EpochEnd(epoch + 1, run.rank, run.size, dict(rec), path))
    finally:
        pool.shutdown(wait=True)
