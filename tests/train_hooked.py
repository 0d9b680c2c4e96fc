"""``python -m interface4d.train`` with test hooks (:class:`interface4d.train.TrainHooks`).

Run by tests/test_train.py as ``python tests/train_hooked.py MODE ARG ARGS...``, ARGS those of
``python -m interface4d.train``:

* ``kill EPOCH``: at the end of epoch EPOCH (after rank 0 wrote its checkpoint) every rank waits
  for the others and kills itself: a hard kill, no final outputs, what a run killed by the
  scheduler between epochs leaves behind;
* ``digest DIR`` / ``digest-unaveraged DIR``: every rank writes ``DIR/rank<r>.json`` with the
  digest of its final weights; ``-unaveraged`` trains with a plain GradientTape instead of
  Horovod's distributed one (the ranks then diverge: the control of the averaging test).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from interface4d.epochs import TrainEnd
from interface4d.train import EpochEnd, TrainHooks, main

log = logging.getLogger("tests.train_hooked")


def kill_after(epoch: int) -> Callable[[EpochEnd], None]:
    """An ``on_epoch_end`` hook: SIGKILL this process at the end of ``epoch``."""

    def on_epoch_end(end: EpochEnd) -> None:
        if end.epoch != epoch:
            return
        import horovod.tensorflow as hvd
        import tensorflow as tf

        hvd.allreduce(tf.constant(0.0), op=hvd.Sum)  # rank 0's checkpoint is on disk
        log.warning("test hook: SIGKILL after epoch %d", end.epoch)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)

    return on_epoch_end


def write_digest(folder: str) -> Callable[[TrainEnd], None]:
    """An ``on_train_end`` hook: ``folder/rank<r>.json`` with this rank's weights digest."""

    def on_train_end(end: TrainEnd) -> None:
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        record = {"rank": end.rank, "size": end.size, **end.digest}
        (d / f"rank{end.rank}.json").write_text(json.dumps(record))

    return on_train_end


def hooks(mode: str, arg: str) -> TrainHooks:
    if mode == "kill":
        return TrainHooks(on_epoch_end=kill_after(int(arg)))
    if mode in ("digest", "digest-unaveraged"):
        return TrainHooks(on_train_end=write_digest(arg), average_gradients=mode == "digest")
    raise SystemExit(f"train_hooked.py: unknown mode {mode!r}")


if __name__ == "__main__":
    mode, arg, *args = sys.argv[1:]
    sys.exit(main(args, hooks=hooks(mode, arg)))
