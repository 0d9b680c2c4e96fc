"""Cell identity: canonical ids, step snapping, duplicates, the settings dict."""

from __future__ import annotations

import copy

import pytest

from interface4d.config import validate_config
from interface4d.grid import (
    BLOCK_PATTERN,
    CELL_PATTERN,
    Cell,
    blocks_of,
    enumerate_cells,
    fmt,
    parse_cell,
)
from interface4d.physics import snap_depth
from interface4d.settings import EXECUTION_KEYS, JsonDict, cell_settings


@pytest.mark.parametrize(
    "value, text",
    [
        (0.3, "0.3"),
        (0.30, "0.3"),
        (0.300, "0.3"),
        (100, "100"),
        (100.0, "100"),
        (0.05, "0.05"),
        (1.0, "1"),
        (150.5, "150.5"),
        (0.1234567, "0.123457"),
    ],
)
def test_canonical_numbers(value, text):
    assert fmt(value) == text


def test_equivalent_spellings_are_one_cell(tiny_raw):
    a = copy.deepcopy(tiny_raw)
    b = copy.deepcopy(tiny_raw)
    b["grid"]["thickness"] = [40.0, 60.00]
    b["grid"]["ti_fraction"] = [0.20, 0.500]
    ca = [c.id for c in enumerate_cells(validate_config(a))[0]]
    cb = [c.id for c in enumerate_cells(validate_config(b))[0]]
    assert ca == cb


def test_ids_round_trip(tiny_config):
    import re

    cells, _ = enumerate_cells(tiny_config)
    assert len(cells) == 2 * 2 + 2 * 2 * 1
    for c in cells:
        assert re.fullmatch(CELL_PATTERN, c.id)
        assert parse_cell(c.id) == c
    assert parse_cell("t40/flat") == Cell("flat", 40.0)
    with pytest.raises(ValueError, match="not a cell id"):
        parse_cell("t40/step-0.3")


def test_blocks_are_a_thickness_and_kind(tiny_config):
    """A reduction block holds the cells of one kind at one thickness, every cell in exactly one,
    in grid order; its id is what the workflow's {block} wildcard accepts."""
    import re

    cells, _ = enumerate_cells(tiny_config)
    blocks = blocks_of(cells)
    kinds = {(fmt(c.thickness), c.kind) for c in cells}
    assert sorted(blocks) == sorted(f"t{t}/{k}" for t, k in kinds)
    assert sorted(c.id for b in blocks.values() for c in b) == sorted(c.id for c in cells)
    for block, members in blocks.items():
        assert re.fullmatch(BLOCK_PATTERN, block), block
        assert {(fmt(c.thickness), c.kind) for c in members} == {tuple(block[1:].split("/"))}
        assert members == [c for c in cells if c.block == block]  # grid order kept
    assert re.fullmatch(BLOCK_PATTERN, "t100/diffusion") and not re.fullmatch(
        BLOCK_PATTERN, "t100/diffusion-ti0.3"
    )


def test_step_fractions_snap_and_duplicates_reported(tiny_raw):
    cfg = copy.deepcopy(tiny_raw)
    # 40 A = 10 unit cells: 0.3 and 0.33 both land on depth 3
    cfg["grid"]["step_fraction"] = [0.3, 0.33, 0.7]
    cells, dups = enumerate_cells(validate_config(cfg))
    steps40 = [c.id for c in cells if c.kind == "step" and c.thickness == 40]
    assert steps40 == ["t40/step-d3", "t40/step-d7"]
    assert [d.cell for d in dups] == ["t40/step-d3", "t60/step-d5"]
    assert "0.33" in str(dups[0]) and "simulated once" in str(dups[0])
    # 60 A = 15 unit cells: 0.3 -> 5 (4.5 rounds half up), 0.33 -> 5
    assert snap_depth(0.3, 15) == 5 and snap_depth(0.33, 15) == 5


def test_settings_hold_everything_and_only_physics(tiny_config):
    s = cell_settings(tiny_config, "t60/step-d5")
    assert s["step_fraction"] == pytest.approx(5 / 15)
    assert s["nz"] == 15 and s["thickness"] == 60.0
    assert s["simulation"]["gpts"] == 160 and s["structure"]["cells_x"] == 6
    for execution_key in EXECUTION_KEYS:
        assert execution_key not in s["simulation"]
    assert list(s) == sorted(s)
    d = cell_settings(tiny_config, "t60/diffusion-ti0.2-s1")
    assert d["ti_fraction"] == 0.2 and d["seed"] == 1
    assert (
        d["structure_seed"]
        != cell_settings(tiny_config, "t60/diffusion-ti0.5-s1")["structure_seed"]
    )


def test_settings_are_deterministic_and_seeded_by_id(tiny_config):
    a = cell_settings(tiny_config, "t40/step-d3")
    b = cell_settings(copy.deepcopy(tiny_config), "t40/step-d3")
    assert a == b and repr(a) == repr(b)
    c = cell_settings(tiny_config, "t40/step-d7")
    assert a["phonon_seed"] != c["phonon_seed"]


def test_json_dict_formats_as_json_and_records_as_dict(tiny_config):
    import json

    s = JsonDict(cell_settings(tiny_config, "t40/step-d3"))
    assert json.loads(str(s)) == s
    assert repr(s) == repr(dict(s))


def test_overrides_apply_to_matching_cells_only(tiny_raw):
    cfg = copy.deepcopy(tiny_raw)
    cfg["overrides"] = [{"cells": "t60/step-*", "simulation": {"num_configs": 3}}]
    cfg = validate_config(cfg)
    assert cell_settings(cfg, "t60/step-d5")["simulation"]["num_configs"] == 3
    assert cell_settings(cfg, "t60/diffusion-ti0.2-s1")["simulation"]["num_configs"] == 2
    assert cell_settings(cfg, "t40/step-d3")["simulation"]["num_configs"] == 2


def test_one_maker_gives_each_cell_what_its_own_config_would(tiny_raw):
    """settings_maker (what the Snakefile builds once for 14,000 cells) shares the global
    physics blocks: every cell still gets exactly the settings of its effective config (the
    override's cells theirs), with sorted keys."""
    from interface4d.config import deep_merge
    from interface4d.settings import settings_maker

    cfg = copy.deepcopy(tiny_raw)
    cfg["overrides"] = [{"cells": "t60/step-*", "simulation": {"num_configs": 3}}]
    cfg = validate_config(cfg)
    merged = copy.deepcopy(cfg)
    merged["simulation"] = deep_merge(cfg["simulation"], {"num_configs": 3})
    merged["overrides"] = []
    base = copy.deepcopy(cfg)
    base["overrides"] = []
    make = settings_maker(cfg, code="c0")
    cells = enumerate_cells(cfg)[0]
    got = {c.id: make(c) for c in cells}
    for c in cells:
        own = merged if c.id.startswith("t60/step-") else base
        assert got[c.id] == cell_settings(own, c, code="c0"), c.id
        assert list(got[c.id]) == sorted(got[c.id])
        assert make(c.id) == got[c.id]  # an id or a Cell
    assert {got[c.id]["simulation"]["num_configs"] for c in cells} == {2, 3}


def test_global_change_changes_every_cell(tiny_config):
    other = copy.deepcopy(tiny_config)
    other["simulation"]["energy"] = 200000
    for c in enumerate_cells(tiny_config)[0]:
        assert cell_settings(tiny_config, c) != cell_settings(other, c)
