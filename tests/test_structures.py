"""The LaAlO3/SrTiO3 builder (real ASE): species counts, the step, Ti diffusion, the periodic
cell, determinism, input errors and the ``interface4d structure`` command."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from interface4d.settings import cell_settings
from interface4d.structures import build, build_from_settings, min_distance

ROOT = Path(__file__).resolve().parents[1]
A = 3.905


def slab_counts(cells_x: int, cells_y: int, z_cells: int, layer: int) -> Counter:
    """Hand count of one z-slab with the interface at ``layer`` (see the module docstring)."""
    per_yz = {
        "Sr": layer,  # layer - 1 substrate SrO planes + the SrO cap
        "Ti": layer,
        "La": cells_x - layer,
        "Al": cells_x - layer,
        "O": 3 * cells_x,
    }
    return Counter({k: v * cells_y * z_cells for k, v in per_yz.items()})


def expected_counts(kind, cells_x, cells_y, nz, layer, depth=None, ti_fraction=0.0) -> Counter:
    if kind == "step":
        return slab_counts(cells_x, cells_y, depth, layer) + slab_counts(
            cells_x, cells_y, nz - depth, layer + 1
        )
    counts = slab_counts(cells_x, cells_y, nz, layer)
    if kind == "diffusion":
        k = int(np.floor(ti_fraction * cells_y * nz + 0.5))  # round half up
        counts["Al"] -= k
        counts["Ti"] += k
    return counts


def counts(atoms) -> Counter:
    return Counter(atoms.get_chemical_symbols())


def plane_x(k: int, a: float = A) -> float:
    return k * a / 2 + a / 4


# --------------------------------------------------------------------------- species counts


def test_flat_counts_literal_hand_count():
    # 6 cells along x, interface at 3, 2 cells in y, 3 along z: 6 yz-columns per plane.
    atoms = build("flat", 3, cells_x=6, cells_y=2, interface_layer=3)
    assert counts(atoms) == Counter({"Sr": 18, "Ti": 18, "La": 18, "Al": 18, "O": 108})
    assert len(atoms) == 180


@pytest.mark.parametrize(
    ("cells_x", "cells_y", "nz", "layer"),
    [(6, 6, 10, 3), (8, 3, 5, 4), (5, 2, 4, 1), (7, 1, 2, 5)],
)
def test_flat_counts(cells_x, cells_y, nz, layer):
    atoms = build("flat", nz, cells_x=cells_x, cells_y=cells_y, interface_layer=layer)
    assert counts(atoms) == expected_counts("flat", cells_x, cells_y, nz, layer)


@pytest.mark.parametrize("depth", [0, 1, 3, 7, 10])
def test_step_counts(depth):
    nz, cells_x, cells_y, layer = 10, 6, 4, 3
    atoms = build(
        "step", nz, cells_x=cells_x, cells_y=cells_y, interface_layer=layer, step_depth=depth
    )
    assert counts(atoms) == expected_counts("step", cells_x, cells_y, nz, layer, depth=depth)
    # d z-cells with the interface at n, nz - d at n + 1: one more SrTiO3 cell per column there
    assert counts(atoms)["Sr"] == cells_y * (depth * layer + (nz - depth) * (layer + 1))


def test_step_limits_equal_flat_structures():
    """depth nz is the flat interface at n; depth 0 is the flat interface at n + 1."""
    kw = dict(cells_x=6, cells_y=2, interface_layer=3)
    full = build("step", 4, step_depth=4, **kw)
    flat_n = build("flat", 4, **kw)
    assert full.get_chemical_symbols() == flat_n.get_chemical_symbols()
    np.testing.assert_array_equal(full.positions, flat_n.positions)
    none = build("step", 4, step_depth=0, **kw)
    flat_n1 = build("flat", 4, **{**kw, "interface_layer": 4})
    assert counts(none) == counts(flat_n1)


@pytest.mark.parametrize(
    ("ti_fraction", "sites", "expected_ti"),
    # cells_y * nz = 10 Al sites in the first AlO2 plane; half-way cases round up
    [(0.0, 10, 0), (0.25, 10, 3), (0.45, 10, 5), (0.5, 10, 5), (0.33, 10, 3), (1.0, 10, 10)],
)
def test_diffusion_counts(ti_fraction, sites, expected_ti):
    cells_x, cells_y, nz, layer = 6, 2, 5, 3
    assert cells_y * nz == sites
    atoms = build(
        "diffusion",
        nz,
        cells_x=cells_x,
        cells_y=cells_y,
        interface_layer=layer,
        ti_fraction=ti_fraction,
        seed=7,
    )
    flat = counts(build("flat", nz, cells_x=cells_x, cells_y=cells_y, interface_layer=layer))
    got = counts(atoms)
    assert got == expected_counts("diffusion", cells_x, cells_y, nz, layer, ti_fraction=ti_fraction)
    assert got["Ti"] - flat["Ti"] == expected_ti
    assert flat["Al"] - got["Al"] == expected_ti
    assert atoms.info["ti_substituted"] == expected_ti


# --------------------------------------------------------------------------- the step


@pytest.mark.parametrize("depth", [1, 4, 9])
def test_step_at_requested_depth(depth):
    nz, cells_x, layer = 10, 6, 3
    atoms = build("step", nz, cells_x=cells_x, cells_y=3, interface_layer=layer, step_depth=depth)
    sym = np.array(atoms.get_chemical_symbols())
    x, z = atoms.positions[:, 0], atoms.positions[:, 2]
    cation = sym != "O"
    front = z < depth * A
    # the LaO (k = 2n - 1) and AlO2 (k = 2n) planes of layer n
    for k, film, substrate in ((2 * layer - 1, "La", "Sr"), (2 * layer, "Al", "Ti")):
        on = cation & np.isclose(x, plane_x(k))
        assert on.sum() == 3 * nz
        assert set(sym[on & front]) == {film}
        assert set(sym[on & ~front]) == {substrate}
        assert (on & front).sum() == 3 * depth
    # every site is a site of the flat structure, and every other plane is unchanged
    flat = build("flat", nz, cells_x=cells_x, cells_y=3, interface_layer=layer)
    step_sites, flat_sites = sites(atoms), sites(flat)
    assert step_sites.keys() == flat_sites.keys()
    changed = (plane_x(2 * layer - 1), plane_x(2 * layer))
    for key, species in step_sites.items():
        if not np.isclose(key[0], changed).any():
            assert species == flat_sites[key], key


def sites(atoms) -> dict[tuple[float, float, float], str]:
    """{position rounded to 1e-6 A: symbol}, independent of the atom order."""
    return {
        tuple(np.round(p, 6)): s
        for p, s in zip(atoms.positions, atoms.get_chemical_symbols(), strict=True)
    }


def test_every_atom_on_the_plane_rule():
    atoms = build("step", 6, cells_x=6, cells_y=2, interface_layer=3, step_depth=2)
    k = (atoms.positions[:, 0] - A / 4) / (A / 2)
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert set(np.round(k).astype(int)) == set(range(12))
    # beam direction: atomic planes at z = a/4 + m a/2
    m = (atoms.positions[:, 2] - A / 4) / (A / 2)
    np.testing.assert_allclose(m, np.round(m), atol=1e-9)


# --------------------------------------------------------------------------- Ti diffusion


def _substituted(atoms, flat):
    a_sym = np.array(atoms.get_chemical_symbols())
    f_sym = np.array(flat.get_chemical_symbols())
    return np.flatnonzero(a_sym != f_sym), a_sym, f_sym


@pytest.mark.parametrize("ti_fraction", [0.1, 0.3, 0.5, 0.8])
def test_diffusion_sites(ti_fraction):
    kw = dict(cells_x=6, cells_y=4, interface_layer=3)
    nz = 6
    flat = build("flat", nz, **kw)
    layer_x = 3 * A + A / 4  # first AlO2 plane: x = n a + a/4
    al_in_layer = int(
        np.sum(
            (np.array(flat.get_chemical_symbols()) == "Al")
            & np.isclose(flat.positions[:, 0], layer_x)
        )
    )
    assert al_in_layer == 4 * nz

    one = build("diffusion", nz, ti_fraction=ti_fraction, seed=11, **kw)
    again = build("diffusion", nz, ti_fraction=ti_fraction, seed=11, **kw)
    other = build("diffusion", nz, ti_fraction=ti_fraction, seed=12, **kw)

    idx, sym, flat_sym = _substituted(one, flat)
    assert idx.size == int(np.floor(ti_fraction * al_in_layer + 0.5))
    assert set(sym[idx]) == {"Ti"} and set(flat_sym[idx]) == {"Al"}
    np.testing.assert_allclose(one.positions[idx, 0], layer_x)
    np.testing.assert_array_equal(one.positions, flat.positions)  # substitution only

    assert np.array_equal(_substituted(again, flat)[0], idx)
    assert not np.array_equal(_substituted(other, flat)[0], idx)
    assert _substituted(other, flat)[0].size == idx.size


# --------------------------------------------------------------------------- periodic cell


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("flat", {}), ("step", {"step_depth": 3}), ("diffusion", {"ti_fraction": 0.5, "seed": 1})],
)
def test_orthogonal_periodic_cell_no_close_contacts(kind, extra):
    atoms = build(kind, 8, cells_x=6, cells_y=6, interface_layer=3, **extra)
    assert atoms.pbc.all()
    cell = np.asarray(atoms.cell)
    np.testing.assert_allclose(cell, np.diag([6 * A, 6 * A, 8 * A]))
    scaled = atoms.get_scaled_positions(wrap=False)
    assert (scaled >= 0).all() and (scaled < 1).all()
    d = min_distance(atoms)
    assert d >= 1.5
    assert d == pytest.approx(A / 2)  # B-O bond, within and across the boundaries


def brute_force_min_distance(atoms) -> float:
    pos = atoms.positions
    lengths = atoms.cell.lengths()
    best = np.inf
    for shift in itertools.product((-1, 0, 1), repeat=3):
        d = pos[:, None, :] - pos[None, :, :] + np.array(shift) * lengths
        r = np.sqrt((d**2).sum(-1))
        if shift == (0, 0, 0):
            np.fill_diagonal(r, np.inf)
        best = min(best, r.min())
    return float(best)


@pytest.mark.parametrize(
    ("kind", "extra"), [("flat", {}), ("step", {"step_depth": 1}), ("step", {"step_depth": 0})]
)
def test_min_distance_against_brute_force(kind, extra):
    # one cell in y and two along z: every nearest neighbour of a boundary atom is an image
    atoms = build(kind, 2, cells_x=3, cells_y=1, interface_layer=1, **extra)
    brute = brute_force_min_distance(atoms)
    assert min_distance(atoms) == pytest.approx(brute, abs=1e-9)
    assert brute >= 1.5


def test_boundary_planes_are_half_a_cell_apart():
    """The SrO cap (last plane) and the first TiO2 plane meet across x = 0 at a/2."""
    atoms = build("flat", 2, cells_x=6, cells_y=1, interface_layer=3)
    x = atoms.positions[:, 0]
    assert x.min() == pytest.approx(A / 4)
    assert x.max() == pytest.approx(6 * A - A / 4)
    sym = np.array(atoms.get_chemical_symbols())
    assert set(sym[np.isclose(x, x.max())]) == {"Sr", "O"}
    assert set(sym[np.isclose(x, x.min())]) == {"Ti", "O"}


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("step", {"step_depth": 4}), ("diffusion", {"ti_fraction": 0.3, "seed": 99})],
)
def test_build_is_deterministic(kind, extra):
    one = build(kind, 7, cells_x=6, cells_y=5, interface_layer=3, **extra)
    two = build(kind, 7, cells_x=6, cells_y=5, interface_layer=3, **extra)
    assert one.get_chemical_symbols() == two.get_chemical_symbols()
    np.testing.assert_array_equal(one.positions, two.positions)
    np.testing.assert_array_equal(np.asarray(one.cell), np.asarray(two.cell))


@pytest.mark.parametrize("cell_id", ["t40/step-d3", "t60/diffusion-ti0.5-s1"])
def test_build_from_settings(tiny_config, cell_id):
    settings = cell_settings(tiny_config, cell_id)
    st = settings["structure"]
    atoms = build_from_settings(settings)
    again = build_from_settings(cell_settings(tiny_config, cell_id))
    assert atoms.get_chemical_symbols() == again.get_chemical_symbols()
    np.testing.assert_array_equal(atoms.positions, again.positions)

    nz = settings["nz"]
    np.testing.assert_allclose(
        np.asarray(atoms.cell),
        np.diag([st["cells_x"] * A, st["cells_y"] * A, nz * A]),
    )
    assert atoms.info["kind"] == settings["kind"]
    if settings["kind"] == "step":
        assert nz == 10 and settings["step_depth"] == 3
        assert counts(atoms) == expected_counts(
            "step", st["cells_x"], st["cells_y"], nz, st["interface_layer"], depth=3
        )
    else:
        assert nz == 15 and settings["ti_fraction"] == 0.5
        assert atoms.info["seed"] == settings["structure_seed"]
        assert counts(atoms) == expected_counts(
            "diffusion", st["cells_x"], st["cells_y"], nz, st["interface_layer"], ti_fraction=0.5
        )
        # the structure seed decides the sites: another seed, other sites
        other = dict(settings, structure_seed=settings["structure_seed"] + 1)
        assert build_from_settings(other).get_chemical_symbols() != atoms.get_chemical_symbols()


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("terrace", 4), {}, "unknown structure kind"),
        (("step", 4), {"step_depth": -1}, "step_depth"),
        (("step", 4), {"step_depth": 5}, "step_depth"),
        (("step", 4), {"step_depth": None}, "step_depth"),
        (("flat", 4), {"cells_x": 6, "interface_layer": 5}, "interface_layer"),
        (("flat", 4), {"cells_x": 6, "interface_layer": 0}, "interface_layer"),
        (("flat", 0), {}, "nz"),
        (("diffusion", 4), {"ti_fraction": 1.5, "seed": 1}, "ti_fraction"),
    ],
)
def test_bad_inputs_raise(args, kwargs, match):
    kw = {"cells_x": 6, "cells_y": 2, "interface_layer": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        build(*args, **kw)


# --------------------------------------------------------------------------- CLI


def test_cli_writes_extxyz(tmp_path, tiny_config):
    out = tmp_path / "sub" / "step.extxyz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "interface4d",
            "structure",
            "--config",
            "tests/configs/tiny.yaml",
            "--cell",
            "t40/step-d3",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    back = read(out, format="extxyz")
    expected = build_from_settings(cell_settings(tiny_config, "t40/step-d3"))
    # 5 atoms (ABO3) per unit cell, 6 x 6 x 10 unit cells
    assert len(back) == len(expected) == 5 * 6 * 6 * 10
    assert back.get_chemical_symbols() == expected.get_chemical_symbols()
    np.testing.assert_allclose(back.positions, expected.positions, atol=1e-6)
    np.testing.assert_allclose(np.asarray(back.cell), np.asarray(expected.cell), atol=1e-6)
    assert f"{len(expected)} atoms" in proc.stdout
