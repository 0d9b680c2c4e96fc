"""The parameter grid: one *cell* is one structure, and its id is its output path.

* ``step`` cells: thickness x step depth, id ``t<thickness>/step-d<depth>`` where the depth is
  the number of whole unit cells along the beam above the step (step fractions snap to it).
* ``diffusion`` cells: thickness x Ti fraction x seed, id ``t<thickness>/diffusion-ti<f>-s<seed>``.
* ``flat`` cells (reference, built on request): ``t<thickness>/flat``.

Numbers are written canonically (``0.3``, ``0.30`` and ``0.300`` are one cell; ``100.0`` is
``100``). This module is pure Python: the Snakefile imports it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from interface4d.config import ConfigError
from interface4d.physics import nz_for_thickness, snap_depth

KINDS = ("step", "diffusion", "flat")
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
CELL_PATTERN = rf"t{NUMBER}/(?:step-d[0-9]+|diffusion-ti{NUMBER}-s[0-9]+|flat)"
# A *block*: the cells of one kind and thickness (a thickness's step cells, or its intermixed
# cells of every Ti fraction and seed). The reduction runs per block, one file each
# (results/reduced/<block>.h5): 10 jobs for the paper's 14,209 cells, so cluster submissions
# can go to simulations (a plan's cost grows with the cells in each simulation group).
BLOCK_PATTERN = rf"t{NUMBER}/(?:step|diffusion|flat)"
_CELL_RE = re.compile(
    rf"^t(?P<thickness>{NUMBER})/(?:step-d(?P<depth>[0-9]+)"
    rf"|diffusion-ti(?P<ti>{NUMBER})-s(?P<seed>[0-9]+)|(?P<flat>flat))$"
)


def fmt(x: float) -> str:
    """Canonical text of a number: at most 6 decimals, no trailing zeros, no trailing dot."""
    text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(frozen=True, order=True)
class Cell:
    kind: str
    thickness: float
    depth: int | None = None
    ti_fraction: float | None = None
    seed: int | None = None

    @property
    def id(self) -> str:
        head = f"t{fmt(self.thickness)}"
        if self.kind == "step":
            return f"{head}/step-d{self.depth}"
        if self.kind == "diffusion":
            return f"{head}/diffusion-ti{fmt(self.ti_fraction)}-s{self.seed}"
        return f"{head}/flat"

    @property
    def block(self) -> str:
        """The block the cell is reduced in (see BLOCK_PATTERN)."""
        return f"t{fmt(self.thickness)}/{self.kind}"

    def __str__(self) -> str:
        return self.id


def blocks_of(cells: Iterable[Cell]) -> dict[str, list[Cell]]:
    """{block id: its cells}, blocks and cells in the order given."""
    out: dict[str, list[Cell]] = {}
    for c in cells:
        out.setdefault(c.block, []).append(c)
    return out


def parse_cell(cell_id: str) -> Cell:
    m = _CELL_RE.match(cell_id)
    if not m:
        raise ValueError(f"not a cell id: {cell_id!r} (expected e.g. t100/step-d8)")
    t = float(m["thickness"])
    if m["depth"] is not None:
        return Cell("step", t, depth=int(m["depth"]))
    if m["ti"] is not None:
        return Cell("diffusion", t, ti_fraction=float(m["ti"]), seed=int(m["seed"]))
    return Cell("flat", t)


@dataclass(frozen=True)
class Duplicate:
    """Two grid values that land on one structure: reported, simulated once."""

    cell: str
    kept: float
    dropped: float

    def __str__(self) -> str:
        return (
            f"step_fraction {fmt(self.dropped)} lands on the same depth as {fmt(self.kept)} "
            f"({self.cell}); simulated once"
        )


def enumerate_cells(config: Mapping[str, Any]) -> tuple[list[Cell], list[Duplicate]]:
    """All cells of a validated config, in a stable order, and the step fractions merged."""
    grid = config["grid"]
    a = config["structure"]["lattice_constant"]
    cells: list[Cell] = []
    duplicates: list[Duplicate] = []
    for t in grid["thickness"]:
        nz = nz_for_thickness(t, a)
        by_depth: dict[int, float] = {}
        for f in grid["step_fraction"]:
            d = snap_depth(f, nz)
            if d in by_depth:
                duplicates.append(Duplicate(Cell("step", t, depth=d).id, by_depth[d], f))
                continue
            by_depth[d] = f
            cells.append(Cell("step", float(t), depth=d))
        for ti in grid["ti_fraction"]:
            for seed in grid["seeds"]:
                cells.append(Cell("diffusion", float(t), ti_fraction=float(ti), seed=int(seed)))
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise ValueError(
            f"config key 'grid': two grid values format to the same cell {dup}; "
            "values that differ beyond 6 decimals are not supported"
        )
    return cells, duplicates


def check_grid(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The checks of a validated config (:func:`interface4d.config.validate_config`) that need
    the grid's cells: each override must match at least one cell. Raises
    :class:`~interface4d.config.ConfigError` naming the key and value; returns ``config``."""
    overrides = config.get("overrides") or []
    if overrides:
        cells = [c.id for c in enumerate_cells(config)[0]]
        for i, o in enumerate(overrides):
            if not any(fnmatch.fnmatchcase(c, o["cells"]) for c in cells):
                raise ConfigError(
                    f"config key 'overrides.{i}.cells' = {o['cells']!r}: matches no cell of the "
                    f"grid (cell ids look like {cells[0]})"
                )
    return config
