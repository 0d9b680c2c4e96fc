"""Data augmentation of CBED stacks, as in Oxley et al. 2020: shot noise and small rotations.

Pure NumPy (+ ``scipy.ndimage`` for the interpolation); runs in the input pipeline, applied to the
training AND the validation examples every epoch.

* Rotation: all ``nx`` patterns of one example are rotated by one angle drawn uniformly in
  ``[-rotation_deg, +rotation_deg]``, about the pattern centre ``((k-1)/2, (k-1)/2)`` (bilinear,
  zero outside the detector).
* Shot noise, after the rotation: a dose ``D`` (electrons per pattern) is drawn per example,
  log-uniformly in ``dose_range``; ``counts = Poisson(pattern * D)`` and the network sees
  ``counts / D``, so the mean is preserved (patterns are normalised to the probe intensity).

Random streams. Every example gets its own generator, keyed by its index in the dataset, so a
draw does not depend on the batch size, the shuffling or the number of Horovod ranks:

* training: ``default_rng([seed, TRAIN_STREAM, epoch, index])`` -- new each epoch;
* validation: ``default_rng([val_seed, VAL_STREAM, index])`` -- the same every epoch, so the
  validation losses of different epochs are comparable.

Mixup (step-position regressors, ``training.regressor.mixup``; Zhang et al. 2018): before the
rotation and the noise, a training example becomes ``lam * x + (1 - lam) * x'`` with target
``lam * y + (1 - lam) * y'``, its partner ``x'`` and ``lam ~ Beta(alpha, alpha)`` drawn by
``default_rng([seed, MIX_STREAM, epoch, index])`` (:func:`mixup_draws`). A mix of two cells'
patterns is the incoherent sum a probe sees over a region holding both, and the linear baseline's
strength says the unit-cell averages change nearly linearly with the step depth: mixup teaches the
network to interpolate between the few step depths it is shown rather than memorise them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRAIN_STREAM = 0
VAL_STREAM = 1
MIX_STREAM = 2


def train_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), TRAIN_STREAM, int(epoch), int(index)])


def val_rng(val_seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(val_seed), VAL_STREAM, int(index)])


def draw_dose(rng: np.random.Generator, dose_range: Sequence[float]) -> float:
    """One dose, log-uniform in ``[lo, hi]`` (electrons per pattern)."""
    lo, hi = float(dose_range[0]), float(dose_range[1])
    if not 0 < lo <= hi:
        raise ValueError(f"dose range must satisfy 0 < lo <= hi, not {list(dose_range)}")
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else lo


def draw_angle(rng: np.random.Generator, rotation_deg: float) -> float:
    """One rotation angle (degrees), uniform in ``[-rotation_deg, rotation_deg]``."""
    r = abs(float(rotation_deg))
    return float(rng.uniform(-r, r)) if r > 0 else 0.0


def poisson_noise(patterns: np.ndarray, dose: float, rng: np.random.Generator) -> np.ndarray:
    """``Poisson(patterns * dose) / dose`` as float32 (negative round-off clipped to 0)."""
    lam = np.clip(np.asarray(patterns, dtype=np.float64), 0.0, None) * float(dose)
    return (rng.poisson(lam) / float(dose)).astype(np.float32)


def rotate_patterns(patterns: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate each ``k x k`` pattern of ``patterns`` (..., k, k) by ``angle_deg`` about the pattern
    centre. With x = column and y = row, a positive angle turns +x towards +y: a spot at polar
    angle ``atan2(y - c, x - c) = phi`` moves to ``phi + angle_deg``."""
    from scipy import ndimage

    arr = np.asarray(patterns, dtype=np.float32)
    if angle_deg == 0.0:
        return arr.copy()
    lead = arr.shape[:-2]
    stack = arr.reshape((-1, *arr.shape[-2:]))
    out = ndimage.rotate(
        stack, -angle_deg, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0
    )
    return out.reshape((*lead, *arr.shape[-2:])).astype(np.float32, copy=False)


def mixup_draws(
    indices: Sequence[int], *, seed: int, epoch: int, pool_size: int, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mixup partners and weights of the training examples ``indices`` in ``epoch``: (positions
    in a pool of ``pool_size`` training examples, ``lam ~ Beta(alpha, alpha)``), each example's
    from its own generator (independent of the batch, the shuffling and the ranks)."""
    if alpha <= 0 or pool_size < 1:
        raise ValueError(f"mixup needs alpha > 0 and a pool, not {alpha} and {pool_size}")
    pos = np.empty(len(indices), dtype=np.int64)
    lam = np.empty(len(indices), dtype=np.float32)
    for j, idx in enumerate(indices):
        rng = np.random.default_rng([int(seed), MIX_STREAM, int(epoch), int(idx)])
        pos[j] = rng.integers(pool_size)
        lam[j] = rng.beta(alpha, alpha)
    return pos, lam


def augment_example(
    patterns: np.ndarray,
    rng: np.random.Generator,
    dose_range: Sequence[float],
    rotation_deg: float,
    shot_noise: bool = True,
) -> tuple[np.ndarray, float, float]:
    """One example (nx, k, k): rotate, then shot noise (``shot_noise=False``: the same draw's
    rotation, no noise). Returns (patterns, dose, angle)."""
    dose = draw_dose(rng, dose_range)
    angle = draw_angle(rng, rotation_deg)
    rotated = rotate_patterns(patterns, angle)
    return (poisson_noise(rotated, dose, rng) if shot_noise else rotated), dose, angle


def augment_batch(
    x: np.ndarray,
    indices: Sequence[int],
    *,
    split: str,
    seed: int,
    epoch: int,
    dose_range: Sequence[float],
    rotation_deg: float,
    shot_noise: bool = True,
) -> np.ndarray:
    """Augment a batch ``x`` (B, nx, k, k) whose rows are dataset examples ``indices``.

    ``split`` is ``"train"`` (``seed`` is the training seed, ``epoch`` matters) or ``"val"``
    (``seed`` is the validation seed, ``epoch`` is ignored). ``shot_noise=False``: the draws'
    rotations only.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    out = np.empty(x.shape, dtype=np.float32)
    for j, idx in enumerate(indices):
        rng = train_rng(seed, epoch, idx) if split == "train" else val_rng(seed, idx)
        out[j] = augment_example(x[j], rng, dose_range, rotation_deg, shot_noise)[0]
    return out
