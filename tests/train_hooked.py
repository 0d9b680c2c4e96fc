"""``python -m interface4d.train`` with a hook that SIGKILLs the process after an epoch.

Run by tests/test_train.py as ``python tests/train_hooked.py EPOCH ARGS...``, ARGS those of
``python -m interface4d.train``. At the end of epoch EPOCH (after rank 0 wrote its checkpoint)
every rank waits for the others and kills itself: a hard kill, no final outputs, what a run
killed by the scheduler between epochs leaves behind.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

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


if __name__ == "__main__":
    epoch, *args = sys.argv[1:]
    sys.exit(main(args, hooks=TrainHooks(on_epoch_end=kill_after(int(epoch)))))
