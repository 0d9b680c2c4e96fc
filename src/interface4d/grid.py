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
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
# Library modules whose source decides what a simulated cell contains. Their hash is part of
# every cell's settings, so a real edit reruns the cells and a fresh clone (new mtimes) does not.
PHYSICS_MODULES = ("structures.py", "simulate.py", "h5io.py")


def fmt(x: float) -> str:
    """Canonical text of a number: at most 6 decimals, no trailing zeros, no trailing dot."""
    text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def nz_for_thickness(thickness: float, lattice_constant: float) -> int:
    """Whole unit cells along the beam for a nominal thickness."""
    return int(math.floor(thickness / lattice_constant + 0.5))


def snap_depth(step_fraction: float, nz: int) -> int:
    """Step depth in whole unit cells: the interface is at layer n for z < depth * a."""
    return int(math.floor(step_fraction * nz + 0.5))


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


REDUCE_MODULES = ("reduce.py", "h5io.py")
GATHER_MODULES = ("datasets.py", "reduce.py", "h5io.py")
TRAIN_MODULES = ("datasets.py", "model.py", "inputs.py", "augment.py", "train.py")
EVAL_MODULES = (
    "evaluate.py",
    "baseline.py",
    "inputs.py",
    "figures.py",
    "metrics.py",
    "augment.py",
    "datasets.py",
    "headline.py",
)


def code_hash(
    package_dir: str | Path | None = None, modules: Iterable[str] = PHYSICS_MODULES
) -> str:
    """Hash of the source of ``modules`` (content, not mtime): a job's code dependency."""
    root = Path(package_dir) if package_dir else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in modules:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


def stable_seed(*parts: object) -> int:
    """A 32-bit seed derived from text (the cell id), the same on every machine and run."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class JsonDict(dict):
    """A dict that formats as canonical JSON (``str``) but records as a dict (``repr``).

    Snakemake stores a param with ``repr`` (so a change anywhere in it is detected) and
    formats it into a shell command with ``str`` (so ``--settings {params.settings:q}`` passes
    exact JSON to the entry point). A value: build it whole, do not change it afterwards; the
    JSON text is made once (Snakemake formats a job's command several times, 14,000 jobs at
    paper scale).
    """

    def __str__(self) -> str:
        text = self.__dict__.get("_json")
        if text is None:
            text = self.__dict__["_json"] = json.dumps(self, sort_keys=True, separators=(",", ":"))
        return text


def cell_settings(config: Mapping[str, Any], cell: Cell | str, code: str | None = None) -> dict:
    """Every physical setting of one cell, as one dict with sorted keys.

    This is the cell's single Snakemake ``params`` entry (Snakemake stores param values without
    their keys, so one dict keeps every change visible) and the simulate job's only input.
    Execution choices that do not change the physics (device, threads, batching) are not here:
    they travel as resources, so switching laptop <-> cluster reruns nothing.
    """
    return settings_maker(config, code)(cell)


def settings_maker(config: Mapping[str, Any], code: str | None = None) -> Callable[..., dict]:
    """:func:`cell_settings` for many cells of one config: ``make(cell)``. The physics blocks
    of cells no override matches are built once and shared (read them, never change them): a
    planner asks for 14,000 cells' settings."""
    code = code if code is not None else code_hash()
    shared = _physics_blocks(config)

    def make(cell: Cell | str) -> dict:
        if isinstance(cell, str):
            cell = parse_cell(cell)
        cell_id = cell.id
        own = effective_config(config, cell_id)  # the config itself where no override matches
        st, sim = shared if own is config else _physics_blocks(own)
        nz = nz_for_thickness(cell.thickness, st["lattice_constant"])
        settings = {
            "cell": cell_id,
            "code": code,
            "kind": cell.kind,
            "nz": nz,
            "phonon_seed": stable_seed("phonons", cell_id),
            "seed": cell.seed,
            "simulation": sim,
            "step_depth": cell.depth,
            "step_fraction": (cell.depth / nz) if cell.kind == "step" else None,
            "structure": st,
            "structure_seed": stable_seed("structure", cell_id),
            "thickness": float(cell.thickness),
            "ti_fraction": cell.ti_fraction if cell.kind == "diffusion" else 0.0,
        }
        return settings  # keys in sorted order, as are the blocks inside

    return make


def _physics_blocks(config: Mapping[str, Any]) -> tuple[dict, dict]:
    """The sorted ``structure`` block and the ``simulation`` block without its execution keys
    (device, threads, batching) of one (effective) config."""
    sim = {
        k: v for k, v in config["simulation"].items() if k not in ("device", "threads", "max_batch")
    }
    if sim.get("method") != "prism":
        sim.pop("prism_interpolation", None)
    return _sorted(config["structure"]), _sorted(sim)


def matching_overrides(config: Mapping[str, Any], cell_id: str) -> list[Mapping[str, Any]]:
    return [o for o in config.get("overrides") or () if fnmatch.fnmatchcase(cell_id, o["cells"])]


def effective_config(config: Mapping[str, Any], cell_id: str) -> Mapping[str, Any]:
    """The config as one cell sees it: global blocks with the matching overrides merged in."""
    found = matching_overrides(config, cell_id)
    if not found:
        return config
    from interface4d.config import deep_merge

    out = dict(config)
    for o in found:
        for block in ("structure", "simulation"):
            if block in o:
                out[block] = deep_merge(out[block], o[block])
    return out


def _sorted(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_sorted(v) for v in obj]
    return obj
