"""Cutting a 4D-STEM array: the CBED centre within an angle, the probe positions within a band.

One rule for both cuts, shared by the simulation's store (``simulation.store: cropped|none``,
:mod:`interface4d.simulate`) and the reduction (:mod:`interface4d.reduce`), so that reducing a
cropped file gives the bit-identical descriptors of reducing the full one:

* :func:`crop_center`: the ``2 m + 1`` pixels ``n//2 - m .. n//2 + m`` of each detector axis,
  ``m = floor(crop_mrad / sampling)``; the zero frequency (abTEM's pixel ``n // 2``) stays at
  pixel ``m = (2 m + 1) // 2`` of the crop, so a narrower crop of a crop equals the narrower
  crop of the whole pattern.
* :func:`band_mask`: the probe positions ``x`` (relative to the interface) with
  ``start <= x < end``: a band inside a stored band keeps the same positions as it does in
  the whole scan.

NumPy only; nothing of :mod:`interface4d`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TOL = 1e-9  # Angstrom / relative tolerance for positions and pixel counts


def crop_center(
    cbed: np.ndarray,
    crop_mrad: float,
    angular_sampling: Sequence[float],
    key: str = "reduction.crop_mrad",
) -> np.ndarray:
    """Keep the detector pixels within +-``crop_mrad`` of the pattern centre on the last two axes.

    ``angular_sampling`` is (mrad per pixel along the second-to-last axis, along the last axis).
    The centre (zero frequency) is pixel ``n // 2``; the result holds ``2 m + 1`` pixels per
    axis, ``m = floor(crop_mrad / sampling)``, centred on it (square when the two samplings are
    equal, as they are for abTEM's square or uniformly resampled detectors). A view, not a copy.

    Raises ValueError (naming ``key`` and the value) if ``crop_mrad`` is not positive or reaches
    beyond the detector on either axis.
    """
    cbed = np.asarray(cbed)
    if cbed.ndim < 2:
        raise ValueError(f"crop_center needs at least 2 axes, got shape {cbed.shape}")
    if len(angular_sampling) != 2:
        raise ValueError(f"angular_sampling = {angular_sampling!r}: need two values (kx, ky)")
    if not crop_mrad > 0:
        raise ValueError(f"{key} = {crop_mrad!r}: must be positive")
    index: list[slice] = []
    for axis, (n, sampling) in enumerate(zip(cbed.shape[-2:], angular_sampling, strict=True)):
        if not sampling > 0:
            raise ValueError(f"angular_sampling = {angular_sampling!r}: must be positive")
        m = int(math.floor(crop_mrad / sampling + TOL))
        c = n // 2
        reach = min(c, n - 1 - c)  # whole pixels on both sides of the centre
        if m > reach:
            raise ValueError(
                f"{key} = {crop_mrad:g}: exceeds the detector on axis k"
                f"{'xy'[axis]} ({n} pixels of {sampling:.4g} mrad reach "
                f"{reach * sampling:.2f} mrad on both sides of the centre)"
            )
        index.append(slice(c - m, c + m + 1))
    return cbed[(..., *index)]


def band_mask(relative_x: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Boolean mask of the positions ``x`` (Angstrom from the interface) in ``[start, end)``."""
    rel = np.asarray(relative_x, dtype=np.float64)
    return (rel >= float(window[0]) - TOL) & (rel < float(window[1]) - TOL)
