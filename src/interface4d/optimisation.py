"""The TensorFlow and Horovod pieces of training: the losses and metrics of the two tasks, the
data-parallel gradient step, the evaluation step, the optimiser, the broadcast of rank 0's state,
the dropout reseeding and the weights digest.

The engine is ``horovod.tensorflow`` with ``hvd.DistributedGradientTape`` in a custom
``tf.function`` step: ``horovod.tensorflow.keras`` is broken on Keras 3 (its DistributedOptimizer
silently does not average gradients; horovod#4290 and the project's stack notes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TASKS = ("classify", "regress")
METRIC = {"classify": "accuracy", "regress": "mae"}
OPTIMISER_BLOCK = {"classify": "classifier", "regress": "regressor"}  # of the training config


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
