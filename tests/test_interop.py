"""Our data in other tools, for real: a simulated cell opens in py4DSTEM 0.14.18 (in a venv of
its own, NumPy < 2) as a DataCube equal to ours, and in rosettasciio 0.15.0 (HyperSpy's
readers, same venv) with its axes; ``interface4d export`` hands one cell to py4DSTEM
(EMD 1.0) and to abTEM (zarr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from interface4d import emd, export, simulate
from interface4d.resimulate import ResimulationError
from support import py4dstem
from support.workflow import ROOT, env

CELL = "t40/step-d3"
TINY = ROOT / "tests" / "configs" / "tiny.yaml"

# Run in the py4DSTEM venv on each path given: what py4DSTEM.read returns, as JSON.
READ_DATACUBE = """
import json, sys
import numpy as np
import py4DSTEM
from rsciio.emd import file_reader
out = []
for path in sys.argv[1:]:
    dc = py4DSTEM.read(path)
    cal = dc.calibration
    data = np.asarray(dc.data)
    mine = dc.root.metadata["interface4d"]
    out.append({
        "py4dstem": py4DSTEM.__version__,
        "numpy": np.__version__,
        "type": type(dc).__name__,
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "R_pixel_size": float(cal.get_R_pixel_size()),
        "R_pixel_units": str(cal.get_R_pixel_units()),
        "Q_pixel_size": float(cal.get_Q_pixel_size()),
        "Q_pixel_units": str(cal.get_Q_pixel_units()),
        "R_pixel_size_xy_A": [float(v) for v in mine["R_pixel_size_xy_A"]],
        "R_origin_xy_A": [float(v) for v in mine["R_origin_xy_A"]],
        "Q_pixel_size_xy_mrad": [float(v) for v in mine["Q_pixel_size_xy_mrad"]],
        "Q_center_px": [int(v) for v in mine["Q_center_px"]],
        "sum": float(data.astype(np.float64).sum()),
        "pixels": [float(data[i, j, k, m]) for i, j, k, m in json.loads(PIXELS)],
    })
    # rosettasciio (HyperSpy's readers) on the same file: every signal it finds
    signals = file_reader(path)
    out[-1]["rsciio"] = [{
        "shape": list(s["data"].shape),
        "axes": [[a["name"], a["units"], float(a["offset"]), float(a["scale"]), int(a["size"])]
                 for a in s["axes"]],
        "pixels": [float(s["data"][i, j, k, m]) for i, j, k, m in json.loads(PIXELS)],
    } for s in signals]
print(json.dumps(out))
"""


def _pixels(shape) -> list[tuple[int, int, int, int]]:
    """A few pattern values to compare: the zero frequency and off-centre pixels, three probe
    positions."""
    nx, ny, nk, nm = shape
    c, d = nk // 2, nm // 2
    return [(0, 0, c, d), (nx // 2, ny - 1, c + 3, d - 5), (nx - 1, 0, 1, nm - 2), (1, 1, c, 0)]


def read_in_py4dstem(*paths: Path, pixels) -> list[dict]:
    code = READ_DATACUBE.replace("json.loads(PIXELS)", repr(pixels))
    proc = py4dstem.run(code, *(str(p) for p in paths))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ours(path: Path) -> dict:
    with h5py.File(path, "r") as fh:
        return {
            "cbed": fh["cbed"][()],
            "scan_x": fh["scan/x"][()],
            "scan_y": fh["scan/y"][()],
            "scan_step": json.loads(fh.attrs["scan_sampling_A"]),
            "inv_a": json.loads(fh.attrs["reciprocal_sampling_invA"]),
            "mrad": json.loads(fh.attrs["angular_sampling_mrad"]),
            "linked": fh["cbed"].id == fh[f"{emd.ROOT}/{emd.NODE}/data"].id,
            "attrs": dict(fh.attrs),
        }


def assert_same_datacube(seen: dict, mine: dict) -> None:
    cbed = mine["cbed"]
    assert seen["type"] == "DataCube"
    assert seen["shape"] == list(cbed.shape) and seen["dtype"] == "float32"
    assert seen["R_pixel_units"] == "A" and seen["Q_pixel_units"] == "A^-1"
    assert seen["R_pixel_size"] == mine["scan_step"][0]  # py4DSTEM: one size, the x step
    assert seen["R_pixel_size_xy_A"] == mine["scan_step"]  # both steps beside it
    assert seen["R_origin_xy_A"] == [mine["scan_x"][0], mine["scan_y"][0]]
    assert seen["Q_pixel_size"] == mine["inv_a"][0] == mine["inv_a"][1]
    assert seen["Q_pixel_size_xy_mrad"] == mine["mrad"]
    assert seen["Q_center_px"] == [cbed.shape[2] // 2, cbed.shape[3] // 2]
    assert seen["pixels"] == [float(cbed[p]) for p in _pixels(cbed.shape)]
    assert seen["sum"] == pytest.approx(float(cbed.astype(np.float64).sum()), rel=1e-12)
    # rosettasciio finds the one 4D array, with both scan steps and the centred detector axes
    (sig,) = seen["rsciio"]
    assert sig["shape"] == list(cbed.shape) and sig["pixels"] == seen["pixels"]
    dk = mine["inv_a"]
    expected = [
        ["Rx", "Å", mine["scan_x"][0], mine["scan_step"][0], cbed.shape[0]],
        ["Ry", "Å", mine["scan_y"][0], mine["scan_step"][1], cbed.shape[1]],
        ["Qx", "1 / Å", -(cbed.shape[2] // 2) * dk[0], dk[0], cbed.shape[2]],
        ["Qy", "1 / Å", -(cbed.shape[3] // 2) * dk[1], dk[1], cbed.shape[3]],
    ]
    for got, want in zip(sig["axes"], expected, strict=True):
        assert got[:2] == want[:2] and got[4] == want[4]
        assert got[2:4] == pytest.approx(want[2:4], rel=1e-12, abs=1e-12)


@pytest.fixture
def campaign_results(tiny_campaign, tmp_path) -> Path:
    """A results folder whose ``sims/`` are the tiny campaign's (run once a session with real
    Snakemake, conftest.py); what a test writes lands here, not in the shared campaign."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "sims").symlink_to(tiny_campaign / "results" / "sims")
    return results


@pytest.mark.slow
def test_campaign_simulation_files_open_in_py4dstem_as_our_datacubes(campaign_results):
    paths = sorted((campaign_results / "sims").rglob("*.h5"))
    assert len(paths) == 8
    mine = [ours(p) for p in paths]
    assert mine[0]["scan_step"][0] != mine[0]["scan_step"][1]  # the tiny scan is not square
    seen = read_in_py4dstem(*paths, pixels=_pixels(mine[0]["cbed"].shape))
    assert seen[0]["py4dstem"] == "0.14.18" and seen[0]["numpy"].startswith("1.")
    for path, theirs, m in zip(paths, seen, mine, strict=True):
        assert m["linked"], path  # the DataCube's data is our cbed dataset, not a copy
        assert_same_datacube(theirs, m)
        array, attrs = simulate.read_cell(path)  # our own reader sees the file as before
        np.testing.assert_array_equal(array, m["cbed"])
        assert f"sims/{attrs['settings']['cell']}.h5" in str(path)


def _export(results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "interface4d", "export", *args, "--results", str(results)],
        capture_output=True,
        text=True,
        env=env(OMP_NUM_THREADS="1"),
        timeout=300,
    )


@pytest.mark.slow
def test_export_opens_in_py4dstem_and_abtem(campaign_results, tmp_path):
    import abtem

    results = campaign_results
    simulated = results / "sims" / f"{CELL}.h5"
    sim = ours(simulated)
    proc = _export(results, CELL, "--format", "emd")
    assert proc.returncode == 0, proc.stderr
    emd = results / "export" / f"{CELL}.emd"
    assert f"{CELL} -> {emd}" in proc.stdout
    zarr_store = tmp_path / "cell.zarr"
    proc = _export(results, CELL, "--format", "zarr", "-o", str(zarr_store))
    assert proc.returncode == 0, proc.stderr
    assert not list(emd.parent.glob("*.part-*")) and not list(tmp_path.glob("*.part-*"))

    # EMD: py4DSTEM sees the same DataCube as in the simulation file; provenance says whence
    mine = ours(emd)
    assert mine["linked"]
    np.testing.assert_array_equal(mine["cbed"], sim["cbed"])
    assert mine["attrs"]["exported_from"] == str(simulated)
    assert mine["attrs"]["settings"] == sim["attrs"]["settings"]
    from interface4d.provenance import file_sha256

    assert mine["attrs"]["exported_from_sha256"] == file_sha256(simulated)
    array, attrs = simulate.read_cell(emd)  # a simulation file of its own, structure included
    np.testing.assert_array_equal(array, sim["cbed"])
    with h5py.File(emd) as out, h5py.File(simulated) as src:
        np.testing.assert_array_equal(out["structure/positions"][()], src["structure/positions"])
    (seen,) = read_in_py4dstem(emd, pixels=_pixels(sim["cbed"].shape))
    assert_same_datacube(seen, mine)

    # zarr: abTEM reads back the DiffractionPatterns its scan made, values and axes equal
    patterns = abtem.from_zarr(str(zarr_store)).compute()
    assert type(patterns).__name__ == "DiffractionPatterns" and patterns.fftshift
    np.testing.assert_array_equal(np.asarray(patterns.array), sim["cbed"])
    assert list(patterns.sampling) == sim["inv_a"]
    np.testing.assert_allclose(patterns.angular_sampling, sim["mrad"], rtol=1e-12)
    x, y = patterns.ensemble_axes_metadata
    assert (x.sampling, y.sampling) == tuple(sim["scan_step"])
    assert (x.offset, y.offset) == (sim["scan_x"][0], sim["scan_y"][0])
    settings = json.loads(sim["attrs"]["settings"])
    assert patterns.metadata["energy"] == settings["simulation"]["energy"]
    assert patterns.metadata["interface4d_cell"] == CELL
    assert patterns.metadata["interface4d_exported_from_sha256"] == file_sha256(simulated)


def test_export_refuses_a_bad_cell_in_one_line_naming_cell_and_file(tmp_path):
    sims = tmp_path / "sims" / "t40"
    sims.mkdir(parents=True)
    with h5py.File(sims / "step-d2.h5", "w") as fh:  # a killed job's file: no 'complete'
        fh.attrs["cell"] = "t40/step-d2"
    listing = f"interface4d validate {TINY} --list lists"
    cases = {
        "t40/step-d9": ("not a cell of the campaign", listing),  # no file, not in the grid
        "t40/nonsense": ("not a cell id", str(tmp_path / "sims" / "t40/nonsense.h5")),
        "t40/step-d2": ("is incomplete", str(tmp_path / "sims" / "t40/step-d2.h5")),
    }
    for cell, (what, where) in cases.items():
        with pytest.raises((export.ExportError, ResimulationError)) as err:
            export.export_cell(cell, "emd", results=tmp_path, configfile=TINY)
        text = str(err.value)
        assert what in text and cell in text and where in text, text
        assert "\n" not in text
    with pytest.raises(export.ExportError, match="x.bin"):
        export.export_emd(sims / "step-d2.h5", tmp_path / "x.bin")
    with h5py.File(sims / "step-d1.h5", "w") as fh:
        fh.attrs["complete"] = True
    with pytest.raises(export.ExportError, match="is its simulation file"):
        export.export_cell("t40/step-d1", "emd", output=sims / "step-d1.h5", results=tmp_path)
    # through the command line: exit 2 and the one line, no traceback, nothing written
    proc = _export(tmp_path, "t40/step-d9", "--format", "zarr", "--configfile", str(TINY))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"interface4d export: error: cell t40/step-d9: not a cell of the campaign {TINY} "
        f"({listing} them)"
    ]
    assert not (tmp_path / "export").exists()


def _store_none(tmp_path: Path, **simulation) -> tuple[Path, Path]:
    """The tiny campaign's config with ``store: none`` (and ``simulation`` changed) and its
    results folder in ``tmp_path``, empty: (config, results)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["simulation"].update(store="none", **simulation)
    cfg["results"] = str(tmp_path / "results")
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "none.yaml"
    config.write_text(yaml.safe_dump(cfg))
    (tmp_path / "results").mkdir()
    return config, tmp_path / "results"


@pytest.mark.slow
def test_export_under_store_none_simulates_the_cell_again_bit_for_bit(tiny_campaign, tmp_path):
    """No simulation file (store none): export simulates the cell again as the campaign's
    simulate job did, and the EMD file holds the whole scan of the workflow's own simulation
    (the tiny campaign's, store full) bit for bit, calibrated, with its settings checked
    against those the campaign's reduced block recorded."""
    from emdfile.classes import Array

    config, results = _store_none(tmp_path)
    (results / "reduced").symlink_to(tiny_campaign / "results" / "reduced")
    proc = subprocess.run(
        [sys.executable, "-m", "interface4d", "export", CELL, "--format", "emd"]
        + ["--configfile", str(config)],  # the results folder: the config's
        capture_output=True,
        text=True,
        env=env(OMP_NUM_THREADS="1"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = results / "export" / f"{CELL}.emd"
    assert f"{CELL} -> {out}" in proc.stdout
    sims = results / "sims" / f"{CELL}.h5"
    for progress in (
        f"cell {CELL}: no simulation file {sims} (simulation.store = none)",
        f"cell {CELL}: simulating it again as the campaign's simulate job does ({config}; cpu",
        f"cell {CELL}: simulated in",
        f"cell {CELL}: exported -> {out}",
    ):
        assert progress in proc.stderr, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # the temporary file gone
    assert not (results / "sims").exists()

    campaign = ours(tiny_campaign / "results" / "sims" / f"{CELL}.h5")
    mine = ours(out)
    np.testing.assert_array_equal(mine["cbed"], campaign["cbed"])  # bit for bit, whole scan
    for key in ("scan_x", "scan_y", "scan_step", "inv_a", "mrad"):
        np.testing.assert_array_equal(mine[key], campaign[key])
    assert json.loads(mine["attrs"]["settings"]) == json.loads(campaign["attrs"]["settings"])
    assert mine["attrs"]["exported_from"] == f"re-simulated (no simulation file {sims})"
    record = json.loads(mine["attrs"]["resimulated"])
    assert record["campaign_store"] == "none" and record["config"] == str(config)
    assert record["campaign_stored"] == {"crop_mrad": 24.0, "window_x": None}
    assert record["campaign_settings"] == (
        f"settings equal to those recorded in {results / 'reduced' / 't40' / 'step.h5'}"
    )
    assert (record["device"], record["threads"], record["max_batch"]) == ("cpu", 1, 16)
    assert record["identical_to_campaign"].startswith("the campaign's simulate job of this cell")
    # emdfile reads the DataCube: the whole array, its axes calibrated (A, A, 1/A, 1/A)
    with h5py.File(out, "r") as fh:
        cube = Array.from_h5(fh[f"{emd.ROOT}/{emd.NODE}"])
        data = np.asarray(cube.data)
    nx, ny, nk, nm = campaign["cbed"].shape
    assert data.shape == (nx, ny, nk, nm) == (8, 2, nk, nm)
    np.testing.assert_array_equal(data, campaign["cbed"])
    assert [str(u) for u in cube.dim_units] == ["A", "A", "A^-1", "A^-1"]
    dk = campaign["inv_a"]
    starts = [campaign["scan_x"][0], campaign["scan_y"][0], -(nk // 2) * dk[0], -(nm // 2) * dk[1]]
    steps = [*campaign["scan_step"], *dk]
    for dim, start, step in zip(cube.dims, starts, steps, strict=True):
        assert dim[0] == pytest.approx(start, abs=1e-12)
        assert dim[1] - dim[0] == pytest.approx(step, rel=1e-9)


def test_export_refuses_another_config_than_the_campaigns_before_simulating(tmp_path):
    """The campaign's reduced block recorded the cell's settings: a config that gives other
    settings is one line naming the key and both values, and nothing is simulated."""
    from interface4d.h5io import set_attrs
    from interface4d.resimulate import job_settings, load_campaign

    config, results = _store_none(tmp_path)
    recorded = job_settings(load_campaign(config), CELL)
    block = results / "reduced" / "t40" / "step.h5"
    block.parent.mkdir(parents=True)
    with h5py.File(block, "w") as fh:
        set_attrs(fh.create_group(CELL), {"settings": recorded})
        fh.attrs["complete"] = True
    other, _ = _store_none(tmp_path / "other", energy=200000.0)
    with pytest.raises(ResimulationError) as err:
        export.export_cell(CELL, "emd", results=results, configfile=other)
    assert str(err.value) == (
        f"cell {CELL}: {other} gives settings.simulation.energy = 200000.0, the campaign "
        f"simulated it with 300000 ({block}); give the campaign's config (--configfile)"
    )
    assert list((results / "export" / "t40").iterdir()) == []


def test_export_reads_a_kept_file_and_simulates_a_cropped_one_again_only_for_full(tmp_path):
    """What export reads by store: a full file, or a cropped one as it is; --full asks for the
    whole detector and scan, which a cropped file lacks (store cropped) and no file has."""
    sims = tmp_path / "sims" / "t40"
    sims.mkdir(parents=True)
    stored = {"crop_mrad": 24.0, "window_x": None}
    for name, kept in (("step-d3", None), ("step-d7", stored)):
        with h5py.File(sims / f"{name}.h5", "w") as fh:
            fh.attrs["settings"] = json.dumps({"stored": kept})
            fh.attrs["complete"] = True
    reason = export.resimulation_reason
    assert reason(sims / "step-d3.h5", CELL, full=False) is None
    assert reason(sims / "step-d3.h5", CELL, full=True) is None
    assert reason(sims / "step-d7.h5", "t40/step-d7", full=False) is None
    assert reason(sims / "step-d7.h5", "t40/step-d7", full=True) == (
        f"{sims / 'step-d7.h5'} keeps only {json.dumps(stored)} (simulation.store) and --full "
        "was asked"
    )
    missing = sims / "diffusion-ti0.2-s1.h5"
    assert reason(missing, "t40/diffusion-ti0.2-s1", full=False) == f"no simulation file {missing}"


def test_a_failed_folder_export_leaves_the_old_store_and_no_part(tmp_path):
    store = tmp_path / "cell.zarr"
    with export.atomic_dir(store) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("first")
    with pytest.raises(RuntimeError), export.atomic_dir(store) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("half")
        raise RuntimeError("killed")
    assert (store / "a").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.zarr"]
    with export.atomic_dir(store) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("second")
    assert sorted(p.name for p in store.iterdir()) == ["b"]
    assert os.listdir(tmp_path) == ["cell.zarr"]
