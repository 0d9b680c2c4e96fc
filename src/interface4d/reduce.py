"""Descriptors cut from one simulated cell: crop, bin, keep a band across the interface.

:func:`reduce_cells` turns simulated cells ``results/sims/<cell>.h5`` into one reduced file
(the workflow writes one per *block*, ``results/reduced/<block>.h5``: the step cells of one
thickness, or its intermixed cells of every Ti fraction and seed) holding, for each cell, in
the group named by its cell id,

* ``lines`` float32 (ny, nx, k, k): for each scan column along y the sequence of patterns along
  x across the interface; each is one classification example (as in Oxley et al. 2020);
* ``average`` float32 (nx, k, k): the mean of ``lines`` over the y positions, i.e. over one unit
  cell along the interface; the regression example.

Detector geometry. abTEM's cropped detector array of n pixels per axis has its zero frequency
at index ``n // 2``. :func:`crop_center` (:mod:`interface4d.cropping`, shared with the
simulation's cropped store) keeps the ``2 m + 1`` pixels ``n//2 - m .. n//2 + m``
with ``m = floor(crop_mrad / sampling)``: exactly symmetric about the zero frequency.
:func:`bin_patterns` then sums ``b x b`` blocks; a remainder ``r = n % b`` is dropped
``r // 2`` pixels at the low end and ``r - r // 2`` at the high end. An odd crop (always the
case after :func:`crop_center`) with an even ``b`` leaves an odd remainder, so one extra pixel
goes from the high end: the zero frequency then lies in binned pixel ``k // 2`` (abTEM's own
convention), half an original pixel off that bin's centre. The exact position of the zero
frequency in binned pixel coordinates is recorded as the ``center_px`` attribute. An odd ``b``
with an odd number of whole bins keeps the result exactly symmetric.

TensorFlow and abTEM are never imported here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from interface4d import versions
from interface4d.cropping import TOL as _TOL
from interface4d.cropping import band_mask, crop_center
from interface4d.h5io import atomic_h5, require_complete, set_attrs
from interface4d.provenance import file_sha256
from interface4d.settings import REDUCE_KEYS

FORMAT = "interface4d-reduced/2"  # /2: one group per cell, several cells a file
# The file's own description of its layout (its `layout` attribute).
LAYOUT = (
    "One group per cell, named by its id (t100/step-d13): `lines` float32 (scan y, scan x, kx, "
    "ky), the patterns across the interface of each scan column (a classification example "
    "each); `average` float32 (scan x, kx, ky), their mean over y (the regression example); "
    "attributes: the cell's settings, the reduction, samplings (mrad per binned pixel), "
    "center_px, kept scan positions (A), source file and sha256 hashes. Root attributes: "
    "format, cells (in order), reduction, versions. Written by interface4d.reduce."
)
_log = logging.getLogger(__name__)


def bin_slices(n: int, b: int) -> tuple[int, int]:
    """(first, stop) of the pixels :func:`bin_patterns` keeps on an axis of ``n`` pixels."""
    if not isinstance(b, (int, np.integer)) or b < 1:
        raise ValueError(f"reduction.bin = {b!r}: must be a positive integer")
    if b > n:
        raise ValueError(f"reduction.bin = {b}: larger than the {n}-pixel pattern")
    r = n % b
    return r // 2, n - (r - r // 2)


def bin_patterns(x: np.ndarray, b: int) -> np.ndarray:
    """Sum ``b x b`` pixel blocks on the last two axes (float64 sums, returned as x's dtype).

    A remainder ``r = n % b`` is dropped ``r // 2`` pixels at the low end and ``r - r // 2`` at
    the high end (symmetric when ``r`` is even; see the module doc for odd ``r``). ``b = 1``
    returns a copy. Raises ValueError if ``b`` is not a positive integer or exceeds an axis.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"bin_patterns needs at least 2 axes, got shape {x.shape}")
    (a0, a1), (b0, b1) = (bin_slices(n, b) for n in x.shape[-2:])
    kept = x[..., a0:a1, b0:b1].astype(np.float64)
    kx, ky = (a1 - a0) // b, (b1 - b0) // b
    out = kept.reshape(*x.shape[:-2], kx, b, ky, b).sum(axis=(-3, -1))
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


def binned_center(n_cropped: int, b: int) -> float:
    """Position of the zero frequency, in binned pixel coordinates (pixel centres at 0, 1, ..),
    of an odd crop of ``n_cropped`` pixels binned by ``b``."""
    first, _ = bin_slices(n_cropped, b)
    center = n_cropped // 2 - first  # original pixels from the first kept one
    return (center + 0.5) / b - 0.5


def array_sha256(*arrays: np.ndarray) -> str:
    """Content hash of arrays: dtype, shape and C-order bytes of each, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def reduce_params(reduction: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a ``reduction`` block that decide a reduced file, checked."""
    missing = [k for k in REDUCE_KEYS if k not in reduction]
    if missing:
        raise ValueError(f"reduction block lacks the keys {missing} (have {sorted(reduction)})")
    window = reduction["window_x"]
    if window is not None:
        if len(window) != 2 or not float(window[1]) > float(window[0]):
            raise ValueError(f"reduction.window_x = {window!r}: need [start, end] with end > start")
        window = [float(window[0]), float(window[1])]
    return {
        "crop_mrad": float(reduction["crop_mrad"]),
        "bin": int(reduction["bin"]),
        "window_x": window,
    }


def _select_x(
    scan_x: np.ndarray, settings: Mapping[str, Any], window: list[float] | None, path: Path
) -> tuple[np.ndarray, float]:
    """Boolean mask of the kept scan columns and the interface x (Angstrom). ``scan_x``: the
    positions the file holds (the band ``simulation.store`` kept, the whole scan if full)."""
    from interface4d.simulate import stored_window
    from interface4d.structures import interface_x

    st = settings["structure"]
    xc = interface_x(st["interface_layer"], st["lattice_constant"])
    if window is None:
        return np.ones(scan_x.shape, dtype=bool), xc
    x0, x1 = stored_window(settings)
    lo, hi = xc + window[0], xc + window[1]
    if lo < x0 - _TOL or hi > x1 + _TOL:
        raise ValueError(
            f"reduction.window_x = {window}: lies outside the simulated scan of {path} "
            f"([{x0 - xc:.4g}, {x1 - xc:.4g}] A from the interface)"
        )
    rel = scan_x - xc
    keep = band_mask(rel, window)
    if not keep.any():
        raise ValueError(
            f"reduction.window_x = {window}: keeps no probe position of {path} (positions at "
            f"{np.round(rel, 4).tolist()} A from the interface)"
        )
    return keep, xc


def _reduce_one(sim_path: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptors of one simulated cell: ``lines``, ``average``, ``attrs``, ``settings``
    (the simulation's settings JSON, verbatim). Refuses an incomplete simulation file."""
    sim_path = Path(sim_path)
    with h5py.File(sim_path, "r") as fh:
        require_complete(fh, sim_path)
        cbed = fh["cbed"][()]
        scan_x = fh["scan/x"][()]
        scan_y = fh["scan/y"][()]
        settings_json = fh.attrs["settings"]
        sampling = json.loads(fh.attrs["angular_sampling_mrad"])
    settings = json.loads(settings_json)
    if cbed.ndim != 4 or cbed.shape[:2] != (scan_x.size, scan_y.size):
        raise ValueError(
            f"{sim_path}: cbed of shape {cbed.shape} does not match the scan "
            f"({scan_x.size} x {scan_y.size} positions)"
        )
    keep, xc = _select_x(scan_x, settings, params["window_x"], sim_path)
    try:
        cropped = crop_center(cbed[keep], params["crop_mrad"], sampling)
    except ValueError as exc:
        raise ValueError(f"{sim_path}: {exc}") from None
    binned = bin_patterns(cropped, params["bin"]).astype(np.float32)  # (nx, ny, k, k)
    lines = np.ascontiguousarray(binned.transpose(1, 0, 2, 3))  # (ny, nx, k, k)
    average = lines.astype(np.float64).mean(axis=0).astype(np.float32)
    b = params["bin"]
    attrs = {
        "cell": settings["cell"],
        "kind": settings["kind"],
        "reduction": dict(params),
        "angular_sampling_mrad": [float(s) * b for s in sampling],
        "source_angular_sampling_mrad": [float(s) for s in sampling],
        "crop_px": list(cropped.shape[-2:]),
        "center_px": [binned_center(n, b) for n in cropped.shape[-2:]],
        "interface_x_A": xc,
        "scan_x_A": scan_x[keep].tolist(),
        "scan_x_relative_A": (scan_x[keep] - xc).tolist(),
        "scan_y_A": scan_y.tolist(),
        "axes_lines": ["scan_y", "scan_x", "kx", "ky"],
        "axes_average": ["scan_x", "kx", "ky"],
        "source": str(sim_path),
        "source_sha256": file_sha256(sim_path),
        "source_cbed_sha256": array_sha256(cbed),
        "data_sha256": array_sha256(lines, average),
    }
    return {"lines": lines, "average": average, "attrs": attrs, "settings": settings_json}


def reduce_cells(
    sim_paths: Sequence[str | Path],
    out_path: str | Path,
    reduction: Mapping[str, Any],
    workers: int = 1,
) -> Path:
    """Reduce simulated cells (see the module doc) into one file, written atomically.

    The file holds one HDF5 group per cell, named by its cell id (``t100/step-d13``), with the
    datasets ``lines`` and ``average`` and the cell's provenance as attributes (its settings
    verbatim, the source file and content hashes, the samplings, the kept positions); the root
    lists the ``cells`` in order and records the ``reduction``. ``reduction`` is the config's
    ``reduction`` block; only :data:`REDUCE_KEYS` are used and recorded. ``workers`` > 1
    reduces that many cells at once in worker processes (the file is written by this one).
    Refuses an incomplete simulation file and a cell given twice. Returns ``out_path``.
    """
    params = reduce_params(reduction)
    sim_paths = [Path(p) for p in sim_paths]
    if not sim_paths:
        raise ValueError(f"{out_path}: no simulated cells to reduce")
    out_path = Path(out_path)
    done: list[str] = []
    every = max(1, len(sim_paths) // 20)  # progress: about 20 lines for a block of any size
    with atomic_h5(out_path) as out:
        for i, cell in enumerate(_reduced_in_order(sim_paths, params, workers), 1):
            name = cell["attrs"]["cell"]
            if name in out:
                raise ValueError(f"{out_path}: cell {name} given twice ({cell['attrs']['source']})")
            group = out.create_group(name)
            group.create_dataset("lines", data=cell["lines"])
            group.create_dataset("average", data=cell["average"])
            set_attrs(group, cell["attrs"])
            group.attrs["settings"] = cell["settings"]  # verbatim, as the simulation recorded it
            done.append(name)
            if len(sim_paths) > 1 and (i % every == 0 or i == len(sim_paths)):
                _log.info("reduced %s (%d of %d cells)", name, i, len(sim_paths))
        set_attrs(
            out,
            {
                "format": FORMAT,
                "layout": LAYOUT,
                "cells": done,
                "reduction": params,
                "versions": versions("numpy", "h5py"),
            },
        )
    return out_path


def _reduced_in_order(
    sim_paths: Sequence[Path], params: Mapping[str, Any], workers: int
) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(sim_paths) == 1:
        for p in sim_paths:
            yield _reduce_one(p, params)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    n = min(workers, len(sim_paths))
    # spawn, not fork: the parent may hold an open HDF5 file (the output being written)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(partial(_reduce_one, params=params), sim_paths)


def reduce_cell(sim_path: str | Path, out_path: str | Path, reduction: Mapping[str, Any]) -> Path:
    """Reduce one simulated cell into a file of its own (:func:`reduce_cells` of one cell)."""
    return reduce_cells([sim_path], out_path, reduction)


@dataclass
class ReducedCell:
    """A reduced cell read back: arrays (None when read with ``data=False``) and metadata."""

    path: Path
    settings: dict[str, Any]
    reduction: dict[str, Any]
    lines_shape: tuple[int, ...]  # (ny, nx, k, k)
    angular_sampling: tuple[float, float]  # mrad per binned pixel
    scan_x_relative: np.ndarray  # kept positions, Angstrom from the interface
    attrs: dict[str, Any]
    lines: np.ndarray | None = None
    average: np.ndarray | None = None

    @property
    def cell(self) -> str:
        return self.settings["cell"]

    @property
    def kind(self) -> str:
        return self.settings["kind"]


def reduced_cells(path: str | Path) -> list[str]:
    """The cell ids a reduced file holds, in its order (refusing an incomplete file)."""
    path = Path(path)
    with h5py.File(path, "r") as fh:
        return _cells_of(fh, path)


def _cells_of(fh: h5py.File, path: Path) -> list[str]:
    require_complete(fh, path)
    if fh.attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not a reduced file (format {fh.attrs.get('format')!r})")
    return list(json.loads(fh.attrs["cells"]))


def read_reduced(path: str | Path, cell: str | None = None, data: bool = True) -> ReducedCell:
    """Read one cell of a reduced file (refusing an incomplete file); ``data=False`` reads
    metadata only. ``cell`` may be left out when the file holds one cell.

    With ``data=True`` the arrays are checked against the recorded ``data_sha256``.
    """
    path = Path(path)
    with h5py.File(path, "r") as fh:
        cells = _cells_of(fh, path)
        if cell is None:
            if len(cells) != 1:
                raise ValueError(f"{path} holds {len(cells)} cells: say which one to read")
            cell = cells[0]
        if cell not in cells:
            raise ValueError(f"{path} holds no cell {cell} (it holds {len(cells)}: {cells[:3]}...)")
        return _read_group(fh[cell], path, data)


def read_reduced_all(path: str | Path, data: bool = False) -> list[ReducedCell]:
    """Every cell of a reduced file, in its order (metadata only unless ``data``)."""
    path = Path(path)
    with h5py.File(path, "r") as fh:
        return [_read_group(fh[c], path, data) for c in _cells_of(fh, path)]


def _read_group(group: h5py.Group, path: Path, data: bool) -> ReducedCell:
    attrs = dict(group.attrs)
    shape = tuple(int(n) for n in group["lines"].shape)
    lines = group["lines"][()] if data else None
    average = group["average"][()] if data else None
    if data and array_sha256(lines, average) != attrs["data_sha256"]:
        raise ValueError(
            f"{path}: the arrays of {group.name.lstrip('/')} do not match their recorded "
            "data_sha256 (corrupt)"
        )
    sampling = json.loads(attrs["angular_sampling_mrad"])
    return ReducedCell(
        path=path,
        settings=json.loads(attrs["settings"]),
        reduction=json.loads(attrs["reduction"]),
        lines_shape=shape,
        angular_sampling=(float(sampling[0]), float(sampling[1])),
        scan_x_relative=np.asarray(json.loads(attrs["scan_x_relative_A"]), dtype=np.float64),
        attrs=attrs,
        lines=lines,
        average=average,
    )
