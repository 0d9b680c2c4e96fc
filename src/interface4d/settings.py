"""Per-cell settings and code hashes: what decides whether a job reruns.

* :func:`cell_settings` / :func:`settings_maker`: every physical setting of one cell (the global
  ``structure`` and ``simulation`` blocks with the cell's overrides merged in, its seeds, its
  geometry) as one dict with sorted keys: the cell's single Snakemake param.
* :func:`code_hash` of the ``*_MODULES``: the library source a rule's jobs depend on (content,
  not mtime).
* :class:`JsonDict`, a param that formats as canonical JSON; :func:`stable_seed`.

This module is pure Python: the Snakefile imports it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from interface4d.config import deep_merge
from interface4d.grid import Cell, parse_cell
from interface4d.physics import nz_for_thickness

# Simulation keys that change how a cell is computed, not what: never part of its settings.
EXECUTION_KEYS = ("device", "threads", "max_batch")
# What a cell's simulation file keeps (``simulation.store``, ``store_crop_mrad``,
# ``store_window_x``): not in the cell's settings as written. Its ``stored`` entry says what the
# file holds instead (:func:`stored_part`), so a cell reruns when what it stores changes (full
# <-> cropped, another stored angle or band) and not otherwise (cropped <-> none: the same file,
# kept or removed once reduced; the store keys under full).
STORE_KEYS = ("store", "store_crop_mrad", "store_window_x")
# The keys of the ``reduction`` block that decide a reduced file; the others (val_fraction,
# split, placement, split_seed) decide only the train/validation split of the datasets.
REDUCE_KEYS = ("crop_mrad", "bin", "window_x")

# Library modules whose source decides what a simulated cell contains. Their hash is part of
# every cell's settings, so a real edit reruns the cells and a fresh clone (new mtimes) does not.
PHYSICS_MODULES = ("structures.py", "simulate.py", "cropping.py", "h5io.py", "emd.py")
REDUCE_MODULES = ("reduce.py", "cropping.py", "h5io.py", "provenance.py")
GATHER_MODULES = (
    "datasets.py",
    "splits.py",
    "reducedrefs.py",
    "reduce.py",
    "h5io.py",
    "provenance.py",
)
TRAIN_MODULES = (
    "datasets.py",
    "splits.py",
    "reducedrefs.py",
    "model.py",
    "inputs.py",
    "augment.py",
    "train.py",
    "trainingdata.py",
    "optimisation.py",
    "epochs.py",
    "checkpoints.py",
    "warmstart.py",
    "provenance.py",
)
EVAL_MODULES = (
    "evaluate.py",
    "baseline.py",
    "inputs.py",
    "figures/evaluation.py",
    "metrics.py",
    "augment.py",
    "datasets.py",
    "splits.py",
    "reducedrefs.py",
    "headline.py",
    "validation.py",
    "celltables.py",
    "scores.py",
    "dosestudy.py",
    "evalreport.py",
    "checkpoints.py",
    "saliency.py",
    "modelcard.py",
    "provenance.py",
)


def code_hash(
    package_dir: str | Path | None = None, modules: Iterable[str] = PHYSICS_MODULES
) -> str:
    """Hash of the source of ``modules`` (content, not mtime): a job's code dependency.

    ``modules`` are paths relative to the package, with ``/`` (``"figures/evaluation.py"``)."""
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
        st, sim, stored = shared if own is config else _physics_blocks(own)
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
            "stored": stored,
            "structure": st,
            "structure_seed": stable_seed("structure", cell_id),
            "thickness": float(cell.thickness),
            "ti_fraction": cell.ti_fraction if cell.kind == "diffusion" else 0.0,
        }
        return settings  # keys in sorted order, as are the blocks inside

    return make


def _physics_blocks(config: Mapping[str, Any]) -> tuple[dict, dict, dict | None]:
    """The sorted ``structure`` block, the ``simulation`` block without its execution and store
    keys (device, threads, batching; what the file keeps) and :func:`stored_part` of one
    (effective) config."""
    drop = (*EXECUTION_KEYS, *STORE_KEYS)
    sim = {k: v for k, v in config["simulation"].items() if k not in drop}
    if sim.get("method") != "prism":
        sim.pop("prism_interpolation", None)
    stored = stored_part(config["simulation"], config.get("reduction") or {})
    return _sorted(config["structure"]), _sorted(sim), stored


def stored_part(simulation: Mapping[str, Any], reduction: Mapping[str, Any]) -> dict | None:
    """What a cell's simulation file holds: None for ``store: full`` (every probe position, the
    detector out to ``detector_max_angle``); else ``{"crop_mrad": A, "window_x": [start, end]
    or None}``, the CBED within A mrad of its centre and the probe positions in the band
    (Angstrom from the interface; None: the whole scan). The store keys left null take the
    reduction's ``crop_mrad`` and ``window_x``: exactly what the campaign's reduction reads."""
    if simulation["store"] == "full":
        return None
    crop = simulation["store_crop_mrad"]
    window = simulation["store_window_x"]
    if crop is None:
        crop = reduction["crop_mrad"]
    if window is None:
        window = reduction["window_x"]
    return {
        "crop_mrad": float(crop),
        "window_x": None if window is None else [float(w) for w in window],
    }


def matching_overrides(config: Mapping[str, Any], cell_id: str) -> list[Mapping[str, Any]]:
    return [o for o in config.get("overrides") or () if fnmatch.fnmatchcase(cell_id, o["cells"])]


def effective_config(config: Mapping[str, Any], cell_id: str) -> Mapping[str, Any]:
    """The config as one cell sees it: global blocks with the matching overrides merged in."""
    found = matching_overrides(config, cell_id)
    if not found:
        return config
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
