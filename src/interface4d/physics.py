"""Electron optics and slab geometry: pure Python, nothing from :mod:`interface4d`.

The relativistic electron wavelength (abTEM's convention), the conversion of a detector
pixel size between an angle (mrad) and a reciprocal length (1/Angstrom) at a beam energy, the
largest detector angle a sampling can hold, and the slab along the beam in whole unit cells
(thickness and step depth).
"""

from __future__ import annotations

import math

# Electron wavelength constants (relativistic), SI.
_H = 6.62607015e-34
_C = 299792458.0
_M0 = 9.1093837015e-31
_E = 1.602176634e-19
ANTIALIAS_CUTOFF = 2.0 / 3.0  # abTEM's default band limit, fraction of the Nyquist frequency


def wavelength(energy_ev: float) -> float:
    """Relativistic electron wavelength in Angstrom."""
    e = energy_ev * _E
    return _H * _C / math.sqrt(e * (2 * _M0 * _C**2 + e)) * 1e10


def mrad_from_inv_angstrom(sampling_inv_a: float, energy_ev: float) -> float:
    """Angular pixel size (mrad) of a reciprocal pixel size (1/Angstrom): ``s * lambda``, the
    relativistic wavelength at ``energy_ev`` (abTEM's convention)."""
    return float(sampling_inv_a) * wavelength(float(energy_ev)) * 1e3


def inv_angstrom_from_mrad(sampling_mrad: float, energy_ev: float) -> float:
    """Reciprocal pixel size (1/Angstrom) of an angular pixel size (mrad): the inverse of
    :func:`mrad_from_inv_angstrom`."""
    return float(sampling_mrad) * 1e-3 / wavelength(float(energy_ev))


def max_detector_angle(gpts: int, extent: float, wavelength_a: float) -> float:
    """Largest scattering angle (mrad) inside abTEM's antialiasing band limit.

    Mirrors abTEM's ``cutoff_angles``: floor(gpts * 2/3) // 2 pixels of lambda / extent each.
    """
    return (int(gpts * ANTIALIAS_CUTOFF + 1e-9) // 2) * wavelength_a / extent * 1e3


def nz_for_thickness(thickness: float, lattice_constant: float) -> int:
    """Whole unit cells along the beam for a nominal thickness."""
    return int(math.floor(thickness / lattice_constant + 0.5))


def snap_depth(step_fraction: float, nz: int) -> int:
    """Step depth in whole unit cells: the interface is at layer n for z < depth * a."""
    return int(math.floor(step_fraction * nz + 0.5))
