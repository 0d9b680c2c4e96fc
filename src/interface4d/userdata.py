"""A user's 4D-STEM data for the trained networks: read, calibrate, resample.

A user's 4D array (``.npy`` or HDF5: :class:`DataFile`) is reordered to (x, y, kx, ky)
(:func:`parse_layout`, :func:`to_canonical`), calibrated (:class:`Calibration`) and resampled
onto the network's input grid of the model card (:func:`prepare_input`). Mismatches are
:class:`~interface4d.modelcard.PredictError`\\ s naming both values.

Geometry and units
------------------
* Axes: x = scan across the interface (the growth direction, from the SrTiO3 substrate towards
  the LaAlO3 film), y = scan along the interface, kx / ky = detector axes with kx parallel to x.
* Detector pixel ``j`` on an axis of ``n`` pixels of ``s`` mrad with the zero frequency at
  pixel ``c`` (default ``n // 2``, abTEM's convention) covers ``[(j - c - 1/2) s,
  (j - c + 1/2) s]`` mrad. The network's pixel ``i`` covers ``[(i - c' - 1/2) s', (i - c' +
  1/2) s']`` with the card's ``center_px`` ``c'`` and ``angular_sampling_mrad`` ``s'``.
* Intensities are fractions of the incident probe per pixel (divide counts by the incident-beam
  counts, ``incident_intensity``). Resampling treats each pixel as a uniform density over its
  area and integrates that density over each network pixel (exact area overlap, separable:
  ``T = Wx P Wy^T`` with ``W[i, j]`` = the fraction of source pixel j inside target pixel i).
  The total intensity is conserved; a uniform density stays uniform at ``density * s'^2`` per
  pixel; a pattern already on the network's grid is unchanged; and a raw simulation on its own
  grid gives exactly the crop-and-bin of :mod:`interface4d.reduce`.
* Probe positions along x: the card's ``scan_x_relative_A`` (positions are point samples, not
  areas). ``interface_x_A`` is the interface's distance from the first probe position along
  the file's x axis. A trained position within 0.01 A of a probe position takes that pattern;
  otherwise the two neighbours are interpolated linearly, which needs a step of at most
  ``lambda / (4 alpha)`` (0.246 A at 300 kV, 20 mrad): the patterns vary with the probe
  position up to the spatial frequency ``2 alpha / lambda``. Measured while writing
  tests/test_predict.py: interpolated from a 0.5 A scan, patterns were off by up to 32 %
  (relative L2 per pattern) and a held-out intermixing cell came out a confident "step"; from
  0.25 A, at most 16 % and classified correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.modelcard import ModelCard, PredictError
from interface4d.physics import mrad_from_inv_angstrom

AXES = ("x", "y", "kx", "ky")
DEFAULT_LAYOUT = "x,y,kx,ky"
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".emd")
POSITION_TOLERANCE_A = 1e-6
POSITION_SNAP_A = 0.01  # a probe this close to a trained position is used as it is


# --------------------------------------------------------------------------- layout and units


def parse_layout(text: str) -> tuple[str, str, str, str]:
    """``"y,x,ky,kx"`` -> ('y', 'x', 'ky', 'kx'): the file's axis order, a permutation of
    x, y, kx, ky."""
    parts = tuple(p.strip().lower() for p in str(text).split(","))
    if len(parts) != 4 or sorted(parts) != sorted(AXES):
        raise PredictError(
            f"layout {text!r}: must name each of x, y, kx, ky once, comma separated, in the "
            "order of the file's axes (e.g. x,y,kx,ky or y,x,ky,kx)"
        )
    return parts  # type: ignore[return-value]


def check_rank(shape: Sequence[int]) -> None:
    if len(shape) != 4:
        raise PredictError(
            f"the data has {len(shape)} axes, shape {tuple(shape)}; need a 4D array "
            "(scan x, scan y, kx, ky in some order: see --layout)"
        )


def to_canonical(array, layout: Sequence[str]):
    """Transpose an array in ``layout`` order to (x, y, kx, ky)."""
    return np.transpose(array, [list(layout).index(a) for a in AXES])


def from_canonical(array, layout: Sequence[str]):
    """Transpose an (x, y, kx, ky) array to ``layout`` order (the inverse of to_canonical)."""
    return np.transpose(array, [AXES.index(a) for a in layout])


@dataclass
class Calibration:
    """How to read the user's data. Detector values are ordered (kx, ky)."""

    energy_eV: float
    sampling_mrad: tuple[float, float]
    scan_step_x_A: float
    scan_step_y_A: float
    interface_x_A: float
    center_px: tuple[float, float] | None = None  # None: pixel n // 2 on each axis
    incident_intensity: float = 1.0
    sampling_given: dict[str, Any] = field(default_factory=dict)
    # where each value came from (file, command line: interface4d.usercalibration)
    sources: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = {
            "energy": self.energy_eV,
            "scan step along x": self.scan_step_x_A,
            "scan step along y": self.scan_step_y_A,
            "incident intensity": self.incident_intensity,
        }
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise PredictError(f"{name} = {value!r}: must be a positive number")
        self.sampling_mrad = _pair(self.sampling_mrad, "detector sampling")
        if not all(s > 0 for s in self.sampling_mrad):
            raise PredictError(f"detector sampling {self.sampling_mrad} mrad/px must be positive")
        if self.center_px is not None:
            self.center_px = _pair(self.center_px, "detector centre")


def _pair(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if np.ndim(value) == 0:
        value = [value]
    if len(value) == 1:
        value = [value[0], value[0]]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise PredictError(f"{what} {value!r}: need one number or two (kx,ky)") from None
    if len(out) != 2 or not all(np.isfinite(out)):
        raise PredictError(f"{what} {value!r}: need one number or two (kx,ky)")
    return out  # type: ignore[return-value]


def calibration(
    *,
    energy_eV: float,
    scan_step_x_A: float,
    interface_x_A: float,
    sampling_mrad: Any = None,
    sampling_inv_angstrom: Any = None,
    scan_step_y_A: float | None = None,
    center_px: Any = None,
    incident_intensity: float = 1.0,
) -> Calibration:
    """A :class:`Calibration` from the detector sampling in mrad/px or in 1/Angstrom per px
    (exactly one; converted with the relativistic wavelength at ``energy_eV``)."""
    if (sampling_mrad is None) == (sampling_inv_angstrom is None):
        raise PredictError("give the detector sampling once: in mrad/px or in 1/A per pixel")
    if sampling_mrad is not None:
        mrad = _pair(sampling_mrad, "detector sampling")
        given = {"mrad_per_px": list(mrad)}
    else:
        inv = _pair(sampling_inv_angstrom, "detector sampling")
        if not (np.isfinite(energy_eV) and energy_eV > 0):
            raise PredictError(f"energy = {energy_eV!r}: must be a positive number")
        mrad = tuple(mrad_from_inv_angstrom(s, energy_eV) for s in inv)
        given = {"inv_angstrom_per_px": list(inv)}
    return Calibration(
        energy_eV=float(energy_eV),
        sampling_mrad=mrad,  # type: ignore[arg-type]
        scan_step_x_A=float(scan_step_x_A),
        scan_step_y_A=float(scan_step_y_A if scan_step_y_A is not None else scan_step_x_A),
        interface_x_A=float(interface_x_A),
        center_px=None if center_px is None else _pair(center_px, "detector centre"),
        incident_intensity=float(incident_intensity),
        sampling_given=given,
    )


# --------------------------------------------------------------------------- resampling


def overlap_matrix(
    n_src: int, s_src: float, c_src: float, n_dst: int, s_dst: float, c_dst: float
) -> np.ndarray:
    """``W[i, j]``: the fraction of source pixel ``j`` that lies inside target pixel ``i``.

    Pixel ``j`` of ``s`` mrad with the zero frequency at pixel ``c`` covers
    ``[(j - c - 1/2) s, (j - c + 1/2) s]``. Shape ``(n_dst, n_src)``.
    """
    j = np.arange(n_src, dtype=np.float64)
    i = np.arange(n_dst, dtype=np.float64)
    src_lo, src_hi = (j - c_src - 0.5) * s_src, (j - c_src + 0.5) * s_src
    dst_lo, dst_hi = (i - c_dst - 0.5) * s_dst, (i - c_dst + 0.5) * s_dst
    lo = np.maximum(dst_lo[:, None], src_lo[None, :])
    hi = np.minimum(dst_hi[:, None], src_hi[None, :])
    return np.clip(hi - lo, 0.0, None) / s_src


def resample_patterns(
    patterns: np.ndarray,
    sampling_src: Sequence[float],
    center_src: Sequence[float],
    sampling_dst: Sequence[float],
    center_dst: Sequence[float],
    shape_dst: Sequence[int],
) -> np.ndarray:
    """Resample ``patterns`` (..., n0, n1) of per-pixel intensities onto another detector grid
    (..., k0, k1) by exact area overlap (module doc). float64 in, float64 out."""
    p = np.asarray(patterns, dtype=np.float64)
    n0, n1 = p.shape[-2:]
    w0, w1 = (
        overlap_matrix(n, sampling_src[a], center_src[a], shape_dst[a], sampling_dst[a], c)
        for a, (n, c) in enumerate(zip((n0, n1), center_dst, strict=True))
    )
    lead = p.shape[:-2]
    flat = p.reshape(-1, n0, n1)
    out = np.empty((flat.shape[0], int(shape_dst[0]), int(shape_dst[1])), dtype=np.float64)
    for i in range(0, flat.shape[0], 256):
        out[i : i + 256] = np.einsum("ij,bjk,lk->bil", w0, flat[i : i + 256], w1, optimize=True)
    return out.reshape(*lead, *out.shape[-2:])


def interpolate_scan(
    block: np.ndarray,
    positions: np.ndarray,
    targets: np.ndarray,
    snap: float = POSITION_TOLERANCE_A,
) -> np.ndarray:
    """Linear interpolation along axis 0 of ``block`` from increasing, evenly spaced
    ``positions`` to ``targets`` (which must lie inside them, to 1e-6 A). A target within
    ``snap`` (A) of a position takes that position's value as it is."""
    positions = np.asarray(positions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if positions.size == 1:
        if not np.allclose(targets, positions[0], atol=POSITION_TOLERANCE_A):
            raise PredictError("one probe position cannot be interpolated to several")
        return np.repeat(np.asarray(block)[:1], targets.size, axis=0)
    step = positions[1] - positions[0]
    u = (targets - positions[0]) / step
    tol = max(snap, POSITION_TOLERANCE_A) / step
    if u.min() < -tol or u.max() > positions.size - 1 + tol:
        raise PredictError(
            f"positions {np.round(targets, 4).tolist()} lie outside "
            f"[{positions[0]:.4f}, {positions[-1]:.4f}] A"
        )
    u = np.clip(u, 0, positions.size - 1)
    j = np.minimum(np.floor(u + 1e-9).astype(int), positions.size - 2)
    w = u - j
    w[w * step <= max(snap, 1e-9 * step)] = 0.0
    w[(1 - w) * step <= max(snap, 1e-9 * step)] = 1.0
    shape = (-1,) + (1,) * (np.ndim(block) - 1)
    b = np.asarray(block, dtype=np.float64)
    return (1 - w).reshape(shape) * b[j] + w.reshape(shape) * b[j + 1]


# --------------------------------------------------------------------------- data


def find_hdf5_dataset(path: str | Path, dataset_path: str | None = None) -> str:
    """The 4D dataset of an HDF5 file (``dataset_path`` if given, else the single 4D one)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as fh:
        if dataset_path:
            obj = fh.get(dataset_path)
            if not isinstance(obj, h5py.Dataset):
                raise PredictError(f"{path}: no dataset at {dataset_path!r}")
            return obj.name
        found: list[tuple[str, tuple[int, ...]]] = []
        fh.visititems(
            lambda name, obj: (
                found.append((name, obj.shape)) if isinstance(obj, h5py.Dataset) else None
            )
        )
    four = [name for name, shape in found if len(shape) == 4]
    if len(four) == 1:
        return "/" + four[0]
    listing = ", ".join(f"/{n} {tuple(s)}" for n, s in found) or "none"
    if not four:
        raise PredictError(f"{path} holds no 4D dataset (datasets: {listing})")
    raise PredictError(
        f"{path} holds several 4D datasets: choose one with --dataset-path "
        f"({', '.join('/' + n for n in four)})"
    )


class DataFile:
    """A user's 4D array, opened lazily: ``.npy`` (memory-mapped) or HDF5 (h5py dataset)."""

    def __init__(self, path: str | Path, dataset_path: str | None = None) -> None:
        self.path = Path(path)
        self._fh = None
        suffix = self.path.suffix.lower()
        if not self.path.exists():
            raise PredictError(f"data file {self.path} does not exist")
        if suffix == ".npy":
            self.array = np.load(self.path, mmap_mode="r")
            self.dataset_path = None
        elif suffix in HDF5_SUFFIXES:
            import h5py

            self.dataset_path = find_hdf5_dataset(self.path, dataset_path)
            self._fh = h5py.File(self.path, "r")
            self.array = self._fh[self.dataset_path]
        else:
            raise PredictError(
                f"{self.path}: unknown file type {suffix!r} (need .npy or HDF5: "
                f"{', '.join(HDF5_SUFFIXES)})"
            )
        self.shape = tuple(int(n) for n in self.array.shape)
        self.dtype = str(self.array.dtype)

    def read_x(self, layout: Sequence[str], first: int, last: int) -> np.ndarray:
        """Probe columns ``first..last`` along x (inclusive), all of y, as (x, y, kx, ky)."""
        index = [slice(None)] * 4
        index[list(layout).index("x")] = slice(first, last + 1)
        return to_canonical(np.asarray(self.array[tuple(index)]), layout)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class NetworkInput:
    lines: np.ndarray  # (ny, nx, k, k) float32: one classifier example per scan row
    average: np.ndarray  # (nx, k, k) float32: the mean over the rows (regression input)
    mean_pattern_total: float


def prepare_input(
    block: np.ndarray, first: int, card: ModelCard, calib: Calibration, center: Sequence[float]
) -> NetworkInput:
    """Canonical probe columns ``first..`` (x, y, kx, ky) -> the networks' input."""
    x = np.asarray(block, dtype=np.float64) / calib.incident_intensity
    if not np.isfinite(x).all():
        raise PredictError("the data holds NaN or infinite values")
    patterns = resample_patterns(
        x, calib.sampling_mrad, center, card.sampling, card.center, card.pattern_px
    )  # (m, ny, k, k)
    positions = (first + np.arange(x.shape[0])) * calib.scan_step_x_A - calib.interface_x_A
    on_grid = interpolate_scan(patterns, positions, card.scan_x, POSITION_SNAP_A)
    lines = np.ascontiguousarray(on_grid.transpose(1, 0, 2, 3))
    return NetworkInput(
        lines=lines.astype(np.float32),
        average=lines.mean(axis=0).astype(np.float32),
        mean_pattern_total=float(lines.sum(axis=(-2, -1)).mean()),
    )
