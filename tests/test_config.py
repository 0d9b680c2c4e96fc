"""Config validation: every kind of bad input fails with a message naming the key and value."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from interface4d.config import ConfigError, load_config, load_schema, validate_config
from interface4d.grid import check_grid
from interface4d.physics import max_detector_angle, wavelength

ROOT = Path(__file__).resolve().parents[1]


def _bad(raw: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(raw)
    node = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return cfg


@pytest.mark.parametrize(
    "path, value, expect",
    [
        ("grid.thickness", [0], "grid.thickness.0"),
        ("grid.thickness", [-50], "grid.thickness.0"),
        ("grid.step_fraction", [0.5, 1.2], "grid.step_fraction.1"),
        ("grid.step_fraction", [0.0], "grid.step_fraction.0"),
        ("grid.ti_fraction", [1.5], "grid.ti_fraction.0"),
        ("grid.ti_fraction", [-0.1], "grid.ti_fraction.0"),
        ("grid.seeds", [], "grid.seeds"),
        ("grid.thickness", [], "grid.thickness"),
        ("grid.seeds", [1, 1], "grid.seeds"),
        ("grid.step_fraction", [0.3, 0.3], "grid.step_fraction"),
        ("grid.seeds", [1.5], "grid.seeds.0"),
        ("grid.thickness", ["100"], "grid.thickness.0"),
        ("simulation.gpts", "256", "simulation.gpts"),
        ("simulation.device", "tpu", "simulation.device"),
        ("simulation.method", "bloch", "simulation.method"),
        ("simulation.frobnicate", 1, "simulation.frobnicate"),
        ("structure.cells_x", 2, "structure.cells_x"),
        ("simulation.scan.gpts", [8], "simulation.scan.gpts"),
    ],
)
def test_schema_errors_name_key_and_value(tiny_raw, path, value, expect):
    with pytest.raises(ConfigError) as info:
        validate_config(_bad(tiny_raw, path, value))
    msg = str(info.value)
    assert f"'{expect}'" in msg
    if path != "simulation.frobnicate":
        index = expect.rsplit(".", 1)[-1]
        shown = value[int(index)] if index.isdigit() else value
        assert f"= {shown!r}" in msg


def test_unknown_key_is_named(tiny_raw):
    cfg = _bad(tiny_raw, "simulation.frobnicate", 1)
    with pytest.raises(ConfigError, match="frobnicate"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_raw)
    cfg["extra_block"] = {}
    with pytest.raises(ConfigError, match="extra_block"):
        validate_config(cfg)


def _one_line_error(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert len(msg) < 300, msg  # never a whole block
    return msg


@pytest.mark.parametrize("block", ["campaign", "grid", "structure", "simulation"])
def test_missing_block_is_one_line(tiny_raw, block):
    cfg = copy.deepcopy(tiny_raw)
    del cfg[block]
    assert _one_line_error(cfg) == f"config: missing block '{block}'"


def test_missing_nested_keys_one_line_each(tiny_raw):
    cfg = _bad(tiny_raw, "structure.phonon_sigmas", {"Sr": 0.1, "Ti": 0.1, "La": 0.1})
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert str(info.value).splitlines() == [
        "config: missing key 'structure.phonon_sigmas.Al'",
        "config: missing key 'structure.phonon_sigmas.O'",
    ]
    cfg = _bad(tiny_raw, "overrides", [{"simulation": {"gpts": 64}}])
    assert _one_line_error(cfg) == "config: missing key 'overrides.0.cells'"


@pytest.mark.parametrize(
    "path, shown",
    [
        ("grid.foo", "grid.foo"),
        ("foo", "foo"),
        ("simulation.scan.foo", "simulation.scan.foo"),
        ("simulation.aberrations.Cxx", "simulation.aberrations.Cxx"),
    ],
)
def test_unknown_key_is_one_line_with_its_path(tiny_raw, path, shown):
    msg = _one_line_error(_bad(tiny_raw, path, {"a": list(range(100))}))
    assert msg.startswith(f"config: unknown key '{shown}' (")
    assert "range" not in msg and "99" not in msg  # the value is not dumped
    if path == "grid.foo":
        assert msg.endswith("(allowed: seeds, step_fraction, thickness, ti_fraction)")


def test_unknown_override_key_is_one_line(tiny_raw):
    cfg = _bad(tiny_raw, "overrides", [{"cells": "t60/*", "simulation": {"device": "gpu"}}])
    msg = _one_line_error(cfg)
    assert msg.startswith("config: unknown key 'overrides.0.simulation.device' (allowed: method,")


@pytest.mark.parametrize(
    "path, value, expect",
    [
        ("simulation.energy", -5, "config key 'simulation.energy' = -5: must be >= 1000"),
        ("grid.thickness", [40, -1], "config key 'grid.thickness.1' = -1: must be > 0"),
        (
            "simulation.device",
            "tpu",
            "config key 'simulation.device' = 'tpu': must be one of 'cpu', 'gpu'",
        ),
        (
            "simulation.scan.window_x",
            "half",
            "config key 'simulation.scan.window_x' = 'half': must be a list of 2 numbers or 'full'",
        ),
        ("grid.seeds", [], "config key 'grid.seeds' = []: needs at least 1 item"),
        (
            "reduction.placement",
            "spread",
            "config key 'reduction.placement' = 'spread': must be one of 'hash', 'even'",
        ),
    ],
)
def test_bad_value_is_one_line_with_its_path(tiny_raw, path, value, expect):
    assert _one_line_error(_bad(tiny_raw, path, value)) == expect


def test_long_values_are_abbreviated(tiny_raw):
    cfg = _bad(tiny_raw, "simulation", "x" * 500)
    msg = _one_line_error(cfg)
    assert msg.startswith("config key 'simulation' = 'xxx")
    assert msg.endswith(": must be of type 'object'")
    cfg = _bad(tiny_raw, "structure", [dict(tiny_raw["simulation"]) for _ in range(50)])
    assert _one_line_error(cfg).startswith("config key 'structure' = [{")


def test_errors_are_listed_one_per_line(tiny_raw):
    cfg = copy.deepcopy(tiny_raw)
    del cfg["structure"]
    cfg["grid"]["foo"] = 1
    cfg["simulation"]["energy"] = -5
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert sorted(str(info.value).splitlines()) == [
        "config key 'simulation.energy' = -5: must be >= 1000",
        "config: missing block 'structure'",
        "config: unknown key 'grid.foo' (allowed: seeds, step_fraction, thickness, ti_fraction)",
    ]


@pytest.mark.parametrize("b", [2, 4])
def test_even_bin_is_refused(tiny_raw, b):
    msg = _one_line_error(_bad(tiny_raw, "reduction.bin", b))
    assert msg.startswith(f"config key 'reduction.bin' = {b}: must be odd")


def test_schema_reduction_defaults_are_valid(tiny_raw):
    spec = load_schema()["properties"]["reduction"]["properties"]
    assert spec["bin"]["default"] % 2 == 1
    cfg = copy.deepcopy(tiny_raw)
    cfg["reduction"] = {}
    assert validate_config(cfg)["reduction"] == {name: sub["default"] for name, sub in spec.items()}
    assert validate_config(cfg)["reduction"]["bin"] == 3


def test_defaults_are_filled(tiny_raw):
    cfg = copy.deepcopy(tiny_raw)
    del cfg["simulation"]["method"]
    del cfg["structure"]["phonon_sigmas"]
    out = validate_config(cfg)
    assert out["simulation"]["method"] == "multislice"
    assert out["structure"]["phonon_sigmas"]["O"] > 0
    assert out["overrides"] == []


def test_thickness_too_thin_for_step_resolution(tiny_raw):
    # 40 A is 10 unit cells: a step at 0.04 of the thickness rounds to depth 0 (no step)
    cfg = _bad(tiny_raw, "grid.step_fraction", [0.04, 0.5])
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    msg = str(info.value)
    assert "grid.step_fraction" in msg and "0.04" in msg and "40" in msg and "too thin" in msg
    cfg = _bad(tiny_raw, "grid.thickness", [4.0])
    with pytest.raises(ConfigError, match=r"grid.thickness' = 4.0"):
        validate_config(cfg)


def test_two_thicknesses_on_one_cell_count(tiny_raw):
    cfg = _bad(tiny_raw, "grid.thickness", [40, 41])
    with pytest.raises(ConfigError, match="40 and 41 both round to 10 unit cells"):
        validate_config(cfg)


def test_detector_angle_beyond_sampling(tiny_raw):
    limit = max_detector_angle(160, 6 * 3.905, wavelength(300e3))
    assert 40 < limit < 50
    cfg = _bad(tiny_raw, "simulation.detector_max_angle", 60.0)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert "simulation.detector_max_angle' = 60.0" in str(info.value)
    assert "gpts = 160" in str(info.value)


def test_detector_limit_matches_abtem():
    abtem = pytest.importorskip("abtem")
    extent, gpts = 6 * 3.905, 160
    probe = abtem.Probe(energy=300e3, semiangle_cutoff=20.0, extent=extent, gpts=gpts)
    assert max_detector_angle(gpts, extent, wavelength(300e3)) == pytest.approx(
        probe.cutoff_angles[0], rel=1e-6
    )


def test_interface_layer_leaves_no_film(tiny_raw):
    cfg = _bad(tiny_raw, "structure.interface_layer", 5)
    with pytest.raises(ConfigError, match="structure.interface_layer' = 5"):
        validate_config(cfg)


def test_scan_window_outside_cell(tiny_raw):
    cfg = _bad(tiny_raw, "simulation.scan.window_x", [-2.0, 40.0])
    with pytest.raises(ConfigError, match="simulation.scan.window_x"):
        validate_config(cfg)


def test_overrides_checked_as_merged_config(tiny_raw):
    cfg = _bad(tiny_raw, "overrides", [{"cells": "t99/*", "simulation": {"num_configs": 3}}])
    with pytest.raises(ConfigError, match="overrides.0.cells' = 't99/\\*': matches no cell"):
        check_grid(validate_config(cfg))
    cfg = _bad(tiny_raw, "overrides", [{"cells": "t60/*", "simulation": {"gpts": 64}}])
    with pytest.raises(ConfigError, match="overrides.0.*detector_max_angle"):
        validate_config(cfg)
    cfg = _bad(tiny_raw, "overrides", [{"cells": "t60/*", "simulation": {"device": "gpu"}}])
    with pytest.raises(ConfigError, match="overrides.0.simulation"):
        validate_config(cfg)


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("grid: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_shipped_configs_are_valid():
    for path in (ROOT / "config.yaml", ROOT / "tests/configs/tiny.yaml"):
        load_config(path)


def test_cli_validate_reports_key(tmp_path, tiny_raw):
    bad = _bad(tiny_raw, "simulation.energy", "300 kV")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "interface4d", "validate", str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "simulation.energy' = '300 kV'" in proc.stderr


def test_the_mirror_average_needs_a_round_probe(tiny_raw):
    """``training.regressor.symmetrise: ky`` assumes patterns mirror-symmetric in ky: a
    non-round aberration (here or in an override) is a one-line error naming it; round ones
    (C10, C30) and a zero non-round one pass."""
    cfg = _bad(tiny_raw, "training.regressor.symmetrise", "ky")
    ok = _bad(cfg, "simulation.aberrations", {"C10": -50.0, "C30": 1.0e4, "C12": 0.0, "phi12": 0.3})
    assert validate_config(ok)["training"]["regressor"]["symmetrise"] == "ky"
    msg = _one_line_error(_bad(cfg, "simulation.aberrations", {"C10": -50.0, "C21": 200.0}))
    assert msg.startswith("config key 'simulation.aberrations.C21' = 200.0: not round")
    over = _bad(cfg, "overrides", [{"cells": "t60/*", "simulation": {"aberrations": {"C23": 5}}}])
    assert _one_line_error(over).startswith("config key 'overrides.0.simulation.aberrations.C23'")
    plain = _bad(tiny_raw, "simulation.aberrations", {"C21": 200.0})
    assert validate_config(plain)["simulation"]["aberrations"] == {"C21": 200.0}
    assert _one_line_error(_bad(cfg, "training.regressor.symmetrise", "kx")) == (
        "config key 'training.regressor.symmetrise' = 'kx': must be one of 'none', 'ky'"
    )


def test_regressor_overrides_are_checked_per_thickness(tiny_raw):
    """``training.regressor_overrides``: merged into training.regressor for the thicknesses an
    entry names (in order; the others and the classifier see none of it); a thickness outside
    the grid, a setting the jobs read globally (ranks, symmetrise) or a merged block that is
    not valid is a one-line error naming the entry, before any job."""
    from interface4d.config import training_for

    over = [
        {"thickness": [60], "regressor": {"members": 2, "project": 8}},
        {"thickness": [40.0, 60], "regressor": {"weight_decay": 0.05}},
    ]
    cfg = validate_config(_bad(tiny_raw, "training.regressor_overrides", over))
    t60 = training_for(cfg["training"], "regressor", 60)
    assert (t60["regressor"]["members"], t60["regressor"]["project"]) == (2, 8)
    assert t60["regressor"]["weight_decay"] == 0.05
    t40 = training_for(cfg["training"], "regressor", 40)
    assert t40["regressor"]["project"] == 0 and t40["regressor"]["weight_decay"] == 0.05
    assert "regressor_overrides" not in t60 and "classifier" not in t60
    assert set(training_for(cfg["training"], "classifier")) == set(cfg["training"]) - {
        "regressor",
        "regressor_overrides",
    }
    msg = _one_line_error(
        _bad(tiny_raw, "training.regressor_overrides", [{"thickness": [50], "regressor": {}}])
    )
    assert msg.startswith("config key 'training.regressor_overrides.0.thickness' = 50: not a")
    msg = _one_line_error(
        _bad(
            tiny_raw,
            "training.regressor_overrides",
            [{"thickness": [40], "regressor": {"ranks": 2}}],
        )
    )
    assert msg.startswith("config key 'training.regressor_overrides.0.regressor.ranks' = 2: set")
    bad = [{"thickness": [60], "regressor": {"project": 8, "projected_members": 3}}]
    msg = _one_line_error(_bad(tiny_raw, "training.regressor_overrides", bad))
    assert msg.startswith("config key 'training.regressor_overrides.0' (thickness 60): config key")
    assert "projected_members' = 3" in msg
    msg = _one_line_error(
        _bad(
            tiny_raw, "training.regressor_overrides", [{"thickness": [60], "regressor": {"lr": 1}}]
        )
    )
    assert msg.startswith("config key 'training.regressor_overrides.0.regressor.lr': unknown")
