"""A gathered dataset's examples by reference to the reduced files (issue 14, storage).

A dataset's ``x`` (:func:`interface4d.datasets.gather_classify`) is an HDF5 virtual dataset:
row i maps to ``<cell>/lines[line]`` (or ``<cell>/average``) of the cell's reduced file, named
relative to the dataset's folder (HDF5 looks there first), so the dataset holds no copy and a
results folder moves or copies as a whole. HDF5 reads a missing source as the fill value
(NaN here) without a word: :func:`check_sources` refuses such a file first, in one line
naming it. :class:`SourceRows` reads rows straight from the reduced files: the arrays the
virtual dataset maps, without HDF5's walk of every mapping on each read (at the paper's
14,209 cells, one mapping each, that walk dominated a batch read; benchmarks/RESULTS.md,
"Datasets by reference").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from interface4d.h5io import require_complete
from interface4d.reduce import ReducedCell


def x_layout(
    out_h5: Path,
    cells: Sequence[ReducedCell],
    examples: Sequence[tuple[int, int | None, str, float]],
) -> tuple[h5py.VirtualLayout, list[str]]:
    """``x`` as a virtual layout over the reduced files, and each cell's file as ``x`` names
    it (relative to the dataset's folder). A run of rows holding consecutive lines of one cell
    is one mapping (a classify set: one per cell), an average one mapping per row."""
    here = out_h5.parent.resolve()
    files = [os.path.relpath(c.path.resolve(), here) for c in cells]
    layout = h5py.VirtualLayout((len(examples), *cells[0].lines_shape[1:]), np.float32)
    row = 0
    while row < len(examples):
        ci, line = examples[row][0], examples[row][1]
        c = cells[ci]
        if line is None:
            layout[row] = h5py.VirtualSource(files[ci], f"{c.cell}/average", c.lines_shape[1:])
            row += 1
            continue
        end = row + 1
        while end < len(examples) and examples[end][:2] == (ci, line + end - row):
            end += 1
        source = h5py.VirtualSource(files[ci], f"{c.cell}/lines", c.lines_shape)
        layout[row:end] = source[line : line + end - row]
        row = end
    return layout, files


def create_x(fh: h5py.File, layout: h5py.VirtualLayout, fillvalue: float) -> h5py.Dataset:
    """``x`` in ``fh`` as the virtual dataset ``layout``, without the creation and modification
    times HDF5 writes into a virtual dataset's header by default (h5py's
    ``create_virtual_dataset`` leaves them on), so that the same gather gives the same bytes
    (the dataset's sha256 is the trained models' provenance)."""
    from h5py import h5d, h5s, h5t

    dcpl = layout._get_dcpl(fh.filename)
    dcpl.set_fill_value(np.array([fillvalue], dtype=layout.dtype))
    dcpl.set_obj_track_times(False)
    space = h5s.create_simple(layout.shape)
    tid = h5t.py_create(np.dtype(layout.dtype), logical=1)
    return h5py.Dataset(h5d.create(fh.id, name=b"x", tid=tid, space=space, dcpl=dcpl))


class SourceError(OSError):
    """A dataset's ``x`` reads a reduced file that is missing or no longer what was gathered."""


def check_sources(fh: h5py.File, path: str | Path) -> None:
    """Refuse, in one line naming the file, a dataset whose virtual ``x`` reads a reduced file
    that is missing, incomplete, lacks one of its cells or holds other data for it than when
    gathered (its ``data_sha256`` attribute against the one recorded; the arrays are not
    reread). Without this check a missing file reads as NaN (``x``'s fill value). A copied
    ``x`` (not virtual) passes."""
    if not fh["x"].is_virtual:
        return
    path = Path(path)
    src = fh["sources"]
    by_file: dict[str, list[tuple[str, str]]] = {}
    for cell, file, digest in zip(
        *(src[k].asstr()[()] for k in ("cell", "file", "data_sha256")), strict=True
    ):
        by_file.setdefault(file, []).append((cell, digest))
    for file, members in by_file.items():
        reduced = Path(os.path.normpath(path.parent / file))  # HDF5 looks beside the dataset
        if not (path.parent / file).is_file():
            raise SourceError(
                f"{reduced}: the reduced file that {path} reads its examples from is missing "
                "(rerun its reduce job; move or copy a results folder as a whole)"
            )
        with h5py.File(path.parent / file, "r") as red:
            require_complete(red, reduced)
            for cell, digest in members:
                if cell not in red or red[cell].attrs.get("data_sha256") != digest:
                    raise SourceError(
                        f"{reduced}: cell {cell} is missing or differs from the one {path} "
                        "was gathered from (data_sha256); gather the dataset again"
                    )


class SourceRows:
    """The rows of a dataset's virtual ``x`` read from the reduced files it maps (each row's
    cell and line from the dataset's ``cell`` and ``line``; -1: the cell's ``average``). Files
    and datasets are opened on first use and kept open until :meth:`close`."""

    def __init__(self, fh: h5py.File, path: str | Path) -> None:
        src = fh["sources"]
        self._file_of = dict(zip(src["cell"].asstr()[()], src["file"].asstr()[()], strict=True))
        self._cells = fh["cell"].asstr()[()]
        self._lines = fh["line"][()].astype(np.int64)
        self._dir = Path(path).parent
        self._files: dict[str, h5py.File] = {}
        self._sets: dict[tuple[str, bool], h5py.Dataset] = {}

    def _dataset(self, cell: str, average: bool) -> h5py.Dataset:
        key = (cell, average)
        if key not in self._sets:
            file = self._file_of[cell]
            if file not in self._files:
                self._files[file] = h5py.File(self._dir / file, "r")
            self._sets[key] = self._files[file][f"{cell}/{'average' if average else 'lines'}"]
        return self._sets[key]

    def read(self, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """float32 (len(rows), *shape): rows ``rows`` of ``x``, in that order."""
        out = np.empty((len(rows), *shape), np.float32)
        for k, row in enumerate(rows):
            line = int(self._lines[row])
            data = self._dataset(self._cells[row], line < 0)
            out[k] = data[()] if line < 0 else data[line]
        return out

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        self._sets.clear()
