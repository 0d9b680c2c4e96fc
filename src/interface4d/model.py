"""The 3D CNN of Oxley et al. 2020 (Keras 3 on TensorFlow).

Input: a stack of ``nx`` CBED patterns of ``k x k`` pixels taken along a line across the
interface, shape ``(nx, k, k, 1)``. Network: Conv3D layers (ReLU, 'same' padding, no pooling
between them), each followed by Dropout, then one average-pooling layer, two Dense ReLU layers,
and the head: Dense(2, softmax) to classify step (0) vs intermixing (1), or Dense(1, linear) to
regress the step depth fraction.

Input representation (part of the saved model, no trainable weights): an
:class:`InputTransform` layer applies :func:`interface4d.inputs.transform` (``sqrt`` by default,
``log`` or ``linear``) to the raw intensities, then a ``Normalization`` layer feeds
``(t - mean) / std`` to the first convolution, with the per-voxel mean and std (nx, k, k) of the
transformed training examples. The raw patterns are normalised to the probe intensity, so their
mean stack is a large common offset of every example and their dynamic range is four orders of
magnitude: without the transform and the standardisation SGD trains erratically (see
``benchmarks/RESULTS.md``). Without statistics the fallback is a fixed ``Rescaling(k * k)``
(mean pixel ~1).

This module imports Keras (TensorFlow) when it is imported: training, evaluation and predict
import it, nothing in the simulation or the workflow does. :func:`load` reads a saved network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from interface4d.inputs import LOG_FLOOR, SYMMETRIES, TRANSFORMS

TASKS = ("classify", "regress")
HEADS = {"classify": "class_probs", "regress": "step_fraction"}
SKIPS = ("none", "linear")
SKIP_GAIN = 4.0  # 16 was no better in CV on training cells (benchmarks/RESULTS.md)


@keras.saving.register_keras_serializable(package="interface4d")
class InputTransform(keras.layers.Layer):
    """:func:`interface4d.inputs.transform` as a layer (no weights)."""

    def __init__(self, kind: str = "sqrt", **kwargs):
        super().__init__(**kwargs)
        if kind not in TRANSFORMS:
            raise ValueError(f"input transform must be one of {TRANSFORMS}, not {kind!r}")
        self.kind = kind

    def call(self, x):
        ops = keras.ops
        if self.kind == "sqrt":
            return ops.sqrt(ops.maximum(x, 0.0))
        if self.kind == "log":
            return ops.log(ops.maximum(x, 0.0) + LOG_FLOOR)
        return x

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="interface4d")
class MirrorAverage(keras.layers.Layer):
    """:func:`interface4d.inputs.symmetrise` as a layer (no weights): the mean of the raw
    patterns and their ky mirror (axis 3 of ``(batch, nx, kx, ky, 1)``)."""

    def __init__(self, kind: str = "ky", **kwargs):
        super().__init__(**kwargs)
        if kind not in SYMMETRIES or kind == "none":
            raise ValueError(f"MirrorAverage needs a mirror of {SYMMETRIES[1:]}, not {kind!r}")
        self.kind = kind

    def call(self, x):
        return 0.5 * (x + keras.ops.flip(x, axis=3))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="interface4d")
class SubspaceProjection(keras.layers.Layer):
    """``V V^T z``: the standardised input ``z`` projected onto ``k`` fixed orthonormal
    directions ``V`` (D, k), reshaped back to the input's shape. ``V`` (the training examples'
    principal directions, :func:`interface4d.trainingdata.input_subspace`) is its one weight,
    saved with the model and never trained."""

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = int(k)

    def build(self, input_shape):
        import math

        d = math.prod(int(s) for s in input_shape[1:])
        self.basis = self.add_weight(
            shape=(d, self.k), initializer="zeros", trainable=False, name="basis"
        )

    def call(self, x):
        ops = keras.ops
        z = ops.reshape(x, (-1, self.basis.shape[0]))
        p = ops.matmul(ops.matmul(z, self.basis), ops.transpose(self.basis))
        return ops.reshape(p, ops.shape(x))

    def get_config(self):
        return {**super().get_config(), "k": self.k}


def load(path: str | Path):
    """A saved network (``.keras``) for inference."""
    return keras.saving.load_model(str(path), compile=False)


def build_model(
    input_shape: Sequence[int],
    task: str,
    filters: Sequence[int] = (8, 16),
    kernel_size: int = 3,
    dense: Sequence[int] = (64, 32),
    dropout: float = 0.15,
    *,
    pool_size: Sequence[int] | None = (2, 4, 4),
    input_mean=None,
    input_std=None,
    input_transform: str = "linear",
    members: int = 1,
    skip: str = "none",
    symmetrise: str = "none",
    projection=None,
    projected_members: int = 1,
):
    """Build (not compile) the 3D CNN.

    ``input_shape`` is ``(nx, k, k)`` or ``(nx, k, k, 1)``. ``pool_size``: the single average
    pooling layer, ``AveragePooling3D(pool_size, padding='same')`` followed by ``Flatten`` (keeps
    where along the scan line a feature sits); ``None`` uses ``GlobalAveragePooling3D`` instead.
    ``input_transform``: the per-pixel transform (module doc); ``input_mean`` and ``input_std``
    (per voxel (nx, k, k), or the std as one scalar) standardise the transformed input.
    ``members > 1``: that many networks of the same shape side by side on the standardised
    input (layers ``m<k>_*``), the output their mean (an ensemble in one model file; training
    fits each member to the targets on its own, see :func:`members_view`).
    ``skip='linear'`` (regressors): a linear path from the standardised input to the output,
    added to the CNN's head (:func:`_linear_skip`). ``symmetrise='ky'`` (regressors): the raw
    input is first averaged with its ky mirror (:class:`MirrorAverage`), so the saved network
    applies it to any stack it is given, a user's measured one included. ``projection``
    (regressors; (D, k), D the voxels of a stack): the last ``projected_members`` members' CNNs
    see the standardised input projected onto these k directions (:class:`SubspaceProjection`),
    the others' the input as it is; every linear path sees the input as it is.
    """
    import numpy as np

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[3] != 1:
        raise ValueError(f"input_shape must be (nx, k, k) or (nx, k, k, 1), not {input_shape}")
    if len(dense) != 2:
        raise ValueError(f"dense must list two layer widths, not {list(dense)}")
    if not filters:
        raise ValueError("filters must list at least one Conv3D layer")
    if int(members) < 1:
        raise ValueError(f"members must be >= 1, not {members}")
    if skip not in SKIPS or (skip != "none" and task != "regress"):
        raise ValueError(f"skip must be one of {SKIPS} (linear: regressors only), not {skip!r}")
    if symmetrise not in SYMMETRIES or (symmetrise != "none" and task != "regress"):
        raise ValueError(
            f"symmetrise must be one of {SYMMETRIES} (ky: regressors only), not {symmetrise!r}"
        )

    if projection is not None and (task != "regress" or not 1 <= projected_members <= members):
        raise ValueError(
            "projection applies to the step-position regressors, to 1 to members of them, "
            f"not {projected_members} of {members}"
        )
    inputs = keras.Input(shape=shape, name="cbed_stack")
    h = inputs
    if symmetrise != "none":
        h = MirrorAverage(symmetrise, name="mirror_average")(h)
    if input_transform != "linear":
        h = InputTransform(input_transform, name="input_transform")(h)
    if input_mean is not None:
        mean = np.asarray(input_mean, dtype=np.float32).reshape(shape[:3])
        std = np.broadcast_to(
            np.asarray(input_std if input_std is not None else mean.std(), np.float32),
            shape[:3],
        )
        if not np.all(std > 0):
            raise ValueError("input_std must be > 0")
        h = keras.layers.Normalization(
            axis=(1, 2, 3),
            mean=mean,
            variance=np.square(std),
            name="standardise",
        )(h)
    else:
        h = keras.layers.Rescaling(float(shape[1] * shape[2]), name="pixel_scale")(h)
    seen, members = [h] * int(members), int(members)
    if projection is not None:
        basis = np.asarray(projection, np.float32)
        project = SubspaceProjection(basis.shape[1], name="cnn_projection")
        seen[members - int(projected_members) :] = [project(h)] * int(projected_members)
        project.set_weights([basis])
    head, layers = HEADS[task], (filters, kernel_size, dense, dropout, pool_size, skip)
    if members == 1:
        outputs = _member(seen[0], h, "", task, *layers)
    else:
        heads = [_member(seen[k], h, f"m{k}_", task, *layers) for k in range(members)]
        outputs = keras.layers.Average(name=head)(heads)
    return keras.Model(inputs, outputs, name=f"cnn3d_{task}")


def _member(
    c, x, prefix: str, task: str, filters, kernel_size, dense, dropout, pool_size, skip="none"
):
    """One network of the paper's family: its CNN on the tensor ``c`` (the standardised input or
    its projection), its linear path (``skip='linear'``) on the standardised input ``x``."""
    h = c
    for i, f in enumerate(filters):
        h = keras.layers.Conv3D(
            int(f), int(kernel_size), padding="same", activation="relu", name=f"{prefix}conv{i}"
        )(h)
        h = keras.layers.Dropout(float(dropout), name=f"{prefix}dropout{i}")(h)
    if pool_size is None:
        h = keras.layers.GlobalAveragePooling3D(name=f"{prefix}avg_pool")(h)
    else:
        h = keras.layers.AveragePooling3D(
            tuple(pool_size), padding="same", name=f"{prefix}avg_pool"
        )(h)
        h = keras.layers.Flatten(name=f"{prefix}flatten")(h)
    for i, width in enumerate(dense):
        h = keras.layers.Dense(int(width), activation="relu", name=f"{prefix}dense{i}")(h)
    if task == "classify":
        return keras.layers.Dense(2, activation="softmax", name=f"{prefix}{HEADS[task]}")(h)
    if skip == "none":
        return keras.layers.Dense(1, activation="linear", name=f"{prefix}{HEADS[task]}")(h)
    cnn = keras.layers.Dense(1, activation="linear", name=f"{prefix}cnn_out")(h)
    return keras.layers.Add(name=f"{prefix}{HEADS[task]}")([cnn, _linear_skip(x, prefix)])


def _linear_skip(x, prefix: str):
    """``w . (s z)``: one weight per input voxel on the standardised input ``z`` (D voxels),
    starting at zero, with ``s = sqrt(SKIP_GAIN / D)``. The scale keeps SGD stable on it: a
    standardised example has ``|z|^2 ~ D``, so without ``s`` a step at the regressors' rate
    0.04 would move a prediction by ~0.08 D times its error. With it the step moves it by
    ``~0.08 SKIP_GAIN / batch`` times the error, and the path converges in the regressors'
    ~600 steps along the directions in which the examples vary (those a ridge regression
    keeps)."""
    import math

    n = math.prod(int(d) for d in x.shape[1:])
    z = keras.layers.Flatten(name=f"{prefix}skip_flatten")(x)
    z = keras.layers.Rescaling(math.sqrt(SKIP_GAIN / n), name=f"{prefix}skip_scale")(z)
    return keras.layers.Dense(1, kernel_initializer="zeros", name=f"{prefix}linear_skip")(z)


def members_view(model):
    """``(model_of_members, K)``: a model sharing ``model``'s layers whose output concatenates
    its ``K`` members' outputs ((batch, K) for a regressor, (batch, 2K) for a classifier), which
    training fits one by one; ``model`` itself outputs their mean. A single network: itself, 1."""
    task = "classify" if model.name.endswith("classify") else "regress"
    heads = [layer for layer in model.layers if layer.name.endswith(f"_{HEADS[task]}")]
    if not heads:
        return model, 1
    cat = keras.layers.Concatenate(name="members")([layer.output for layer in heads])
    return keras.Model(model.input, cat, name=f"{model.name}_members"), len(heads)
