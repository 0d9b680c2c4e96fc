"""How the networks and their baselines see a CBED stack: the input transform.

CBED intensities (normalised to the probe intensity) span four orders of magnitude between the
bright-field disc and the outer pixels, and shot noise grows with the intensity (Poisson: the
variance of ``counts / dose`` is ``intensity / dose``). Three transforms, applied per pixel
before the per-voxel standardisation of the training set:

* ``sqrt`` (default): ``sqrt(max(x, 0))``, the variance-stabilising (Anscombe-type) transform of
  Poisson counts: after it every pixel has about the same shot-noise std, ``1 / (2 sqrt(dose))``,
  whatever its intensity, so the standardised inputs weight the pixels by their information;
* ``log``: ``log(max(x, 0) + LOG_FLOOR)``, the usual compression of the dynamic range;
* ``linear``: the intensities as they are (the paper's input).

Pure NumPy: :mod:`interface4d.model` builds the same function into the network as a layer, so a
saved model applies it to raw intensities itself (predict and evaluate pass raw patterns).
"""

from __future__ import annotations

import numpy as np

TRANSFORMS = ("sqrt", "log", "linear")
SYMMETRIES = ("none", "ky")  # the step-position regressors' input symmetry (symmetrise)
LOG_FLOOR = 1.0e-5  # below one electron in 10^5 per pattern: the log of a zero count


def transform(x: np.ndarray, kind: str) -> np.ndarray:
    """The input transform ``kind`` of raw intensities ``x`` (any shape), float32."""
    x = np.asarray(x, dtype=np.float32)
    if kind == "sqrt":
        return np.sqrt(np.clip(x, 0.0, None))
    if kind == "log":
        return np.log(np.clip(x, 0.0, None) + np.float32(LOG_FLOOR))
    if kind == "linear":
        return x
    raise ValueError(f"input transform must be one of {TRANSFORMS}, not {kind!r}")


def symmetrise(x: np.ndarray, kind: str) -> np.ndarray:
    """Raw intensities averaged with their mirror image, float32. ``ky``: the mirror ``ky -> -ky``
    of the patterns' last axis (a binned pattern is exactly centred, :mod:`interface4d.reduce`).
    The specimen is mirror-symmetric in y (the step and the interface run along y; phonons and
    intermixing are symmetric in distribution) and so is a round probe, so the unit-cell average
    and its ky mirror differ only by noise: frozen-phonon sampling and shot noise. Their mean
    keeps the signal and halves the variance of the antisymmetric part of that noise. ``none``:
    unchanged."""
    x = np.asarray(x, dtype=np.float32)
    if kind == "ky":
        return np.float32(0.5) * (x + x[..., ::-1])
    if kind == "none":
        return x
    raise ValueError(f"symmetrise must be one of {SYMMETRIES}, not {kind!r}")


def mix(a: np.ndarray, b: np.ndarray, lam: np.ndarray, kind: str) -> np.ndarray:
    """Raw intensities whose transform ``kind`` is ``lam * T(a) + (1 - lam) * T(b)`` (mixup in
    the space the network's input layer sees; ``lam`` broadcasts against the examples)."""
    lam = np.asarray(lam, dtype=np.float32)
    t = lam * transform(a, kind) + (1 - lam) * transform(b, kind)
    if kind == "sqrt":
        return np.square(t)
    if kind == "log":
        return np.exp(t) - np.float32(LOG_FLOOR)
    return t


SCALES = ("voxel", "scalar")


def voxel_statistics(
    x: np.ndarray, kind: str = "sqrt", floor: float = 1e-3, scale: str = "voxel"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel mean and std of transformed examples ``x`` (N, ...).

    ``scale == "voxel"`` (``sqrt`` and ``log`` only): the std per voxel, floored at ``floor``
    times its mean over the voxels (a voxel that never varies, such as a dark corner, is not
    blown up). ``scale == "scalar"``, and always for ``linear`` (the paper's input): one scalar,
    the root of the per-voxel variance averaged over the voxels. After ``sqrt`` the shot noise is
    the same in every pixel, so one scalar keeps each pixel's signal-to-noise ratio, where a
    per-voxel std raises the pixels whose signal barely varies to unit variance of mostly noise;
    for ``linear`` it keeps the bright field's weight."""
    if scale not in SCALES:
        raise ValueError(f"standardise must be one of {SCALES}, not {scale!r}")
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    if kind == "linear" or scale == "scalar":
        std = np.full(mean.shape, np.sqrt(x.var(axis=0).mean()) or 1.0)
        return mean.astype(np.float32), std.astype(np.float32)
    std = x.std(axis=0)
    scale = float(std.mean()) or 1.0
    std = np.maximum(std, floor * scale)
    return mean.astype(np.float32), std.astype(np.float32)
