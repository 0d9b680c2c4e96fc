"""Datasets that reference the reduced files instead of copying them (issue 14, storage): ``x``
is an HDF5 virtual dataset over the blocks' reduced files, read bit for bit as a copy would be;
a results folder moved or copied as a whole stays readable; a missing or changed reduced file
is a one-line error naming it (HDF5 alone would read fill values). Real files: synthetic
simulation files of the tiny campaign's cells reduced per block by the library, then gathered."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from interface4d import datasets, modelcard, reduce
from interface4d.config import validate_config
from interface4d.datasets import H5Examples
from interface4d.grid import blocks_of, enumerate_cells
from interface4d.reducedrefs import SourceError
from interface4d.settings import cell_settings
from tests.conftest import TINY
from tests.synthetic import write_sim

MRAD = 0.8402684121949495  # the tiny campaign's angular sampling (mrad per pixel)
REDUCTION = {
    "crop_mrad": 24.0,
    "bin": 2,
    "window_x": None,
    "val_fraction": 0.25,
    "split": "random",
    "split_seed": 3,
}
NAMES = ("classify.h5", "regress_t40.h5")


def _sims(root: Path, seed: int = 0) -> dict[str, list[Path]]:
    """Simulation files of the tiny campaign's 8 cells (random patterns), by block."""
    import yaml

    config = validate_config(yaml.safe_load(TINY.read_text()))
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for block, cells in blocks_of(enumerate_cells(config)[0]).items():
        for cell in cells:
            settings = cell_settings(config, cell)
            nx, ny = settings["simulation"]["scan"]["gpts"]
            cbed = rng.gamma(2.0, 1.0, (nx, ny, 98, 98)).astype(np.float32)
            path = write_sim(root / "sims" / f"{cell.id}.h5", settings, cbed, (MRAD, MRAD))
            out.setdefault(block, []).append(path)
    return out


def _gather(results: Path) -> None:
    """The workflow's gathers, run as its jobs run: from the campaign folder, relative paths."""
    blocks = sorted((results / "reduced").rglob("*.h5"))
    rel = [p.relative_to(results.parent) for p in blocks]
    d = Path(results.name) / "datasets"
    datasets.gather_classify(rel, d / "classify.h5", d / "classify.csv", REDUCTION)
    datasets.gather_regress(rel, 40.0, d / "regress_t40.h5", d / "regress_t40.csv", REDUCTION)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """A results folder: sims, one reduced file per block, the classify and t40 sets."""
    root = tmp_path_factory.mktemp("vds")
    results = root / "results"
    for block, sims in _sims(results).items():
        reduce.reduce_cells(sims, results / "reduced" / f"{block}.h5", REDUCTION)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        _gather(results)
    return results


def copied_x(dataset: Path) -> np.ndarray:
    """What the copying gather wrote as ``x``: each row's line (or average) read from its
    reduced file by the reduction's own reader (hash-checked), stacked."""
    with h5py.File(dataset) as fh:
        cells, lines = fh["cell"].asstr()[()], fh["line"][()]
        files = dict(
            zip(fh["sources/cell"].asstr()[()], fh["sources/path"].asstr()[()], strict=True)
        )
    rows = []
    for cell, line in zip(cells, lines, strict=True):
        red = reduce.read_reduced(dataset.parents[2] / files[cell], cell)
        rows.append(red.average if line < 0 else red.lines[line])
    return np.stack(rows)


def read_all(dataset: Path) -> tuple[np.ndarray, np.ndarray]:
    with H5Examples(dataset, "all") as data:
        return data.batch(data.indices)


def test_referenced_datasets_read_the_copied_arrays_bit_for_bit(campaign, tmp_path):
    for name in NAMES:
        path = campaign / "datasets" / name
        expected = copied_x(path)
        with h5py.File(path) as fh:
            x = fh["x"]
            assert x.is_virtual and x.dtype == np.float32 and x.shape == expected.shape
            assert np.array_equal(x[()], expected)  # bit for bit: float32, no NaN
            files = sorted({s.file_name for s in x.virtual_sources()})
            assert (
                files == datasets._decode(fh.attrs["x_files"])
                and fh.attrs["x_storage"] == "virtual"
            )
            assert all(f.startswith("../reduced/t") for f in files), files
            y = fh["y"][()]
        # the batch reader (straight from the reduced files), rows in any order with
        # duplicates, as training draws them
        rng = np.random.default_rng(0)
        with H5Examples(path, "train") as data:
            idx = np.concatenate([rng.permutation(data.indices), data.indices[:3]])
            xb, yb = data.batch(idx)
        assert np.array_equal(xb, expected[idx]) and np.array_equal(yb, y[idx])
        # the same arrays written as the copying gather wrote them (gzip chunks) read back equal
        copy = tmp_path / f"copy-{name}"
        with h5py.File(copy, "w") as fh:
            fh.create_dataset(
                "x", data=expected, chunks=(1, *expected.shape[1:]), compression="gzip",
                compression_opts=4, shuffle=True,
            )  # fmt: skip
        with h5py.File(copy) as fc, h5py.File(path) as fv:
            assert np.array_equal(fc["x"][()], fv["x"][()])
            assert fv.id.get_filesize() < fc.id.get_filesize() / 2  # no copy of the lines


def test_moving_or_copying_the_results_folder_keeps_the_datasets_readable(
    campaign, tmp_path, monkeypatch
):
    before = {name: read_all(campaign / "datasets" / name) for name in NAMES}
    first = tmp_path / "a" / "results"
    shutil.copytree(campaign, first)
    moved = tmp_path / "elsewhere" / "deeper" / "results-moved"
    moved.parent.mkdir(parents=True)
    shutil.move(first, moved)
    copied = tmp_path / "copy" / "results"
    shutil.copytree(moved, copied)
    monkeypatch.chdir(tmp_path)  # neither folder's parent: nothing resolves against the cwd
    for folder in (moved, copied):
        for name in NAMES:
            x, y = read_all(folder / "datasets" / name)
            assert np.array_equal(x, before[name][0]) and np.array_equal(y, before[name][1])
            with h5py.File(folder / "datasets" / name) as fh:  # HDF5's own read, as h5py users
                assert np.array_equal(fh["x"][()], x)
    # each copy reads its own reduced files: break the moved folder's, the copy still reads
    (moved / "reduced/t40/step.h5").unlink()
    x, _ = read_all(copied / "datasets/regress_t40.h5")
    assert np.array_equal(x, before["regress_t40.h5"][0])


def test_a_missing_reduced_file_is_a_one_line_error_naming_it(campaign, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(campaign, results)
    gone = results / "reduced/t60/diffusion.h5"
    gone.unlink()
    dataset = results / "datasets/classify.h5"
    with h5py.File(dataset) as fh:  # why the check: HDF5 alone reads the fill value
        assert np.isnan(fh["x"][()]).any()
    for opener in (lambda: H5Examples(dataset, "train"), lambda: modelcard._dataset_meta(dataset)):
        with pytest.raises(SourceError) as err:
            opener()
        message = str(err.value)
        assert "\n" not in message and str(gone) in message and "missing" in message, message
    read_all(results / "datasets/regress_t40.h5")  # the t40 steps only: unaffected


def test_a_changed_or_incomplete_reduced_file_is_refused_by_name(campaign, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(campaign, results)
    block = results / "reduced/t40/step.h5"
    sims = [results / "sims" / f"{c}.h5" for c in reduce.reduced_cells(block)]
    changed = _sims(tmp_path / "other", seed=1)["t40/step"]  # the same cells, other patterns
    reduce.reduce_cells(changed, block, REDUCTION)
    dataset = results / "datasets/regress_t40.h5"
    with pytest.raises(SourceError, match=r"cell t40/step-d\S+ is missing or differs") as err:
        H5Examples(dataset, "all")
    assert str(block) in str(err.value) and "\n" not in str(err.value)
    reduce.reduce_cells(sims, block, REDUCTION)  # reduced again from its own sims: readable
    assert np.array_equal(read_all(dataset)[0], copied_x(dataset))
    with h5py.File(block, "r+") as fh:
        del fh.attrs["complete"]
    with pytest.raises(OSError, match="incomplete") as err:
        H5Examples(dataset, "all")
    assert str(block) in str(err.value)


def test_the_same_gather_gives_the_same_bytes(campaign, tmp_path, monkeypatch):
    """A dataset's sha256 is the trained models' provenance: gathering the same reduced files
    again, a second later, writes byte-identical files (HDF5 would stamp a virtual dataset's
    header with its creation time unless told not to)."""
    import hashlib
    import time

    root = tmp_path / "again"
    shutil.copytree(campaign, root / "results", ignore=shutil.ignore_patterns("datasets"))
    time.sleep(1.1)
    monkeypatch.chdir(root)
    _gather(root / "results")
    for name in NAMES:
        a, b = campaign / "datasets" / name, root / "results" / "datasets" / name
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
        with h5py.File(b) as fh:
            assert fh["x"].is_virtual
