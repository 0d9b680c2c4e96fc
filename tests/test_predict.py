"""interface4d predict: the model card, the network input of our own grid, the refusals, and an
end to end run on a held-out cell simulated on another grid and written in another layout (real
abTEM, real TensorFlow, the real console script). Resampling, layouts and units:
tests/test_userdata.py."""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest

from interface4d import reduce
from interface4d.modelcard import (
    CARD_FORMAT,
    INTENSITY_UNITS,
    PredictError,
    read_model_card,
)
from interface4d.physics import mrad_from_inv_angstrom
from interface4d.predict import plan, predict, scan_nyquist_A
from interface4d.userdata import (
    AXES,
    Calibration,
    DataFile,
    calibration,
    from_canonical,
    prepare_input,
)

from .predict_campaign import A, predict_cli, synthetic_card

# --------------------------------------------------------------------------- helpers


def calib(**changes) -> Calibration:
    kw = {
        "energy_eV": 300e3,
        "sampling_mrad": 0.84,
        "scan_step_x_A": 0.2,
        "scan_step_y_A": A / 4,
        "interface_x_A": 3.0,
    }
    kw.update(changes)
    return calibration(**kw)


# our layout: 40 positions of 0.2 A (interface 3 A from the first: -3 .. 4.8 A), 4 rows, 64 px
SHAPE = (40, 4, 64, 64)


# --------------------------------------------------------------------------- network input


def test_network_input_of_our_own_grid(tmp_path):
    """A synthetic data set on a 3x finer detector and a finer scan: the rows become lines,
    their mean the regression input, intensities per pixel scale with the pixel area."""
    card = synthetic_card(tmp_path)
    c = calib(sampling_mrad=0.84, incident_intensity=10.0)
    p = plan(card, SHAPE, AXES, c, thickness=40.0)
    assert (p.x_first, p.x_last) == (5, 36) and p.regressor_thickness == 40.0 and p.regressor_exact
    assert p.x_interpolated == 7  # all trained positions but -2 A lie between probes
    data = np.full(SHAPE, 10.0 * 1e-4)
    data[:, 1] *= 3.0  # one row brighter
    net = prepare_input(data[p.x_first : p.x_last + 1], p.x_first, card, c, p.center_px)
    assert net.lines.shape == (4, 8, 19, 19) and net.average.shape == (8, 19, 19)
    per_px = 1e-4 * (2.52 / 0.84) ** 2
    np.testing.assert_allclose(net.lines[0], per_px, rtol=1e-6)
    np.testing.assert_allclose(net.lines[1], 3 * per_px, rtol=1e-6)
    np.testing.assert_allclose(net.average, 1.5 * per_px, rtol=1e-6)


# --------------------------------------------------------------------------- refusals


def test_wrong_rank_and_wrong_energy_are_named(tmp_path):
    card = synthetic_card(tmp_path)
    with pytest.raises(PredictError, match=r"3 axes, shape \(40, 4, 64\); need a 4D"):
        plan(card, SHAPE[:3], AXES, calib())
    with pytest.raises(PredictError) as exc:
        plan(card, SHAPE, AXES, calib(energy_eV=200e3))
    assert "beam energy 200000 eV differs from the trained energy 300000 eV" in str(exc.value)
    plan(card, SHAPE, AXES, calib(energy_eV=301e3))  # 0.33 %: accepted


def test_detector_too_coarse_or_too_small_is_named(tmp_path):
    card = synthetic_card(tmp_path)
    with pytest.raises(
        PredictError,
        match=r"sampling outside the trained range: 3 mrad/px "
        r"along kx is coarser than the network's pixel, 2.52",
    ):
        plan(card, SHAPE, AXES, calib(sampling_mrad=3.0))
    plan(card, SHAPE, AXES, calib(sampling_mrad=2.53))  # within 1 %
    # 40 px of 0.84 mrad reach +-16.8 mrad; the network needs +-23.9 mrad
    with pytest.raises(PredictError, match=r"sampling outside the trained range: along kx"):
        plan(card, (40, 4, 40, 64), AXES, calib())
    # a centre far off on ky leaves one side short
    with pytest.raises(PredictError, match=r"along ky .*centre at pixel 10"):
        plan(card, SHAPE, AXES, calib(center_px="32,10"))
    # the layout decides which file axis is which
    plan(card, (30, 64, 40, 4), ("ky", "kx", "x", "y"), calib(sampling_mrad="0.84,1.7"))
    with pytest.raises(PredictError, match="along kx"):
        plan(card, (30, 64, 40, 4), ("kx", "ky", "x", "y"), calib(sampling_mrad="0.84,1.7"))


def test_scan_not_covering_the_trained_window_is_named(tmp_path):
    card = synthetic_card(tmp_path)
    with pytest.raises(PredictError, match=r"too few probe positions: .*-1.500 to 6.300 A"):
        plan(card, SHAPE, AXES, calib(interface_x_A=1.5))
    with pytest.raises(PredictError, match=r"too few probe positions: .*-3.000 to -1.400 A"):
        plan(card, (9, 4, 64, 64), AXES, calib())
    with pytest.raises(PredictError, match=r"scan step along x 1 A is coarser than .* 0.875"):
        plan(card, SHAPE, AXES, calib(scan_step_x_A=1.0, interface_x_A=3.0))
    with pytest.raises(PredictError, match=r"along y .*2 rows of 0.97625 A cover 1.95"):
        plan(card, (40, 2, 64, 64), AXES, calib(), thickness=40.0)
    p = plan(card, (40, 2, 64, 64), AXES, calib())  # classification needs one row
    assert p.regressor_thickness is None


def test_scan_too_coarse_to_interpolate_is_named_unless_positions_coincide(tmp_path):
    """Patterns vary with the probe position up to 2 alpha / lambda: interpolating between
    probes needs a step <= lambda / (4 alpha) = 0.246 A at 300 kV and 20 mrad."""
    card = synthetic_card(tmp_path)
    assert scan_nyquist_A(card) == pytest.approx(0.0196875 / 0.08, rel=1e-5)
    with pytest.raises(
        PredictError,
        match=r"step along x 0.5 A is too coarse to interpolate"
        r".*lambda / \(4 alpha\) = 0.246 A.*6 of 8 fall between",
    ):
        plan(card, (16, 4, 64, 64), AXES, calib(scan_step_x_A=0.5))
    # half the trained step, the interface 2 A from the first probe: every trained position
    # is a probe position (to 0.01 A), nothing is interpolated
    p = plan(card, (16, 4, 64, 64), AXES, calib(scan_step_x_A=0.4375, interface_x_A=2.004))
    assert p.x_interpolated == 0 and (p.x_first, p.x_last) == (0, 14)
    assert plan(card, SHAPE, AXES, calib(scan_step_x_A=0.245)).x_interpolated > 0


def test_thickness_picks_the_nearest_regressor_or_is_refused(tmp_path):
    card = synthetic_card(tmp_path)
    p = plan(card, SHAPE, AXES, calib(), thickness=52.0)
    assert p.regressor_thickness == 40.0 and not p.regressor_exact
    assert "used the nearest, 40 A" in p.notes[0]
    assert plan(card, SHAPE, AXES, calib(), thickness=100.0).regressor_exact
    with pytest.raises(
        PredictError,
        match=r"thickness 70 A is outside the trained range: "
        r"regressors exist for \[40.0, 100.0\] A",
    ):
        plan(card, SHAPE, AXES, calib(), thickness=70.0)
    assert plan(card, SHAPE, AXES, calib(), thickness=70.0, thickness_tolerance=30.0)
    with pytest.raises(PredictError, match="outside the trained range"):
        plan(card, SHAPE, AXES, calib(), thickness=10.0)


def test_model_card_format_is_checked(tmp_path):
    path = synthetic_card(tmp_path).path
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, format="something-else/1")))
    with pytest.raises(PredictError, match="not an interface4d model card"):
        read_model_card(path)
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "classes"}))
    with pytest.raises(PredictError, match=r"lacks the keys \['classes'\]"):
        read_model_card(path)
    with pytest.raises(PredictError, match="does not exist"):
        read_model_card(tmp_path / "nothing.json")


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def campaign(predict_campaign):
    """The tiny campaign of tests/predict_campaign.py (conftest.py builds it once a session)."""
    return predict_campaign


@pytest.mark.slow
def test_model_card_describes_the_training(campaign):
    card = read_model_card(campaign["copied_card"])
    d = card.data
    assert d["format"] == CARD_FORMAT and d["campaign"] == "predict-test"
    assert d["energy_eV"] == 300e3 and d["semiangle_cutoff_mrad"] == 20.0
    assert d["lattice_constant_A"] == A and d["crop_mrad"] == 24.0 and d["bin"] == 3
    with h5py.File(campaign["sims"] / "t40/step-d1.h5") as fh:
        s0 = json.loads(fh.attrs["angular_sampling_mrad"])[0]
    assert d["angular_sampling_mrad"] == pytest.approx([3 * s0, 3 * s0])
    assert d["pattern_px"] == [19, 19] and d["center_px"] == [9.0, 9.0]
    assert d["input_shape"] == [8, 19, 19, 1]
    assert d["scan_x_relative_A"] == pytest.approx(-2.0 + 0.875 * np.arange(8))
    assert d["scan_y_positions"] == 4 and d["scan_y_step_A"] == pytest.approx(A / 4)
    assert d["dose_range"] == [1e4, 1e5] and d["intensity_units"] == INTENSITY_UNITS
    assert d["classes"] == ["step", "diffusion"]
    assert d["classifier_model"] == "classifier.keras"
    assert d["regressors"] == {"40": "regressor_t40.keras"}
    assert d["classifier_thicknesses_A"] == [40.0, 44.0, 48.0]
    assert 0.8 < d["pattern_intensity"]["mean"] < 1.0
    assert card.classifier_path == campaign["copied_card"].parent.resolve() / "classifier.keras"
    assert card.classifier_path.exists() and card.regressors[40.0].exists()
    files = d["provenance"]["files"]
    assert {f["role"] for f in files.values()} >= {"classifier", "regressor t40"}
    from interface4d.provenance import file_sha256

    assert files["classifier.keras"]["sha256"] == file_sha256(card.classifier_path)


@pytest.mark.slow
def test_raw_simulation_on_its_own_grid_gives_exactly_the_training_descriptors(campaign):
    card = read_model_card(campaign["card"])
    cell = "t40/step-d2"
    with h5py.File(campaign["sims"] / f"{cell}.h5") as fh:
        sampling = json.loads(fh.attrs["angular_sampling_mrad"])
        inv = json.loads(fh.attrs["reciprocal_sampling_invA"])
    # abTEM's own reciprocal <-> angular sampling is our conversion
    assert mrad_from_inv_angstrom(inv[0], 300e3) == pytest.approx(sampling[0], rel=1e-7)
    c = calib(sampling_mrad=sampling, scan_step_x_A=0.875, interface_x_A=2.0)
    with DataFile(campaign["sims"] / f"{cell}.h5") as data:
        p = plan(card, data.shape, AXES, c)
        block = data.read_x(AXES, p.x_first, p.x_last)
    net = prepare_input(block, p.x_first, card, c, p.center_px)
    reduced = reduce.read_reduced(campaign["reduced"][cell], cell)
    np.testing.assert_allclose(net.lines, reduced.lines, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(net.average, reduced.average, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_predict_recovers_held_out_cells_in_other_layouts(campaign, tmp_path):
    """The real console script on the held-out cells: the step as .npy (y, x, ky, kx) with the
    sampling in 1/A, the intermixing as HDF5 (x, y, ky, kx) in counts with an explicit centre."""
    card = campaign["copied_card"]
    files = {}
    for kind, sim in campaign["held"].items():
        with h5py.File(sim) as fh:
            cbed = fh["cbed"][()]
            inv = json.loads(fh.attrs["reciprocal_sampling_invA"])
            files[kind] = {"cbed": cbed, "inv": inv, "n": cbed.shape[-1]}
    assert files["step"]["n"] != 98  # not the training detector

    step_npy = tmp_path / "step.npy"
    np.save(step_npy, from_canonical(files["step"]["cbed"], ("y", "x", "ky", "kx")))
    common = ["--models", str(card), "--scan-step", str(7 / 30), "--scan-step-y", str(A / 4)]
    step_args = [
        str(step_npy),
        *common,
        "--layout",
        "y,x,ky,kx",
        "--interface-x",
        "2.0",
        "--sampling-inv-angstrom",
        str(files["step"]["inv"][0]),
    ]
    out = tmp_path / "step"
    proc = predict_cli(
        *step_args, "--energy", "300e3", "--thickness", "40", "-o", str(out), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "prediction.json").read_text())
    c = result["classification"]
    assert c["predicted_class"] == "step", c
    assert len(c["per_line"]) == 4 and c["mean_probability"]["step"] > 0.5
    r = result["regression"]
    assert r["model_thickness_A"] == 40.0 and r["exact_thickness"]
    assert 0.0 < r["step_fraction"] < 0.6, r  # held out: depth 3 of 10 unit cells
    assert r["step_depth_A"] == pytest.approx(40 * r["step_fraction"])
    assert result["network_input"]["lines_shape"] == [4, 8, 19, 19]
    cal = result["calibration"]
    assert cal["sampling_mrad"][0] == pytest.approx(
        mrad_from_inv_angstrom(files["step"]["inv"][0], 300e3)
    )
    assert cal["center_px"] == [files["step"]["n"] // 2] * 2
    assert cal["trained_positions_interpolated"] == 6 and result["warnings"] == []
    assert result["model_card"]["path"] == str(card.resolve())
    for name in ("saliency.png", "saliency.svg", "saliency.npz"):
        assert (out / name).stat().st_size > 0
    with np.load(out / "saliency.npz") as sal:
        assert sal["classifier_map"].shape == (19, 19) and sal["regressor_profile"].shape == (8,)
        assert sal["classifier_map"].sum() > 0

    counts = 2.5e4
    diff_h5 = tmp_path / "diffusion.h5"
    n = files["diffusion"]["n"]
    with h5py.File(diff_h5, "w") as fh:
        fh["experiment/data"] = from_canonical(
            files["diffusion"]["cbed"] * counts, ("x", "y", "ky", "kx")
        )
        fh["experiment/dark"] = np.zeros((2, 2, 4, 4))
    s_mrad = mrad_from_inv_angstrom(files["diffusion"]["inv"][0], 300e3)
    out = tmp_path / "diffusion"
    diff_args = [
        str(diff_h5),
        *common,
        "--dataset-path",
        "experiment/data",
        "--layout",
        "x,y,ky,kx",
        "--interface-x",
        "2.0",
        "--sampling-mrad",
        str(s_mrad),
    ]
    proc = predict_cli(
        *diff_args,
        "--center",
        f"{n // 2},{n // 2}",
        "--incident-intensity",
        str(counts),
        "--energy",
        "300000",
        "--classify-only",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "prediction.json").read_text())
    assert result["classification"]["predicted_class"] == "diffusion", result["classification"]
    assert result["regression"] is None
    assert result["network_input"]["mean_pattern_total"] == pytest.approx(
        json.loads(card.read_text())["pattern_intensity"]["mean"], rel=0.2
    )

    # the same step file with a wrong energy or a wrong sampling: refused by name
    proc = predict_cli(*step_args, "--energy", "200e3", "-o", str(tmp_path / "e"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "beam energy 200000 eV differs from the trained energy 300000 eV" in proc.stderr
    for factor, why in ((0.5, "the detector .* reaches"), (4.0, "is coarser than the network")):
        wrong = [*step_args[:-1], str(factor * files["step"]["inv"][0])]
        proc = predict_cli(*wrong, "--energy", "300e3", "-o", str(tmp_path / "s"), cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert re.search(f"detector sampling outside the trained range: .*{why}", proc.stderr)
    # counts without --incident-intensity (a wrong sampling within the geometry limits, e.g.
    # twice the true pixel size, shows here too)
    proc = predict_cli(
        *diff_args,
        "--energy",
        "300e3",
        "-o",
        str(tmp_path / "i"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "--incident-intensity" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_a_model_that_is_not_the_carded_one_is_refused(campaign, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(campaign["copied_card"].parent, models)
    shutil.copy2(models / "classifier.keras", models / "regressor_t40.keras")
    sim = campaign["sims"] / "t40/step-d1.h5"
    with h5py.File(sim) as fh:
        s = json.loads(fh.attrs["angular_sampling_mrad"])
    c = calib(sampling_mrad=s, scan_step_x_A=0.875, interface_x_A=2.0)
    with pytest.raises(PredictError, match=r"regressor_t40.keras differs from .* \(sha256\)"):
        predict(sim, models / "model_card.json", c, tmp_path / "out", thickness=40.0)
