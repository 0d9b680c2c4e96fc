"""What a simulation keeps on disk (``simulation.store``): which keys reach a cell's settings,
the one-line errors of a reduction asking for more than is stored, a cropped file that reduces
to the full file's descriptors bit for bit (real abTEM), and real Snakemake runs of the tiny
campaign in the cropped and none modes giving the full campaign's datasets, a killed run under
none losing nothing that is not recomputed."""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from interface4d import reduce, simulate
from interface4d.config import ConfigError, validate_config
from interface4d.grid import enumerate_cells
from interface4d.settings import cell_settings
from support.workflow import ROOT, copy_workflow

from .helpers import planned, snakemake, start_snakemake, write_config

TINY = ROOT / "tests/configs/tiny.yaml"
CELL = "t40/step-d3"
DATASETS = ["classify.h5", "regress_t40.h5", "regress_t60.h5"]


def tiny(**simulation) -> dict:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["simulation"].update(simulation)
    return cfg


def settings_of(cfg: dict, cell: str = CELL) -> dict:
    return cell_settings(validate_config(copy.deepcopy(cfg)), cell, code="")


# --------------------------------------------------------------------------- settings


def test_a_cell_reruns_when_what_it_stores_changes_and_not_otherwise():
    full = settings_of(tiny(store="full"))
    cropped = settings_of(tiny(store="cropped"))
    assert full["stored"] is None
    assert cropped["stored"] == {"crop_mrad": 24.0, "window_x": None}  # the reduction's
    assert {k: v for k, v in cropped.items() if k != "stored"} == {
        k: v for k, v in full.items() if k != "stored"
    }
    # cropped and none write the same file; none only removes it once it is reduced
    assert settings_of(tiny(store="none")) == cropped
    # the store keys change nothing a full file holds
    assert settings_of(tiny(store="full", store_crop_mrad=30.0, store_window_x=[-2, 4])) == full
    # a wider stored angle or another band is another file
    margin = tiny(store="cropped", store_crop_mrad=30.0)
    assert settings_of(margin)["stored"] == {"crop_mrad": 30.0, "window_x": None}
    band = tiny(store="cropped", store_window_x=[-2, 5])
    assert settings_of(band)["stored"] == {"crop_mrad": 24.0, "window_x": [-2.0, 5.0]}
    # with a margin kept, a narrower reduction changes no stored file (only the reductions rerun)
    narrower = copy.deepcopy(margin)
    narrower["reduction"]["crop_mrad"] = 20.0
    assert settings_of(narrower) == settings_of(margin)
    # without one, the stored angle follows the reduction: every cell is simulated again
    follows = tiny(store="none")
    follows["reduction"]["crop_mrad"] = 20.0
    assert settings_of(follows)["stored"]["crop_mrad"] == 20.0


@pytest.mark.parametrize(
    "simulation, reduction, message",
    [
        (
            {"store": "cropped", "store_crop_mrad": 20.0},
            {},
            "config key 'reduction.crop_mrad' = 24: more than simulation.store_crop_mrad = 20 "
            "keeps (simulation.store = cropped)",
        ),
        (
            {"store": "none", "store_window_x": [-1.0, 3.0]},
            {"window_x": [-1.0, 4.0]},
            "config key 'reduction.window_x' = [-1, 4]: more than simulation.store_window_x = "
            "[-1, 3] keeps (simulation.store = none)",
        ),
        (
            {"store": "cropped", "store_window_x": [-1.0, 3.0]},
            {},  # window_x null: the whole scan
            "config key 'reduction.window_x' = null (the whole scan, [-2, 5]): more than "
            "simulation.store_window_x = [-1, 3] keeps",
        ),
        (
            {"store": "cropped", "store_window_x": [-3.0, 3.0]},
            {"window_x": [-1.0, 3.0]},
            "config key 'simulation.store_window_x' = [-3, 3]: outside the simulated scan "
            "simulation.scan.window_x = [-2, 5]",
        ),
        (
            {"store": "cropped", "store_crop_mrad": 45.0},
            {},
            "config key 'simulation.store_crop_mrad' = 45: beyond "
            "simulation.detector_max_angle = 40",
        ),
    ],
)
def test_a_reduction_asking_for_more_than_is_stored_is_one_line(simulation, reduction, message):
    cfg = tiny(**simulation)
    cfg["reduction"].update(reduction)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)
    # the same keys under store: full check nothing (the file keeps everything)
    cfg["simulation"]["store"] = "full"
    validate_config(cfg)


def test_store_is_not_a_per_cell_override():
    cfg = tiny(store="cropped")
    cfg["overrides"] = [{"cells": "t40/*", "simulation": {"store": "full"}}]
    with pytest.raises(ConfigError, match=r"unknown key 'overrides\.0\.simulation\.store'"):
        validate_config(cfg)


def test_an_override_is_checked_against_the_stored_band():
    """An override that narrows one thickness's scan below the stored band fails at once."""
    cfg = tiny(store="cropped", store_window_x=[-2.0, 5.0])
    cfg["reduction"]["window_x"] = [-1.0, 3.0]
    cfg["overrides"] = [{"cells": "t60/*", "simulation": {"scan": {"window_x": [-1.0, 5.0]}}}]
    with pytest.raises(ConfigError, match=r"overrides\.0.*store_window_x' = \[-2, 5\]: outside"):
        validate_config(cfg)


# --------------------------------------------------------------------------- one real cell


def test_a_cropped_file_reduces_to_the_full_files_descriptors_bit_for_bit(tmp_path):
    """One tiny cell simulated twice: whole, and cropped at source to a stored angle and band
    with a margin. Every reduction within the stored part gives bit-identical descriptors; one
    asking for more is refused (the config check catches it before any job; this is the job's
    own safety net)."""
    band = [-1.5, 4.0]
    full = settings_of(tiny(store="full"))
    margin = tiny(store="cropped", store_crop_mrad=30.0, store_window_x=band)
    margin["reduction"]["window_x"] = [-1.0, 3.0]
    cropped = settings_of(margin)
    a = simulate.simulate_cell(full, tmp_path / "full.h5")
    b = simulate.simulate_cell(cropped, tmp_path / "cropped.h5")
    with h5py.File(a) as fa, h5py.File(b) as fb:
        xa, xb = fa["scan/x"][()], fb["scan/x"][()]
        nx, ny, n, _ = fa["cbed"].shape
        rel = xa - (3 - 0.5) * 3.905
        keep = (rel >= band[0] - 1e-9) & (rel < band[1] - 1e-9)
        np.testing.assert_array_equal(xb, xa[keep])
        assert 0 < keep.sum() < nx
        m = int(np.floor(30.0 / float(yaml.safe_load(fa.attrs["angular_sampling_mrad"])[0])))
        assert fb["cbed"].shape == (keep.sum(), ny, 2 * m + 1, 2 * m + 1) and 2 * m + 1 < n
        centre = slice(n // 2 - m, n // 2 + m + 1)
        np.testing.assert_array_equal(fb["cbed"][()], fa["cbed"][()][keep][:, :, centre, centre])
        assert fb.attrs["angular_sampling_mrad"] == fa.attrs["angular_sampling_mrad"]
        assert fb.id.get_filesize() < fa.id.get_filesize() / 2
    for reduction in (
        {"crop_mrad": 24.0, "bin": 3, "window_x": [-1.0, 3.0]},
        {"crop_mrad": 30.0, "bin": 1, "window_x": band},
        {"crop_mrad": 12.0, "bin": 5, "window_x": [0.0, 2.5]},
    ):
        ra = reduce.read_reduced(reduce.reduce_cell(a, tmp_path / "ra.h5", reduction))
        rb = reduce.read_reduced(reduce.reduce_cell(b, tmp_path / "rb.h5", reduction))
        np.testing.assert_array_equal(rb.lines, ra.lines)
        np.testing.assert_array_equal(rb.average, ra.average)
        assert rb.attrs["data_sha256"] == ra.attrs["data_sha256"]
        np.testing.assert_array_equal(rb.scan_x_relative, ra.scan_x_relative)
    with pytest.raises(ValueError, match=r"reduction\.crop_mrad = 32: exceeds the detector"):
        reduce.reduce_cell(b, tmp_path / "rc.h5", {"crop_mrad": 32.0, "bin": 1, "window_x": band})
    with pytest.raises(ValueError, match=r"window_x = \[-2\.0, 4\.0\]: lies outside"):
        reduce.reduce_cell(b, tmp_path / "rc.h5", {"crop_mrad": 24, "bin": 1, "window_x": [-2, 4]})


# --------------------------------------------------------------------------- real Snakemake


def same_datasets(a: Path, b: Path) -> None:
    """The datasets of two results folders hold the same examples, bit for bit."""
    for name in DATASETS:
        with h5py.File(a / "datasets" / name) as fa, h5py.File(b / "datasets" / name) as fb:
            for key in ("x", "y", "split", "cell", "line"):
                np.testing.assert_array_equal(fa[key][()], fb[key][()], err_msg=f"{name} {key}")


def campaign(dest: Path, **simulation) -> Path:
    wd = copy_workflow(dest, TINY, as_name="tiny.yaml")
    write_config(wd / "store.yaml", tiny(**simulation))
    return wd


TARGETS = [f"results/datasets/{d}" for d in DATASETS]


@pytest.mark.slow
def test_cropped_campaign_gives_the_full_campaigns_datasets(tiny_campaign, tmp_path):
    wd = campaign(tmp_path / "cropped", store="cropped")
    snakemake(wd, *TARGETS, "--configfile", "store.yaml")
    same_datasets(wd / "results", tiny_campaign / "results")
    for cell in enumerate_cells(validate_config(tiny()))[0]:
        kept, whole = (d / f"results/sims/{cell.id}.h5" for d in (wd, tiny_campaign))
        with h5py.File(kept) as fk, h5py.File(whole) as fw:
            assert fk["cbed"].shape[:2] == fw["cbed"].shape[:2]  # reduction.window_x: null
            assert fk["cbed"].shape[2] == 57 < fw["cbed"].shape[2]  # +-24 mrad at 0.84 mrad/px
        assert kept.stat().st_size < whole.stat().st_size / 2
    # a reduction asking for more than is stored: one line naming both keys, before any job
    before = {p: p.stat().st_mtime_ns for p in (wd / "results").rglob("*.h5")}
    bad = tiny(store="cropped")
    bad["reduction"]["crop_mrad"] = 30.0
    bad["simulation"]["store_crop_mrad"] = 26.0
    write_config(wd / "bad.yaml", bad)
    proc = snakemake(wd, "--configfile", "bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if "crop_mrad" in line]
    assert proc.returncode != 0 and len(errors) == 1, out
    assert errors[0].startswith(
        "interface4d: config key 'reduction.crop_mrad' = 30: more than "
        "simulation.store_crop_mrad = 26 keeps"
    ), out
    assert "Traceback" not in out
    assert before == {p: p.stat().st_mtime_ns for p in (wd / "results").rglob("*.h5")}


@pytest.mark.slow
def test_none_campaign_killed_loses_nothing_that_is_not_recomputed(tiny_campaign, tmp_path):
    """Under ``store: none``: one block reduced (its simulations removed), then the whole
    campaign killed while a cell is simulated. After --unlock the plan holds exactly the cells
    whose file is missing and whose block is not reduced; the finished run leaves no simulation
    and gives the full campaign's datasets bit for bit. Then a change of the split simulates
    nothing, and a changed cell resimulates its block only (the other cells' files are gone)."""
    wd = campaign(tmp_path / "none", store="none")
    res = wd / "results"
    snakemake(wd, "results/reduced/t40/step.h5", "--configfile", "store.yaml")
    assert not list((res / "sims").rglob("*.h5"))  # removed once reduced
    reduced_at = (res / "reduced/t40/step.h5").stat().st_mtime_ns

    proc = start_snakemake(wd, "--cores", "1", *TARGETS, "--configfile", "store.yaml")
    deadline = time.time() + 240

    def progressed() -> bool:  # a cell being written, after one of this run's cells finished
        done = list((res / "sims").rglob("*.h5")) or len(list((res / "reduced").glob("*/*.h5"))) > 1
        return bool(done and list((res / "sims").rglob("*.part-*")))

    try:
        while time.time() < deadline and not progressed():
            time.sleep(0.02)
        assert time.time() < deadline, "never saw a finished cell and a cell being simulated"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    snakemake(wd, "--unlock", "--configfile", "store.yaml")
    cells = enumerate_cells(validate_config(tiny()))[0]
    missing = {
        f"results/sims/{c.id}.h5"
        for c in cells
        if not (res / f"sims/{c.id}.h5").exists() and not (res / f"reduced/{c.block}.h5").exists()
    }
    assert 0 < len(missing) < 6 and "results/sims/t40/step-d3.h5" not in missing
    jobs = planned(wd, *TARGETS, "--configfile", "store.yaml")
    assert {o for o, (rule, _) in jobs.items() if rule == "simulate"} == missing
    assert "results/reduced/t40/step.h5" not in jobs

    snakemake(wd, *TARGETS, "--configfile", "store.yaml")
    assert not list((res / "sims").rglob("*.h5")) and not list(res.rglob("*.part-*"))
    assert (res / "reduced/t40/step.h5").stat().st_mtime_ns == reduced_at
    same_datasets(res, tiny_campaign / "results")
    with h5py.File(res / "datasets/classify.h5") as fh:  # x reads the reduced files, kept
        files = json.loads(fh.attrs["x_files"])
        assert fh["x"].is_virtual and len(files) == 4, files
        assert all((res / "datasets" / f).resolve().is_file() for f in files)

    split = tiny(store="none")
    split["reduction"]["val_fraction"] = 0.5
    write_config(wd / "split.yaml", split)
    jobs = planned(wd, *TARGETS, "--configfile", "split.yaml")
    assert {rule for rule, _ in jobs.values()} == {"gather_classify", "gather_regress"}, jobs

    one = tiny(store="none")
    one["overrides"] = [{"cells": "t60/step-d5", "simulation": {"num_configs": 3}}]
    write_config(wd / "one.yaml", one)
    jobs = planned(wd, *TARGETS, "--configfile", "one.yaml")
    sims = {o for o, (rule, _) in jobs.items() if rule == "simulate"}
    assert sims == {"results/sims/t60/step-d5.h5", "results/sims/t60/step-d11.h5"}  # its block
    assert "Params have changed" in jobs["results/sims/t60/step-d5.h5"][1]
    assert {o for o, (rule, _) in jobs.items() if rule == "reduce"} == {
        "results/reduced/t60/step.h5"
    }
