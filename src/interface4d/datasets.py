"""Training sets gathered from reduced cells, split into training and validation, and a batch
reader.

The inputs are reduced files (:func:`interface4d.reduce.reduce_cells`), each holding one or
more cells (the workflow's per-block files); every cell they hold is gathered.

Two tasks (Oxley et al. 2020):

* classify (:func:`gather_classify`): every step (class 0) and diffusion (class 1) cell of all
  thicknesses; each scan column along y of a cell (a line of patterns across the interface,
  ``(nx, k, k)``) is one example;
* regress (:func:`gather_regress`): the step cells of one thickness; the example is the
  unit-cell average ``(nx, k, k)``, the target the step fraction ``depth / nz``.

The train/validation split is :mod:`interface4d.splits`.

Output file (``x``, ``y``, ``split``, ``cell``, ``line``, ``sources/*``, attrs) and manifest
CSV layouts are documented in :func:`gather_classify`; ``x`` is an HDF5 virtual dataset over
the reduced files (no copy of their arrays; they are named relative to the dataset's folder, so
a results folder moves or copies as a whole). :class:`H5Examples` reads batches of one split
without loading the file, after :func:`~interface4d.reducedrefs.check_sources` (a missing or
changed reduced file is a one-line error, not silent fill values).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from interface4d import versions
from interface4d.h5io import atomic_h5, atomic_path, require_complete, set_attrs
from interface4d.reduce import ReducedCell, read_reduced, read_reduced_all, reduce_params
from interface4d.reducedrefs import SourceRows, check_sources, create_x, x_layout
from interface4d.splits import PLACEMENTS, assign_split, example_key, example_uid

FORMAT = "interface4d-examples/2"  # /2: `x` a virtual dataset over the reduced files
# The file's own description of its layout (its `layout` attribute).
LAYOUT = (
    "`x` float32 (example, scan x, kx, ky): an HDF5 virtual dataset, no copy: each row is a "
    "line (`lines`) or the average (`average`) of a cell in a reduced file, the files named "
    "relative to this file's folder (`sources/file`, attribute x_files; keep the results folder "
    "together); `y` (example,): int8 class (0 step, 1 diffusion) or float32 step fraction; "
    "`split` uint8 (0 train, 1 val); `cell` and `line` (-1: a unit-cell average) of each "
    "example; `sources/{cell,path,file,data_sha256,source_cbed_sha256}`, one row per reduced "
    "cell. Attributes: task, split rule and seeds, counts, example_axes, angular_sampling_mrad, "
    "scan_x_relative_A, center_px, x_storage, x_files, versions. The CSV manifest beside it has "
    "one row per example. Written by interface4d.datasets; read it with H5Examples (which "
    "checks the reduced files first: a missing one reads as NaN)."
)
CLASSES = {"step": 0, "diffusion": 1}
SPLITS = {"train": 0, "val": 1}
MANIFEST_COLUMNS = (
    "index",
    "cell",
    "class",
    "kind",
    "thickness",
    "step_fraction",
    "ti_fraction",
    "seed",
    "line",
    "split",
    "target",
    "source",
)


# --------------------------------------------------------------------------- gathering


def _check_compatible(cells: Sequence[ReducedCell], reduction: Mapping[str, Any]) -> None:
    """Every cell reduced with ``reduction``, one example shape, one sampling, one x band."""
    wanted = reduce_params(reduction)
    ref = cells[0]
    seen: dict[str, Path] = {}
    for c in cells:
        if c.cell in seen:
            raise ValueError(f"cell {c.cell} given twice: {seen[c.cell]} and {c.path}")
        seen[c.cell] = c.path
        if c.reduction != wanted:
            raise ValueError(
                f"{c.path} was reduced with {c.reduction}, not with this reduction {wanted} "
                "(rerun its reduce job)"
            )
        if c.lines_shape[1:] != ref.lines_shape[1:]:
            raise ValueError(
                f"{c.path}: examples of shape (nx, kx, ky) = {c.lines_shape[1:]}, but "
                f"{ref.path} has {ref.lines_shape[1:]}; all cells must share them"
            )
        if not np.allclose(c.angular_sampling, ref.angular_sampling, rtol=1e-6, atol=0):
            raise ValueError(
                f"{c.path}: angular sampling {c.angular_sampling} mrad/px differs from "
                f"{ref.angular_sampling} of {ref.path}"
            )
        if not np.allclose(c.scan_x_relative, ref.scan_x_relative, rtol=0, atol=1e-6):
            raise ValueError(
                f"{c.path}: probe positions {np.round(c.scan_x_relative, 4).tolist()} A from the "
                f"interface differ from those of {ref.path}"
            )


def _open_all(paths: Iterable[str | Path]) -> list[ReducedCell]:
    """Every cell of the reduced files (metadata), sorted by cell id."""
    cells = [c for p in paths for c in read_reduced_all(p)]
    return sorted(cells, key=lambda c: c.cell)


def _write_manifest(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    for col in ("step_fraction", "seed", "line"):
        df[col] = df[col].astype("Float64" if col == "step_fraction" else "Int64")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _row(c: ReducedCell, index: int, line: int | None, split: str, target: float) -> dict:
    s = c.settings
    return {
        "index": index,
        "cell": c.cell,
        "class": CLASSES[c.kind],
        "kind": c.kind,
        "thickness": s["thickness"],
        "step_fraction": s["step_fraction"],
        "ti_fraction": s["ti_fraction"],
        "seed": s["seed"],
        "line": line,
        "split": split,
        "target": target,
        "source": str(c.path),
    }


def _write_examples(
    out_h5: Path,
    task: str,
    cells: Sequence[ReducedCell],
    examples: Sequence[tuple[int, int | None, str, float]],
    y_dtype: type,
    attrs: Mapping[str, Any],
) -> None:
    """``examples``: (cell position, line or None for the average, split, target) in order.
    ``x`` references the reduced files (:func:`~interface4d.reducedrefs.x_layout`); each
    cell's arrays are read once here, checked against their recorded data_sha256."""
    n = len(examples)
    data_hashes = [read_reduced(c.path, c.cell).attrs["data_sha256"] for c in cells]
    layout, files = x_layout(out_h5, cells, examples)
    with atomic_h5(out_h5) as fh:
        create_x(fh, layout, np.nan)
        fh.create_dataset("y", data=np.array([e[3] for e in examples], dtype=y_dtype))
        fh.create_dataset("split", data=np.array([SPLITS[e[2]] for e in examples], np.uint8))
        fh.create_dataset(
            "cell", data=np.array([cells[e[0]].cell for e in examples], dtype=h5py.string_dtype())
        )
        fh.create_dataset(
            "line", data=np.array([-1 if e[1] is None else e[1] for e in examples], np.int16)
        )
        src = fh.create_group("sources")
        str_t = h5py.string_dtype()
        src.create_dataset("cell", data=np.array([c.cell for c in cells], dtype=str_t))
        src.create_dataset("path", data=np.array([str(c.path) for c in cells], dtype=str_t))
        src.create_dataset("file", data=np.array(files, dtype=str_t))
        src.create_dataset("data_sha256", data=np.array(data_hashes, dtype=str_t))
        src.create_dataset(
            "source_cbed_sha256",
            data=np.array([c.attrs["source_cbed_sha256"] for c in cells], dtype=str_t),
        )
        listing = hashlib.sha256(
            json.dumps(sorted(zip([c.cell for c in cells], data_hashes, strict=True))).encode()
        ).hexdigest()
        splits = np.array([SPLITS[e[2]] for e in examples])
        set_attrs(
            fh,
            {
                "format": FORMAT,
                "layout": LAYOUT,
                "task": task,
                **attrs,
                "n_examples": n,
                "n_train": int((splits == 0).sum()),
                "n_val": int((splits == 1).sum()),
                "n_cells": len(cells),
                "example_axes": ["scan_x", "kx", "ky"],
                "angular_sampling_mrad": list(cells[0].angular_sampling),
                "scan_x_relative_A": cells[0].scan_x_relative.tolist(),
                "center_px": json.loads(cells[0].attrs["center_px"]),
                "split_codes": SPLITS,
                "sources_sha256": listing,
                "x_storage": "virtual",
                "x_files": sorted(set(files)),
                "versions": versions("numpy", "h5py", "pandas"),
            },
        )


def _split_params(reduction: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("val_fraction", "split", "split_seed") if k not in reduction]
    if missing:
        raise ValueError(f"reduction block lacks the keys {missing} (have {sorted(reduction)})")
    if reduction["split"] not in ("structure", "random"):
        raise ValueError(
            f"reduction.split = {reduction['split']!r}: must be 'structure' or 'random'"
        )
    placement = reduction.get("placement", "hash")
    if placement not in PLACEMENTS:
        raise ValueError(f"reduction.placement = {placement!r}: must be one of {PLACEMENTS}")
    return {
        "split": reduction["split"],
        "split_seed": int(reduction["split_seed"]),
        "val_fraction": float(reduction["val_fraction"]),
        "placement": placement,
    }


def _placement(params: Mapping[str, Any], protocol: str) -> str:
    """Even spacing places cells along a grid axis: the structure protocol's rule only."""
    return params["placement"] if protocol == "structure" else "hash"


def _split_attrs(reduction: Mapping[str, Any], protocol: str) -> dict[str, Any]:
    params = _split_params(reduction)
    quota = "k = round(val_fraction * n) (1 <= k <= n - 1 when n >= 2) of a stratum's n keys"
    if _placement(params, protocol) == "even":
        rule = (
            f"per stratum (kind, thickness), {quota} evenly spaced along its step depths "
            "(Ti fractions, seeds): sorted, those at floor((i + u) n / k), i < k, "
            "u = sha256(f'{seed}:offset:{stratum}') in [0, 1)"
        )
    else:
        rule = (
            f"per stratum (kind, thickness), {quota}: those first when ranked by "
            "sha256(f'{seed}:{key}')"
        )
    return {
        "reduction": dict(reduction),
        "split": protocol,
        "split_seed": params["split_seed"],
        "val_fraction": params["val_fraction"],
        "placement": _placement(params, protocol),
        "split_rule": rule,
    }


def gather_classify(
    reduced_paths: Iterable[str | Path],
    out_h5: str | Path,
    out_manifest: str | Path,
    reduction: Mapping[str, Any],
) -> None:
    """The classification set: each line of each step / diffusion cell is one example.

    ``reduction`` is the config's ``reduction`` block (crop_mrad, bin, window_x, val_fraction,
    split, split_seed); each file must have been reduced with its first three. Examples are
    ordered by cell id, then line.

    ``out_h5`` (written atomically):

    * ``x`` float32 (N, nx, k, k), a virtual dataset: row i is the cell's ``lines[line]``
      (``average`` for regress) in its reduced file, read through on access (no copy; the
      fill value of an unreadable source is NaN, and ``reducedrefs.check_sources`` refuses
      a missing or changed file first); ``y`` int8 (N,) (0 step, 1 diffusion; float32 step
      fraction for regress); ``split`` uint8 (N,) (0 train, 1 val); ``cell`` (N,) UTF-8;
      ``line`` int16 (N,) (-1 for a unit-cell average);
    * ``sources/{cell,path,file,data_sha256,source_cbed_sha256}`` (one row per input cell;
      ``path`` as given, ``file`` relative to ``out_h5``'s folder, as ``x`` names it);
    * attrs: format, task, reduction, split, split_seed, val_fraction, split_rule, classes,
      n_examples, n_train, n_val, n_cells, example_axes, angular_sampling_mrad,
      scan_x_relative_A, center_px, sources_sha256 (hash of the sorted (cell, data hash)
      list), x_storage ('virtual'), x_files (the reduced files ``x`` reads), versions,
      complete.

    ``out_manifest`` CSV, one row per example (in the order of ``x``): index, cell, class,
    kind, thickness, step_fraction, ti_fraction, seed (diffusion seed; empty for step), line
    (empty for an average), split ('train' | 'val'), target (the ``y`` value), source.
    """
    cells = _open_all(reduced_paths)
    if not cells:
        raise ValueError("gather_classify: no reduced cells given")
    for c in cells:
        if c.kind not in CLASSES:
            raise ValueError(f"{c.path}: a {c.kind!r} cell is neither class (step, diffusion)")
    _check_compatible(cells, reduction)
    params = _split_params(reduction)
    protocol = params["split"]
    keys: list[tuple[int, int, str]] = []  # (cell position, line, split key)
    for ci, c in enumerate(cells):
        for line in range(c.lines_shape[0]):
            keys.append(
                (ci, line, c.cell if protocol == "structure" else example_key(c.cell, line))
            )
    side = assign_split(
        [k for *_, k in keys],
        params["val_fraction"],
        params["split_seed"],
        placement=_placement(params, protocol),
    )
    examples = [(ci, line, side[key], float(CLASSES[cells[ci].kind])) for ci, line, key in keys]
    attrs = {**_split_attrs(reduction, protocol), "classes": CLASSES}
    _write_examples(Path(out_h5), "classify", cells, examples, np.int8, attrs)
    rows = [_row(cells[ci], i, line, s, int(t)) for i, (ci, line, s, t) in enumerate(examples)]
    _write_manifest(rows, Path(out_manifest))


def gather_regress(
    reduced_paths: Iterable[str | Path],
    thickness: float,
    out_h5: str | Path,
    out_manifest: str | Path,
    reduction: Mapping[str, Any],
) -> None:
    """The regression set of one thickness: one example per step cell, its unit-cell average.

    ``reduced_paths`` may hold any cells: the step cells of ``thickness`` are selected (an
    error if there are none). ``y`` is float32 ``step_fraction`` (= step_depth / nz). Layout as
    in :func:`gather_classify` (``line`` = -1); the split is always by structure (one example
    per cell makes the two protocols the same rule), over the selected cells.
    """
    cells = [
        c
        for c in _open_all(reduced_paths)
        if c.kind == "step" and math.isclose(c.settings["thickness"], thickness, abs_tol=1e-6)
    ]
    if not cells:
        raise ValueError(f"gather_regress: no step cell of thickness {thickness:g} A given")
    _check_compatible(cells, reduction)
    params = _split_params(reduction)
    side = assign_split(
        [c.cell for c in cells],
        params["val_fraction"],
        params["split_seed"],
        placement=_placement(params, "structure"),
    )
    examples = []
    for ci, c in enumerate(cells):
        s = c.settings
        target = s["step_depth"] / s["nz"]
        if not math.isclose(target, s["step_fraction"], rel_tol=1e-12):
            raise ValueError(f"{c.path}: step_fraction {s['step_fraction']} != depth / nz")
        examples.append((ci, None, side[c.cell], float(target)))
    attrs = {**_split_attrs(reduction, "structure"), "thickness": float(thickness)}
    _write_examples(Path(out_h5), "regress", cells, examples, np.float32, attrs)
    rows = [_row(cells[ci], i, None, s, t) for i, (ci, _, s, t) in enumerate(examples)]
    _write_manifest(rows, Path(out_manifest))


# --------------------------------------------------------------------------- reading


class H5Examples:
    """Batches of one split of a gathered file, read on demand (the file stays on disk).

    >>> with H5Examples("classify.h5", "train") as data:
    ...     for idx in np.array_split(rng.permutation(data.indices), steps):
    ...         x, y = data.batch(idx)

    * ``indices``: sorted row numbers of the split ('train', 'val' or 'all');
    * ``len(data)``: their number;
    * ``batch(idx)``: ``(x, y)`` for any row numbers, in the order given (duplicates allowed);
      only those rows are read;
    * ``attrs``: the file's attributes (JSON decoded); ``example_shape``: (nx, k, k).

    Opening refuses a missing or changed reduced file
    (:func:`~interface4d.reducedrefs.check_sources`); a virtual ``x`` is read straight from
    the reduced files (:class:`~interface4d.reducedrefs.SourceRows`: the same arrays, without
    HDF5's walk of every mapping). One instance holds its file open (and the reduced files
    it has read from): open one per process, close it (or use ``with``).
    """

    def __init__(self, path: str | Path, split: str) -> None:
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split = {split!r}: must be 'train', 'val' or 'all'")
        self.path = Path(path)
        self.split = split
        self._fh = h5py.File(self.path, "r")
        try:
            require_complete(self._fh, self.path)
            check_sources(self._fh, self.path)
            codes = self._fh["split"][()]
            self.attrs: dict[str, Any] = {
                k: _decode(v) for k, v in self._fh.attrs.items() if k != "complete"
            }
        except BaseException:
            self._fh.close()
            raise
        self._x = self._fh["x"]
        self._rows = SourceRows(self._fh, self.path) if self._x.is_virtual else None
        self._y = self._fh["y"]
        self._cells: np.ndarray | None = None
        self._uids: np.ndarray | None = None
        self.n_rows = int(codes.size)
        rows = np.arange(self.n_rows) if split == "all" else np.flatnonzero(codes == SPLITS[split])
        self.indices: np.ndarray = rows.astype(np.int64)
        self.example_shape: tuple[int, ...] = tuple(self._x.shape[1:])

    def __len__(self) -> int:
        return int(self.indices.size)

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if idx.size == 0:
            return (
                np.empty((0, *self.example_shape), np.float32),
                np.empty((0,), self._y.dtype),
            )
        if idx.min() < 0 or idx.max() >= self.n_rows:
            raise IndexError(f"rows {idx.min()}..{idx.max()} outside 0..{self.n_rows - 1}")
        rows, inverse = np.unique(idx, return_inverse=True)  # h5py wants sorted unique rows
        x = self._x[rows] if self._rows is None else self._rows.read(rows, self.example_shape)
        return x[inverse], self._y[rows][inverse]

    def targets(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """``y`` of rows ``idx`` (the patterns are not read)."""
        idx = np.asarray(idx, dtype=np.int64).ravel()
        if idx.size == 0:
            return np.empty((0,), self._y.dtype)
        rows, inverse = np.unique(idx, return_inverse=True)
        return self._y[rows][inverse]

    @property
    def cells(self) -> np.ndarray:
        """The cell id of every row of the file (not only this split's), as str objects."""
        if self._cells is None:
            self._cells = np.asarray(self._fh["cell"].asstr()[()], dtype=object)
        return self._cells

    def uids(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """:func:`example_uid` of rows ``idx`` (int64)."""
        if self._uids is None:
            lines = (
                self._fh["line"][()].astype(np.int64)
                if "line" in self._fh
                else np.full(self.n_rows, -1, np.int64)
            )
            self._uids = np.array(
                [example_uid(c, ln) for c, ln in zip(self.cells, lines, strict=True)],
                dtype=np.int64,
            )
        return self._uids[np.asarray(idx, dtype=np.int64)]

    def close(self) -> None:
        if self._rows is not None:
            self._rows.close()
        self._fh.close()

    def __enter__(self) -> H5Examples:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value
