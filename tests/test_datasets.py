"""Gathered training sets from real tiny simulations: counts, classes, the two split
protocols and their stability, the regression set, `x` read through the reduced files, the
batch reader, refusals."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from interface4d import datasets, reduce
from interface4d.config import validate_config
from interface4d.datasets import H5Examples
from interface4d.grid import enumerate_cells, parse_cell
from interface4d.settings import cell_settings
from interface4d.simulate import simulate_cell
from interface4d.splits import assign_split, dev_cells, example_key, split_hash
from tests.conftest import TINY

REDUCTION = {
    "crop_mrad": 24.0,
    "bin": 2,
    "window_x": None,
    "val_fraction": 0.2,
    "split": "structure",
    "split_seed": 0,
}
LINES = 2  # tiny scan gpts along y
NX, K = 8, 28


@pytest.fixture(scope="module")
def tiny_module_config() -> dict:
    with open(TINY) as fh:
        return validate_config(yaml.safe_load(fh))


@pytest.fixture(scope="module")
def reduced(tiny_module_config, tmp_path_factory) -> dict[str, Path]:
    """The 8 cells of the tiny campaign, simulated for real and reduced: {cell id: path}."""
    root = tmp_path_factory.mktemp("campaign")
    out = {}
    for cell in enumerate_cells(tiny_module_config)[0]:
        sim = simulate_cell(cell_settings(tiny_module_config, cell), root / "sims" / f"{cell}.h5")
        out[cell.id] = reduce.reduce_cell(sim, root / "reduced" / f"{cell}.h5", REDUCTION)
    assert len(out) == 8
    return out


def gather(paths, tmp_path: Path, name: str = "classify", **changes):
    red = {**REDUCTION, **changes}
    h5, csv = tmp_path / f"{name}.h5", tmp_path / f"{name}.csv"
    datasets.gather_classify(list(paths), h5, csv, red)
    return h5, pd.read_csv(csv)


# --------------------------------------------------------------------------- classify


def test_block_files_gather_exactly_as_one_file_per_cell(reduced, tmp_path):
    """The workflow's files (one per block: a thickness's steps, its intermixed cells) give
    the same datasets as one file per cell; the manifest names the block file as the source."""
    from interface4d.grid import blocks_of

    by_block = blocks_of(parse_cell(c) for c in reduced)
    assert sorted(by_block) == [
        "t40/diffusion", "t40/step", "t60/diffusion", "t60/step",
    ]  # fmt: skip
    blocks = []
    for block, cells in by_block.items():
        sims = [Path(reduce.read_reduced(reduced[c.id], data=False).attrs["source"]) for c in cells]
        blocks.append(reduce.reduce_cells(sims, tmp_path / "blocks" / f"{block}.h5", REDUCTION))
    h_cells, m_cells = gather(reduced.values(), tmp_path, "per_cell")
    h_blocks, m_blocks = gather(blocks, tmp_path, "per_block")
    with h5py.File(h_cells) as a, h5py.File(h_blocks) as b:
        for name in ("x", "y", "split", "cell", "line"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
        assert a.attrs["sources_sha256"] == b.attrs["sources_sha256"]
    cols = [c for c in m_cells.columns if c != "source"]
    pd.testing.assert_frame_equal(m_cells[cols], m_blocks[cols])
    for cell, source in zip(m_blocks["cell"], m_blocks["source"], strict=True):
        assert source == str(tmp_path / "blocks" / f"{parse_cell(cell).block}.h5")
    # the regression set of a thickness reads its step block
    step = tmp_path / "blocks" / "t60/step.h5"
    datasets.gather_regress([step], 60, tmp_path / "r.h5", tmp_path / "r.csv", REDUCTION)
    assert sorted(pd.read_csv(tmp_path / "r.csv")["cell"]) == ["t60/step-d11", "t60/step-d5"]


def test_classify_set_holds_every_line_of_every_cell(reduced, tmp_path):
    h5, manifest = gather(reduced.values(), tmp_path)
    assert list(manifest.columns) == list(datasets.MANIFEST_COLUMNS)
    assert len(manifest) == len(reduced) * LINES == 16
    assert (manifest.groupby("cell").size() == LINES).all()
    assert list(manifest["index"]) == list(range(16))
    assert not list(tmp_path.glob("*.part-*"))
    for _, row in manifest.iterrows():
        cell = parse_cell(row["cell"])
        assert row["kind"] == cell.kind and row["class"] == {"step": 0, "diffusion": 1}[cell.kind]
        assert row["thickness"] == cell.thickness and row["target"] == row["class"]
        assert row["source"] == str(reduced[row["cell"]])
        if cell.kind == "step":
            assert row["step_fraction"] == pytest.approx(cell.depth / round(cell.thickness / 3.905))
            assert pd.isna(row["seed"]) and row["ti_fraction"] == 0.0
        else:
            assert row["ti_fraction"] == cell.ti_fraction and row["seed"] == cell.seed
            assert pd.isna(row["step_fraction"])

    with h5py.File(h5, "r") as fh:
        x, y = fh["x"], fh["y"]
        assert x.shape == (16, NX, K, K) and x.dtype == np.float32
        assert x.is_virtual  # no copy: each row reads its line in the cell's reduced file
        files = {Path(h5.parent, s.file_name).resolve() for s in x.virtual_sources()}
        assert files == {p.resolve() for p in reduced.values()}
        assert y.dtype == np.int8 and fh["split"].dtype == np.uint8
        np.testing.assert_array_equal(y[()], manifest["class"])
        np.testing.assert_array_equal(fh["split"][()], (manifest["split"] == "val").astype(int))
        cells = fh["cell"].asstr()[()]
        assert list(cells) == list(manifest["cell"])
        np.testing.assert_array_equal(fh["line"][()], manifest["line"])
        # each example is the line stack of its reduced cell
        for i, (cell, line) in enumerate(zip(cells, fh["line"][()], strict=True)):
            np.testing.assert_array_equal(x[i], reduce.read_reduced(reduced[cell]).lines[line])

        attrs = dict(fh.attrs)
        assert bool(attrs["complete"]) and attrs["task"] == "classify"
        assert json.loads(attrs["reduction"]) == REDUCTION
        assert attrs["split"] == "structure" and attrs["split_seed"] == 0
        assert attrs["val_fraction"] == 0.2
        assert json.loads(attrs["classes"]) == {"step": 0, "diffusion": 1}
        assert attrs["n_train"] + attrs["n_val"] == 16 == attrs["n_examples"]
        assert json.loads(attrs["versions"])["h5py"] == h5py.__version__
        for name in fh:  # the file documents the layout of what it holds
            assert f"`{name}" in attrs["layout"], name
        src_cells = list(fh["sources/cell"].asstr()[()])
        assert src_cells == sorted(reduced)
        for cell, path, digest in zip(
            src_cells,
            fh["sources/path"].asstr()[()],
            fh["sources/data_sha256"].asstr()[()],
            strict=True,
        ):
            assert path == str(reduced[cell])
            assert digest == reduce.read_reduced(path).attrs["data_sha256"]


def test_structure_split_keeps_cells_whole_and_both_classes_on_both_sides(reduced, tmp_path):
    _, manifest = gather(reduced.values(), tmp_path)
    sides = manifest.groupby("cell")["split"].nunique()
    assert (sides == 1).all(), sides
    for (kind, thickness), grp in manifest.groupby(["kind", "thickness"]):
        # every stratum of two cells holds one out
        assert sorted(grp.groupby("cell")["split"].first()) == ["train", "val"], (kind, thickness)
    # the sides are the rule's, per cell
    expected = assign_split(list(reduced), 0.2, 0)
    assert dict(zip(manifest["cell"], manifest["split"], strict=True)) == expected


def test_gathered_sets_place_validation_cells_as_configured(reduced, tmp_path):
    h5, manifest = gather(reduced.values(), tmp_path, "even", placement="even")
    expected = assign_split(list(reduced), 0.2, 0, placement="even")
    assert dict(zip(manifest["cell"], manifest["split"], strict=True)) == expected
    with h5py.File(h5, "r") as fh:
        assert fh.attrs["placement"] == "even" and "evenly spaced" in fh.attrs["split_rule"]
    rh5, rcsv = tmp_path / "regress.h5", tmp_path / "regress.csv"
    datasets.gather_regress(
        list(reduced.values()), 40, rh5, rcsv, {**REDUCTION, "placement": "even"}
    )
    regress = pd.read_csv(rcsv)
    assert all(expected[c] == s for c, s in zip(regress["cell"], regress["split"], strict=True))
    # the paper's random protocol splits examples, not cells along an axis: placement is moot
    rnd, _ = gather(reduced.values(), tmp_path, "rnd", split="random", placement="even")
    with h5py.File(rnd, "r") as fh:
        assert fh.attrs["placement"] == "hash"
    with pytest.raises(ValueError, match="reduction.placement = 'middle'"):
        gather(reduced.values(), tmp_path, "bad", placement="middle")


def test_split_is_identical_on_rerun_and_whatever_the_input_order(reduced, tmp_path):
    h1, m1 = gather(reduced.values(), tmp_path, "one")
    h2, m2 = gather(reversed(list(reduced.values())), tmp_path, "two")
    pd.testing.assert_frame_equal(m1, m2)
    with h5py.File(h1, "r") as a, h5py.File(h2, "r") as b:
        for name in ("x", "y", "split", "cell", "line"):
            np.testing.assert_array_equal(a[name][()], b[name][()])


def test_adding_a_cell_moves_at_most_one_cell_of_its_stratum(reduced, tmp_path):
    """Leave each cell out in turn and add it back: cells of other strata (kind, thickness)
    keep their side; in the added cell's stratum at most one old cell changes side."""
    _, full = gather(reduced.values(), tmp_path, "full")
    full_side = dict(zip(full["cell"], full["split"], strict=True))
    stratum = {c: (parse_cell(c).kind, parse_cell(c).thickness) for c in reduced}
    for left_out in reduced:
        _, sub = gather([p for c, p in reduced.items() if c != left_out], tmp_path, "sub")
        sub_side = dict(zip(sub["cell"], sub["split"], strict=True))
        moved = [c for c, side in sub_side.items() if full_side[c] != side]
        assert all(stratum[c] == stratum[left_out] for c in moved), (left_out, moved)
        assert len(moved) <= 1, (left_out, moved)


def test_random_split_differs_from_the_structure_split(reduced, tmp_path):
    h5, manifest = gather(reduced.values(), tmp_path, split="random")
    sides = manifest.groupby("cell")["split"].nunique()
    assert (sides == 2).any(), "no cell has examples on both sides"
    keys = [
        example_key(c, int(line))
        for c, line in zip(manifest["cell"], manifest["line"], strict=True)
    ]
    expected = assign_split(keys, 0.2, 0)
    assert list(manifest["split"]) == [expected[k] for k in keys]
    with h5py.File(h5, "r") as fh:
        assert fh.attrs["split"] == "random"
    # another seed, another split
    _, other = gather(reduced.values(), tmp_path, "other", split="random", split_seed=1)
    assert list(other["split"]) != list(manifest["split"])


# --------------------------------------------------------------------------- regress


@pytest.mark.parametrize(("thickness", "depths", "nz"), [(40, (3, 7), 10), (60, (11, 5), 15)])
def test_regress_set_holds_the_step_cells_of_one_thickness(
    reduced, tmp_path, thickness, depths, nz
):
    h5, csv = tmp_path / "regress.h5", tmp_path / "regress.csv"
    datasets.gather_regress(list(reduced.values()), thickness, h5, csv, REDUCTION)
    manifest = pd.read_csv(csv)
    cells = [f"t{thickness}/step-d{d}" for d in depths]
    assert list(manifest["cell"]) == cells  # sorted by cell id
    assert (manifest["kind"] == "step").all() and (manifest["thickness"] == thickness).all()
    assert manifest["line"].isna().all()
    np.testing.assert_allclose(manifest["target"], [d / nz for d in depths])
    assert set(manifest["split"]) == {"train", "val"}
    with h5py.File(h5, "r") as fh:
        assert fh["x"].shape == (2, NX, K, K) and fh["x"].is_virtual
        names = {s.dset_name for s in fh["x"].virtual_sources()}
        assert names == {f"{c}/average" for c in cells}
        assert fh["y"].dtype == np.float32
        np.testing.assert_array_equal(fh["y"][()], np.float32([d / nz for d in depths]))
        np.testing.assert_array_equal(fh["line"][()], [-1, -1])
        for i, cell in enumerate(cells):
            np.testing.assert_array_equal(fh["x"][i], reduce.read_reduced(reduced[cell]).average)
        assert fh.attrs["task"] == "regress" and fh.attrs["thickness"] == thickness
        assert fh.attrs["split"] == "structure"
    with pytest.raises(ValueError, match="no step cell of thickness 80"):
        datasets.gather_regress(list(reduced.values()), 80, h5, csv, REDUCTION)


# --------------------------------------------------------------------------- the reader


def test_reader_batches(reduced, tmp_path):
    h5, manifest = gather(reduced.values(), tmp_path)
    with h5py.File(h5, "r") as fh:
        x_all, y_all, split = fh["x"][()], fh["y"][()], fh["split"][()]
    for name, code in (("train", 0), ("val", 1)):
        with H5Examples(h5, name) as data:
            np.testing.assert_array_equal(data.indices, np.flatnonzero(split == code))
            assert len(data) == (split == code).sum() > 0
            assert data.example_shape == (NX, K, K)
            assert data.attrs["task"] == "classify" and data.attrs["reduction"] == REDUCTION
            idx = np.random.default_rng(0).permutation(data.indices)
            idx = np.concatenate([idx, idx[:2]])  # any order, duplicates allowed
            x, y = data.batch(idx)
            np.testing.assert_array_equal(x, x_all[idx])
            np.testing.assert_array_equal(y, y_all[idx])
    with H5Examples(h5, "all") as data:
        assert len(data) == 16
        assert data.batch([])[0].shape == (0, NX, K, K)
        with pytest.raises(IndexError):
            data.batch([16])
    with pytest.raises(ValueError, match="'test'"):
        H5Examples(h5, "test")


# --------------------------------------------------------------------------- refusals


def test_incomplete_reduced_file_is_refused_by_name(reduced, tmp_path):
    broken = tmp_path / "t40" / "step-d3.h5"
    broken.parent.mkdir()
    shutil.copy(reduced["t40/step-d3"], broken)
    with h5py.File(broken, "r+") as fh:
        del fh.attrs["complete"]
    paths = [p for c, p in reduced.items() if c != "t40/step-d3"] + [broken]
    with pytest.raises(OSError, match=re.escape(f"{broken} is incomplete")):
        gather(paths, tmp_path)
    assert not (tmp_path / "classify.h5").exists() and not (tmp_path / "classify.csv").exists()


def test_mismatched_cells_are_refused_by_name(reduced, tiny_module_config, tmp_path):
    # a cell whose override gives another scan: 6 positions along x instead of 8
    settings = cell_settings(tiny_module_config, "t40/step-d3")
    settings = copy.deepcopy(settings)
    settings["simulation"]["scan"]["gpts"] = [6, 2]
    sim = simulate_cell(settings, tmp_path / "sims" / "odd.h5")
    odd = reduce.reduce_cell(sim, tmp_path / "odd.h5", REDUCTION)
    paths = [p for c, p in reduced.items() if c != "t40/step-d3"] + [odd]
    with pytest.raises(
        ValueError, match=re.escape(f"{odd}: examples of shape (nx, kx, ky) = (6, 28, 28)")
    ):
        gather(paths, tmp_path)
    # a cell reduced with another reduction
    other = reduce.reduce_cell(sim, tmp_path / "bin1.h5", {**REDUCTION, "bin": 1})
    paths = [p for c, p in reduced.items() if c != "t40/step-d3"] + [other]
    with pytest.raises(ValueError, match=re.escape(str(other)) + r" was reduced with .*'bin': 1"):
        gather(paths, tmp_path)
    # the same cell twice
    with pytest.raises(ValueError, match="cell t40/step-d3 given twice"):
        gather([*reduced.values(), odd], tmp_path)
    assert not (tmp_path / "classify.h5").exists()


# --------------------------------------------------------------------------- the split rule


def _grid(n: int) -> list[str]:
    """``n`` cells over 5 thicknesses, step and intermixed (strata of many cells)."""
    return [
        f"t{40 + 10 * (i % 5)}/step-d{i}" if i % 2 else f"t{40 + 10 * (i % 5)}/diffusion-ti0.5-s{i}"
        for i in range(n)
    ]


def test_split_rule_holds_out_the_share_of_every_stratum():
    cells = _grid(2000) + ["t300/step-d1"]  # and one stratum of a single cell
    split = assign_split(cells, 0.2, 7)
    assert assign_split(cells, 0.2, 7) == split
    assert assign_split(cells, 0.2, 8) != split
    strata: dict[tuple, list[str]] = {}
    for c in cells:
        strata.setdefault((parse_cell(c).kind, parse_cell(c).thickness), []).append(c)
    assert len(strata) == 11
    for members in strata.values():
        n = len(members)
        if n == 1:
            want = int(split_hash(7, members[0]) < 0.2)
        else:
            want = int(0.2 * n + 0.5)
        assert sum(split[c] == "val" for c in members) == want
        # the validation cells are the stratum's smallest hashes
        ranked = sorted(members, key=lambda c: split_hash(7, c))
        assert {c for c in members if split[c] == "val"} == set(ranked[:want])
    assert split_hash(7, cells[0]) == split_hash(7, cells[0]) != split_hash(8, cells[0])
    with pytest.raises(ValueError, match="val_fraction = 1.0"):
        assign_split(cells, 1.0, 0)


def test_split_rule_keeps_both_sides_of_small_strata():
    cells = ["t40/step-d3", "t40/step-d7", "t40/diffusion-ti0.5-s1", "t40/diffusion-ti0.5-s2"]
    for fraction in (0.01, 0.5, 0.99):  # a quota of 0 or n is moved to 1 or n - 1
        split = assign_split(cells, fraction, 0)
        for kind in ("step", "diffusion"):
            assert sorted(split[c] for c in cells if kind in c) == ["train", "val"]
    # a stratum of one cell cannot be on both sides: left where its hash puts it
    u = split_hash(0, "t40/step-d3")
    assert assign_split(["t40/step-d3"], 0.5, 0)["t40/step-d3"] == ("val" if u < 0.5 else "train")
    # 16 step depths of one thickness at 0.25: four held out; 19 (the demo's) give five
    for n, held in ((16, 4), (19, 5)):
        steps = [f"t100/step-d{d}" for d in range(1, n + 1)]
        assert sum(v == "val" for v in assign_split(steps, 0.25, 0).values()) == held


def test_adding_cells_moves_at_most_one_old_cell_per_stratum():
    rng = np.random.default_rng(1)
    pool = _grid(300)
    for _ in range(200):
        n_old = int(rng.integers(2, 20))
        old = list(rng.choice(pool, size=n_old, replace=False))
        new = [c for c in pool if c not in old][: int(rng.integers(1, 10))]
        before = assign_split(old, 0.2, 3)
        after = assign_split(old + [new[0]], 0.2, 3)
        moved = [c for c in old if before[c] != after[c]]
        key = (parse_cell(new[0]).kind, parse_cell(new[0]).thickness)
        assert len(moved) <= 1 and all(
            (parse_cell(c).kind, parse_cell(c).thickness) == key for c in moved
        ), moved


def test_even_placement_spreads_each_stratums_validation_cells_over_its_range():
    # the demo's strata: 19 step depths (5 held out), 5 Ti fractions x 2 seeds (3 held out)
    steps = [
        f"t200/step-d{d}"
        for d in (3, 5, 8, 10, 13, 15, 18, 20, 23, 26, 28, 31, 33, 36, 38, 41, 43, 46, 48)
    ]
    mixed = [f"t200/diffusion-ti{t}-s{s}" for t in (0.1, 0.2, 0.3, 0.4, 0.5) for s in (1, 2)]
    cells = list(reversed(steps)) + mixed  # input order does not matter
    offsets, times_held = set(), [0] * len(steps)
    for seed in range(40):
        split = assign_split(cells, 0.25, seed, placement="even")
        assert split == assign_split(sorted(cells), 0.25, seed, placement="even")
        for members, held in ((steps, 5), (mixed, 3)):  # members in grid order
            side = [split[c] for c in members]
            assert side.count("val") == held
            idx = [i for i, s in enumerate(side) if s == "val"]
            # evenly spaced: consecutive held-out cells n / held apart, +-1
            gaps = np.diff(idx)
            n = len(members)
            assert gaps.min() >= n // held and gaps.max() <= -(-n // held), (seed, idx)
        offsets.add(tuple(c for c in steps if split[c] == "val"))
        for i, c in enumerate(steps):
            times_held[i] += split[c] == "val"
    assert len(offsets) > 3  # the seed moves the offset
    # every depth, the shallowest and the deepest too, is held out by some seeds
    assert min(times_held) > 0, times_held
    two = ["t40/step-d3", "t40/step-d7"]
    assert sorted(assign_split(two, 0.5, 0, placement="even").values()) == ["train", "val"]
    with pytest.raises(ValueError, match="placement = 'spread'"):
        assign_split(cells, 0.25, 0, placement="spread")


def test_development_cells_come_from_training_cells_only_and_spare_singletons():
    train = [f"t100/step-d{d}" for d in range(1, 15)] + ["t150/step-d3"]
    dev = dev_cells(train, 0.2, 0)
    assert dev <= set(train[:-1])  # the single 150 A cell stays in training
    assert len(dev) == 3  # round(0.2 * 14)
    assert dev_cells(train, 0.2, 0) == dev  # deterministic
    assert dev_cells(train, 0.2, 1) != dev  # the training seed picks them
