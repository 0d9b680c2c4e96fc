"""One cell of a campaign simulated again, as the workflow's ``simulate`` rule simulates it.

``interface4d export`` needs a cell's 4D array when the campaign kept no file for it
(``simulation.store: none``: simulation files are ``temp()`` outputs, removed once their block
is reduced) or kept only a cut-down one (``cropped``) and the whole detector is asked for. The
rule's job is ``interface4d simulate --settings S --device D --threads T --max-batch B
--fftw-wisdom W``: ``S`` is :func:`interface4d.settings.settings_maker` of the campaign config
(the cell's single param, seeds included), ``D``, ``T`` and ``B`` are the config's
``simulation.device``, ``threads`` and ``max_batch`` (resources), ``W`` the workflow's FFTW
wisdom folder (:func:`interface4d.fftplan.workflow_wisdom_dir`). :func:`resimulate` calls
:func:`interface4d.simulate.simulate_cell` with the same, except that the file keeps the whole
detector and scan (``stored`` None): with the same settings, device and FFT plans those are the
numbers the campaign's job computed bit for bit (its seeds are fixed), of which a ``cropped`` or
``none`` file kept the stored part.

Where the campaign's reduced block (``<results>/reduced/<block>.h5``) holds the cell, the
settings it recorded (verbatim, as the simulation wrote them) are checked against the config's:
another config is an error naming the first setting that differs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("interface4d.export")

DEFAULT_CONFIG = "config.yaml"  # the workflow's own default campaign (Snakefile's configfile)
UNCHECKED = ("code", "stored")  # settings that may differ from the campaign's file


class ResimulationError(ValueError):
    """A cell that cannot be simulated again as the campaign did (one line)."""


@dataclass(frozen=True)
class Campaign:
    """A campaign config (validated, defaults filled) and the file it came from."""

    path: Path
    config: Mapping[str, Any]

    @property
    def results(self) -> Path:
        return Path(self.config["results"])

    @property
    def store(self) -> str:
        return self.config["simulation"]["store"]

    def listing(self) -> str:
        return f"interface4d validate {self.path} --list lists them"


def load_campaign(configfile: str | Path | None = None) -> Campaign:
    """The campaign ``configfile`` (default ``config.yaml``), validated as the workflow does
    (a :class:`~interface4d.config.ConfigError` names the key and value)."""
    from interface4d.config import load_config
    from interface4d.grid import check_grid

    path = Path(configfile or DEFAULT_CONFIG)
    return Campaign(path, check_grid(load_config(path)))


def job_settings(campaign: Campaign, cell: str) -> dict[str, Any]:
    """The settings param of the campaign's ``simulate`` job of ``cell`` (the workflow's
    ``settings_of``); an id that is not a cell of the campaign is an error saying how to list
    them."""
    from interface4d.settings import settings_maker

    require_cell(campaign, cell)
    return settings_maker(campaign.config)(cell)


def require_cell(campaign: Campaign, cell: str) -> None:
    """An error (one line, saying how to list the cells) unless ``cell`` is in the campaign."""
    from interface4d.grid import enumerate_cells

    if cell not in {c.id for c in enumerate_cells(campaign.config)[0]}:
        raise ResimulationError(
            f"cell {cell}: not a cell of the campaign {campaign.path} ({campaign.listing()})"
        )


def recorded_settings(results: str | Path, cell: str) -> tuple[dict[str, Any] | None, Path]:
    """The settings the campaign's simulation of ``cell`` recorded, as its reduced block kept
    them (None where no complete reduced file holds the cell), and that file's path."""
    import h5py

    from interface4d.grid import parse_cell

    path = Path(results) / "reduced" / f"{parse_cell(cell).block}.h5"
    if not path.is_file():
        return None, path
    with h5py.File(path, "r") as fh:
        if not fh.attrs.get("complete", False) or cell not in fh:
            return None, path
        return json.loads(fh[cell].attrs["settings"]), path


def first_difference(mine: Any, theirs: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first key path (dotted) where two settings differ, and both values; None: equal."""
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
        for k in sorted(set(mine) | set(theirs)):
            if key == "" and k in UNCHECKED:
                continue
            found = first_difference(mine.get(k), theirs.get(k), f"{key}.{k}" if key else k)
            if found:
                return found
        return None
    return None if mine == theirs else (key, mine, theirs)


def check_against_campaign(
    settings: Mapping[str, Any], results: str | Path, config: Path
) -> tuple[str, bool]:
    """Compare ``settings`` with those the campaign recorded for the cell (its reduced block);
    a difference is an error naming the key and both values. Returns what was checked, and
    whether the physics code is the campaign's (True where unknown)."""
    cell = settings["cell"]
    recorded, path = recorded_settings(results, cell)
    if recorded is None:
        return f"not checked: no reduced file {path} holding the cell", True
    mine = json.loads(json.dumps(settings))  # as the file would record them (lists, floats)
    found = first_difference(mine, recorded)
    if found:
        key, value, theirs = found
        raise ResimulationError(
            f"cell {cell}: {config} gives settings.{key} = {json.dumps(value)}, the campaign "
            f"simulated it with {json.dumps(theirs)} ({path}); give the campaign's config "
            "(--configfile)"
        )
    same_code = recorded.get("code") == settings["code"]
    if not same_code:
        log.warning(
            "cell %s: the physics code changed since the campaign simulated it (code %s, now "
            "%s): the re-simulation may differ from the campaign's numbers",
            cell,
            recorded.get("code"),
            settings["code"],
        )
    return f"settings equal to those recorded in {path}", same_code


def execution(campaign: Campaign, device: str | None = None) -> dict[str, Any]:
    """How the campaign's ``simulate`` rule runs a job: device, threads, max_batch (the config's
    resources) and the FFTW wisdom folder (None: estimated plans)."""
    from interface4d.fftplan import workflow_wisdom_dir

    sim = campaign.config["simulation"]
    return {
        "device": device or sim["device"],
        "threads": int(sim["threads"]),
        "max_batch": int(sim["max_batch"]),
        "fftw_wisdom": workflow_wisdom_dir() or None,
    }


def resimulate(
    campaign: Campaign,
    cell: str,
    output: str | Path,
    results: str | Path | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Simulate ``cell`` of ``campaign`` again into ``output`` (atomically), the whole detector
    and scan, as the workflow's ``simulate`` job does (module doc). Returns the provenance
    of the re-simulation (what an export records under ``resimulated``)."""
    from interface4d.jitcache import import_abtem
    from interface4d.simulate import simulate_cell

    settings = job_settings(campaign, cell)
    checked, same_code = check_against_campaign(
        settings, results if results is not None else campaign.results, campaign.path
    )
    campaign_stored = settings["stored"]
    settings["stored"] = None  # the whole detector and scan: what the job computed
    run = execution(campaign, device)
    log.info(
        "cell %s: simulating it again as the campaign's simulate job does (%s; %s, %d thread(s), "
        "max_batch %d)",
        cell,
        campaign.path,
        run["device"],
        run["threads"],
        run["max_batch"],
    )
    import_abtem()  # as interface4d simulate does: Numba's cached kernels
    t0 = time.perf_counter()
    simulate_cell(settings, output, **run)
    log.info("cell %s: simulated in %.1f s", cell, time.perf_counter() - t0)
    return {
        "config": str(campaign.path),
        "campaign_store": campaign.store,
        "campaign_stored": campaign_stored,
        "campaign_settings": checked,
        **run,
        "identical_to_campaign": _identity(campaign, run["device"], same_code),
    }


def _identity(campaign: Campaign, device: str, same_code: bool) -> str:
    """What the re-simulation's numbers are to the campaign's (the record's sentence)."""
    if device != campaign.config["simulation"]["device"]:
        return (
            f"not bit for bit: simulated on {device}, the campaign on "
            f"{campaign.config['simulation']['device']} (the same physics)"
        )
    if not same_code:
        return "unknown: the physics code changed since the campaign simulated the cell"
    return (
        "the campaign's simulate job of this cell computed these numbers bit for bit (the same "
        "settings and fixed seeds, on the same device with the same FFT plans); its file kept "
        "the part campaign_stored names (null: all of it)"
    )
