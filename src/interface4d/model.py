"""The 3D CNN of Oxley et al. 2020 (Keras 3 on TensorFlow).

Input: a stack of ``nx`` CBED patterns of ``k x k`` pixels taken along a line across the
interface, shape ``(nx, k, k, 1)``. Network: Conv3D layers (ReLU, 'same' padding, no pooling
between them), each followed by Dropout, then one average-pooling layer, two Dense ReLU layers,
and the head: Dense(2, softmax) to classify step (0) vs intermixing (1), or Dense(1, linear) to
regress the step depth fraction.

Input standardisation (part of the saved model, no trainable weights): with ``input_mean`` (the
mean training stack, (nx, k, k)) and ``input_std`` (one scalar), a ``Normalization`` layer feeds
``(x - input_mean) / input_std`` to the first convolution. The patterns are normalised to the
probe intensity, so the mean stack is a large common offset of every example; without removing it
plain SGD trains erratically (measured on separable synthetic data: validation accuracy swinging
between chance and 100 % from epoch to epoch, several seeds stuck at chance; with it, smooth
convergence at the default learning rate 0.04). Without statistics the fallback is a fixed
``Rescaling(k * k)`` (mean pixel ~1).

This module imports Keras (TensorFlow); ``interface4d.train`` is its only user in the package.
"""

from __future__ import annotations

from collections.abc import Sequence

TASKS = ("classify", "regress")


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
    input_std: float | None = None,
):
    """Build (not compile) the 3D CNN.

    ``input_shape`` is ``(nx, k, k)`` or ``(nx, k, k, 1)``. ``pool_size``: the single average
    pooling layer, ``AveragePooling3D(pool_size, padding='same')`` followed by ``Flatten`` (keeps
    where along the scan line a feature sits); ``None`` uses ``GlobalAveragePooling3D`` instead.
    ``input_mean`` (nx, k, k) and ``input_std`` (scalar): input standardisation (module doc).
    """
    import keras

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

    inputs = keras.Input(shape=shape, name="cbed_stack")
    h = inputs
    if input_mean is not None:
        import numpy as np

        mean = np.asarray(input_mean, dtype=np.float32).reshape(shape[:3])
        std = float(input_std) if input_std is not None else float(mean.std())
        if not std > 0:
            raise ValueError(f"input_std must be > 0, not {std}")
        h = keras.layers.Normalization(
            axis=(1, 2, 3),
            mean=mean,
            variance=np.full(shape[:3], std**2, dtype=np.float32),
            name="standardise",
        )(h)
    else:
        h = keras.layers.Rescaling(float(shape[1] * shape[2]), name="pixel_scale")(h)
    for i, f in enumerate(filters):
        h = keras.layers.Conv3D(
            int(f), int(kernel_size), padding="same", activation="relu", name=f"conv{i}"
        )(h)
        h = keras.layers.Dropout(float(dropout), name=f"dropout{i}")(h)
    if pool_size is None:
        h = keras.layers.GlobalAveragePooling3D(name="avg_pool")(h)
    else:
        h = keras.layers.AveragePooling3D(tuple(pool_size), padding="same", name="avg_pool")(h)
        h = keras.layers.Flatten(name="flatten")(h)
    for i, width in enumerate(dense):
        h = keras.layers.Dense(int(width), activation="relu", name=f"dense{i}")(h)
    if task == "classify":
        outputs = keras.layers.Dense(2, activation="softmax", name="class_probs")(h)
    else:
        outputs = keras.layers.Dense(1, activation="linear", name="step_fraction")(h)
    return keras.Model(inputs, outputs, name=f"cnn3d_{task}")
