"""One SGD step with 2 Horovod ranks vs one process on the union of their batches.

Run by tests/test_train.py as
``horovodrun -np 2 -H localhost:2 --gloo python tests/hvd_gradient_check.py OUT_DIR``.

Each rank takes its half of a fixed batch (equal halves, dropout 0, momentum 0), runs the
training step of :mod:`interface4d.optimisation` (``make_train_step``) once from the same
weights, and compares the applied update ``w1 - w0`` with ``-lr * g_full``, the gradient of the
mean loss over the FULL batch computed in this process with a plain ``tf.GradientTape`` (no
Horovod). It does so with the averaging on and, as a control, off (``average_gradients=False``).
It writes ``OUT_DIR/rank<r>.json``: per task and mode, the largest relative error of the update
and a digest of the weights after the step.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import horovod.tensorflow as hvd  # noqa: E402
import keras  # noqa: E402

from interface4d.model import build_model  # noqa: E402
from interface4d.optimisation import (  # noqa: E402
    broadcast_state,
    loss_and_metric_fns,
    make_train_step,
)

LR = 0.5
HALF = 4  # examples per rank
SHAPE = (3, 8, 8)


def main(out_dir: str) -> None:
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    assert size == 2, size
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(7)
    x_full = rng.uniform(0, 2.0 / 64, (size * HALF, *SHAPE, 1)).astype(np.float32)
    y_cls = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.int32)
    y_reg = rng.uniform(0.1, 0.9, size * HALF).astype(np.float32)
    mine = slice(rank * HALF, (rank + 1) * HALF)
    report: dict[str, dict] = {}
    for task, y_full in (("classify", y_cls), ("regress", y_reg)):
        keras.utils.set_random_seed(3 + rank)  # different init per rank: the broadcast must fix it
        model = build_model(SHAPE, task, filters=(4, 4), kernel_size=3, dense=(8, 8), dropout=0.0)
        opt0 = keras.optimizers.SGD(learning_rate=LR, momentum=0.0)
        opt0.build(model.trainable_variables)
        broadcast_state(model, opt0)
        w0 = [v.numpy().copy() for v in model.trainable_variables]

        # Reference: one process, plain tape, mean loss over the union of the two halves.
        loss_fn, _ = loss_and_metric_fns(task)
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.constant(y_full), model(tf.constant(x_full), training=True))
        g_full = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
        scale = max(float(np.abs(LR * g).max()) for g in g_full)

        for average in (True, False):
            for v, w in zip(model.trainable_variables, w0, strict=True):
                v.assign(w)
            opt = keras.optimizers.SGD(learning_rate=LR, momentum=0.0)
            opt.build(model.trainable_variables)
            step = make_train_step(model, opt, task, average_gradients=average)
            step(tf.constant(x_full[mine]), tf.constant(y_full[mine]))
            w1 = [v.numpy() for v in model.trainable_variables]
            err = max(
                float(np.abs((b - a) + LR * g).max())
                for a, b, g in zip(w0, w1, g_full, strict=True)
            )
            h = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in w1))
            report[f"{task}/{'average' if average else 'no_average'}"] = {
                "max_rel_error": err / scale,
                "update_scale": scale,
                "weights_sha256": h.hexdigest(),
            }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
