"""LaAlO3/SrTiO3 cross-sections with ASE.

Geometry (all lengths in Angstrom, a = lattice constant):

* x: growth direction [001], in the image plane. One period of ``cells_x`` unit cells, built
  from atomic planes a/2 apart: TiO2-terminated SrTiO3 (TiO2, SrO, ..., TiO2), the LaAlO3 film
  (LaO, AlO2, ..., AlO2) and one SrO cap that closes the period. Plane k sits at
  x = k a/2 + a/4. With the interface at layer n (n SrTiO3 unit cells), the TiO2/LaO interface
  lies at x = (n - 1/2) a.
* y: [010], ``cells_y`` unit cells so the probe does not wrap.
* z: the beam, ``nz`` whole unit cells; atomic planes at z = a/4 + m a/2.

Variants: ``flat`` (interface at layer n everywhere), ``step`` (layer n for z < depth a, n + 1
beyond: a buried step), ``diffusion`` (flat, with a seeded fraction of the Al in the first AlO2
layer replaced by Ti).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms

# In-plane (y, z) fractional offsets of each species in the two plane types.
_AO = (("A", 0.0, 0.0), ("O", 0.5, 0.5))
_BO2 = (("B", 0.5, 0.5), ("O", 0.5, 0.0), ("O", 0.0, 0.5))


def plane_sequence(cells_x: int, layer: int) -> list[tuple[str, str]]:
    """(A or B cation, plane type) for each of the 2 * cells_x planes along x."""
    planes: list[tuple[str, str]] = []
    for k in range(2 * cells_x):
        if k <= 2 * layer - 2:  # SrTiO3: TiO2 at even k, SrO at odd k, ends on TiO2
            planes.append(("Ti", "BO2") if k % 2 == 0 else ("Sr", "AO"))
        elif k < 2 * cells_x - 1:  # LaAlO3 film: LaO at odd k, AlO2 at even k
            planes.append(("Al", "BO2") if k % 2 == 0 else ("La", "AO"))
        else:  # the SrO cap closing the period
            planes.append(("Sr", "AO"))
    return planes


def interface_x(layer: int, lattice_constant: float) -> float:
    """x of the TiO2/LaO interface (midway between the two planes) for interface layer n."""
    return (layer - 0.5) * lattice_constant


def _slab(
    cells_x: int, cells_y: int, z_cells: range, layer: int, a: float
) -> tuple[list[str], np.ndarray]:
    """Symbols and positions of the unit cells in ``z_cells`` with the interface at ``layer``."""
    symbols: list[str] = []
    blocks: list[np.ndarray] = []
    iy = np.arange(cells_y, dtype=float)
    iz = np.asarray(list(z_cells), dtype=float)
    gy, gz = np.meshgrid(iy, iz, indexing="ij")
    gy, gz = gy.ravel(), gz.ravel()
    for k, (cation, ptype) in enumerate(plane_sequence(cells_x, layer)):
        x = k * a / 2 + a / 4
        for species, fy, fz in _AO if ptype == "AO" else _BO2:
            sym = cation if species in ("A", "B") else "O"
            pos = np.empty((gy.size, 3))
            pos[:, 0] = x
            pos[:, 1] = (gy + fy) * a
            pos[:, 2] = (gz + fz) * a + a / 4
            symbols.extend([sym] * gy.size)
            blocks.append(pos)
    return symbols, np.concatenate(blocks) if blocks else np.zeros((0, 3))


def build(
    kind: str,
    nz: int,
    *,
    lattice_constant: float = 3.905,
    cells_x: int = 8,
    cells_y: int = 8,
    interface_layer: int = 4,
    step_depth: int | None = None,
    ti_fraction: float = 0.0,
    seed: int | None = None,
) -> Atoms:
    """Build one cross-section. See the module docstring for the geometry."""
    a = lattice_constant
    n = interface_layer
    if nz < 1:
        raise ValueError(f"nz = {nz}: need at least one unit cell along the beam")
    if not 1 <= n <= cells_x - 2:
        raise ValueError(f"interface_layer = {n} needs 1 <= n <= cells_x - 2 = {cells_x - 2}")
    if kind == "step":
        if step_depth is None or not 0 <= step_depth <= nz:
            raise ValueError(f"step_depth = {step_depth} outside 0..{nz}")
        s1, p1 = _slab(cells_x, cells_y, range(0, step_depth), n, a)
        s2, p2 = _slab(cells_x, cells_y, range(step_depth, nz), n + 1, a)
        symbols, positions = s1 + s2, np.concatenate([p1, p2])
    elif kind in ("flat", "diffusion"):
        symbols, positions = _slab(cells_x, cells_y, range(nz), n, a)
    else:
        raise ValueError(f"unknown structure kind {kind!r}; expected step, diffusion or flat")

    symbols_arr = np.array(symbols, dtype=object)
    substituted = np.zeros(0, dtype=int)
    if kind == "diffusion":
        if not 0.0 <= ti_fraction <= 1.0:
            raise ValueError(f"ti_fraction = {ti_fraction} outside [0, 1]")
        sites = first_alo2_sites(symbols_arr, positions, n, a)
        count = int(np.floor(ti_fraction * sites.size + 0.5))
        rng = np.random.default_rng(seed)
        substituted = np.sort(rng.choice(sites, size=count, replace=False))
        symbols_arr[substituted] = "Ti"

    atoms = Atoms(
        symbols=list(symbols_arr),
        positions=positions,
        cell=[cells_x * a, cells_y * a, nz * a],
        pbc=True,
    )
    atoms.info.update(
        kind=kind,
        nz=nz,
        lattice_constant=a,
        interface_layer=n,
        interface_x=interface_x(n, a),
        step_depth=-1 if step_depth is None else int(step_depth),
        ti_fraction=float(ti_fraction),
        ti_substituted=int(substituted.size),
        seed=-1 if seed is None else int(seed),
    )
    return atoms


def first_alo2_sites(
    symbols: np.ndarray, positions: np.ndarray, layer: int, a: float
) -> np.ndarray:
    """Indices of the Al in the first AlO2 plane above a flat interface at ``layer``."""
    x_plane = 2 * layer * a / 2 + a / 4
    return np.flatnonzero((symbols == "Al") & np.isclose(positions[:, 0], x_plane))


def build_from_settings(settings: Mapping[str, Any]) -> Atoms:
    """The structure of one cell from its settings dict (:func:`interface4d.grid.cell_settings`)."""
    st = settings["structure"]
    return build(
        settings["kind"],
        settings["nz"],
        lattice_constant=st["lattice_constant"],
        cells_x=st["cells_x"],
        cells_y=st["cells_y"],
        interface_layer=st["interface_layer"],
        step_depth=settings.get("step_depth"),
        ti_fraction=settings.get("ti_fraction") or 0.0,
        seed=settings.get("structure_seed"),
    )


def min_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance under the minimum-image convention (orthogonal cell)."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, 2.0)
    return float(d.min()) if d.size else float("inf")
