"""``interface4d export``: one simulated cell as a standalone EMD 1.0 file or an abTEM zarr store.

* ``emd`` (:func:`export_emd`): a copy of the cell's simulation file (``cbed``, ``scan``,
  ``structure`` and every attribute, so :func:`interface4d.simulate.read_cell` reads it too)
  made an EMD 1.0 file by :func:`interface4d.emd.add_datacube`: ``py4DSTEM.read(path)`` opens
  it as a DataCube with its calibrations, rosettasciio's EMD reader (HyperSpy's) as a 4D
  array with its axes. Simulation files are EMD 1.0 files themselves; the export also serves
  files written before they were, and records where it came from.
* ``zarr`` (:func:`export_zarr`): abTEM's own writer (``DiffractionPatterns.to_zarr``, a
  directory store) on the array rebuilt as the ``DiffractionPatterns`` abTEM's scan returned
  (scan axes in A with their origins, 1/A detector sampling, fftshifted, the beam energy):
  ``abtem.from_zarr(path)`` reads it back (abTEM's ``to_hyperspy`` converts it further).

Both outputs carry provenance (source file and its sha256, the cell's settings, versions,
time) and are written atomically.

:func:`export_cell` exports any cell of the campaign under every ``simulation.store``: it
exports the cell's file ``<results>/sims/<cell>.h5`` where there is one (``full``: the whole
array; ``cropped``: the stored part), and otherwise (``none``: the campaign keeps no file), or
for ``full=True`` when the file is cropped, simulates the cell again as the workflow's
``simulate`` job does (:mod:`interface4d.resimulate`: the campaign config's settings, seeds and
execution settings; the whole detector and scan) into a temporary file beside the output,
exports that and removes it; the export's provenance says so (``resimulated``). A malformed id,
a cell not in the campaign or an incomplete file is an :class:`ExportError` (or a
:class:`~interface4d.resimulate.ResimulationError`) of one line naming the cell and the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interface4d.resimulate import Campaign

log = logging.getLogger("interface4d.export")

FORMATS = ("emd", "zarr")
EMD_SUFFIXES = (".emd", ".h5", ".hdf5", ".py4dstem")  # the extensions py4DSTEM.read accepts


class ExportError(ValueError):
    """A cell or an output that cannot be exported (one line, naming the cell and the file)."""


def sim_path(results: str | Path, cell: str, configfile: str | Path | None = None) -> Path:
    """``<results>/sims/<cell>.h5`` of a well-formed cell id (the file may be absent)."""
    from interface4d.grid import parse_cell
    from interface4d.resimulate import DEFAULT_CONFIG

    path = Path(results) / "sims" / f"{cell}.h5"
    try:
        parse_cell(cell)
    except ValueError as exc:
        raise ExportError(
            f"{exc}: no simulation file {path} (interface4d validate "
            f"{configfile or DEFAULT_CONFIG} --list lists the campaign's cells)"
        ) from None
    return path


def resimulation_reason(path: Path, cell: str, full: bool) -> str | None:
    """Why the cell must be simulated again to be exported (None: export ``path``): no file,
    or ``full`` asked of a cropped one. An incomplete file is an :class:`ExportError`."""
    import h5py

    if not path.is_file():
        return f"no simulation file {path}"
    with h5py.File(path, "r") as fh:
        if not fh.attrs.get("complete", False):
            raise ExportError(f"cell {cell}: {path} is incomplete (no 'complete' mark)")
        stored = json.loads(fh.attrs.get("settings", "{}")).get("stored")
    if full and stored:
        return f"{path} keeps only {json.dumps(stored)} (simulation.store) and --full was asked"
    return None


def default_output(results: str | Path, cell: str, fmt: str) -> Path:
    return Path(results) / "export" / f"{cell}.{fmt}"


def _provenance(
    source: Path, modules: tuple[str, ...], resimulated: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Where the export came from: the source file and its sha256, or (``resimulated``) the
    re-simulation's record; the time and the versions of ``modules``."""
    from interface4d import versions
    from interface4d.provenance import file_sha256

    if resimulated is None:
        origin = {"exported_from": str(source), "exported_from_sha256": file_sha256(source)}
    else:
        origin = {
            "exported_from": f"re-simulated ({resimulated['reason']})",
            "resimulated": resimulated,
        }
    return {
        **origin,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "export_versions": versions(*modules),
    }


def _check_emd_name(output: Path) -> None:
    if output.suffix.lower() not in EMD_SUFFIXES:
        raise ExportError(
            f"output {output}: py4DSTEM reads EMD files ending {', '.join(EMD_SUFFIXES)}"
        )


def export_emd(
    source: str | Path, output: str | Path, resimulated: dict[str, Any] | None = None
) -> Path:
    """Copy the simulation file ``source`` to ``output`` (atomically) as a standalone EMD 1.0
    file (see the module doc). ``output`` ends in one of :data:`EMD_SUFFIXES`.
    ``resimulated``: ``source`` is a re-simulation, recorded so (:func:`_provenance`)."""
    import h5py

    from interface4d.emd import EMD_HEADER, add_datacube
    from interface4d.h5io import atomic_h5, set_attrs

    source, output = Path(source), Path(output)
    _check_emd_name(output)
    with h5py.File(source, "r") as src, atomic_h5(output) as dst:
        for name, item in src.items():
            if item.attrs.get("emd_group_type") != "root":  # remade over the copied cbed
                src.copy(item, dst, name)
        for key, value in src.attrs.items():
            if key not in (*EMD_HEADER, "complete"):
                dst.attrs[key] = value
        set_attrs(dst, _provenance(source, ("emdfile", "h5py", "numpy"), resimulated))
        add_datacube(dst)
    return output


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds, it replaces ``path``
    (a folder store: a killed export leaves at most a ``.part-<pid>`` folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.part-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.with_name(f"{path.name}.part-{os.getpid()}")
    try:
        yield tmp
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def diffraction_patterns(source: str | Path):
    """The cell's 4D array as the abTEM ``DiffractionPatterns`` its scan returned."""
    import abtem
    import h5py
    from abtem.core.axes import ScanAxis

    from interface4d.emd import calibration

    with h5py.File(source, "r") as fh:
        cal = calibration(fh)
        array = fh["cbed"][()]
        settings = json.loads(fh.attrs["settings"])
    axes = [
        ScanAxis(label=label, units="Å", sampling=step, offset=origin, endpoint=False)
        for label, step, origin in zip("xy", cal["scan_step_A"], cal["scan_origin_A"], strict=True)
    ]
    metadata = {
        "energy": cal["energy_eV"],
        "semiangle_cutoff": cal["semiangle_cutoff_mrad"],
        "label": "intensity",
        "units": "arb. unit",
        "interface4d_cell": cal["cell"],
        "interface4d_settings": json.dumps(settings, sort_keys=True),
    }
    return abtem.DiffractionPatterns(
        array,
        sampling=tuple(cal["sampling_invA"]),
        fftshift=True,
        ensemble_axes_metadata=axes,
        metadata=metadata,
    )


def export_zarr(
    source: str | Path, output: str | Path, resimulated: dict[str, Any] | None = None
) -> Path:
    """Write the cell ``source`` to the zarr folder store ``output`` (atomically) with abTEM's
    ``to_zarr``; its metadata carry the provenance (``interface4d_*`` keys)."""
    patterns = diffraction_patterns(source)
    provenance = _provenance(Path(source), ("abtem", "h5py", "numpy"), resimulated)
    for key, value in provenance.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        patterns.metadata[f"interface4d_{key}"] = text
    with atomic_dir(output) as tmp:
        patterns.to_zarr(str(tmp))
    return Path(output)


def export_cell(
    cell: str,
    fmt: str,
    output: str | Path | None = None,
    results: str | Path | None = None,
    configfile: str | Path | None = None,
    full: bool = False,
    device: str | None = None,
) -> Path:
    """Export the cell ``cell`` of the campaign as ``fmt`` (``emd`` or ``zarr``) to ``output``
    (default ``<results>/export/<cell>.<fmt>``); returns the path. ``results``: the campaign's
    results folder (default the config's ``results``); ``configfile``: the campaign config
    (default ``config.yaml``), read only when ``results`` is not given or the cell is simulated
    again (module doc); ``full``: the whole detector and scan, simulating a cropped cell again;
    ``device``: where a re-simulation runs (default the config's ``simulation.device``)."""
    from interface4d.resimulate import load_campaign, require_cell

    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    campaign = None if results is not None else load_campaign(configfile)
    results = Path(results) if results is not None else campaign.results
    source = sim_path(results, cell, configfile)
    output = Path(output) if output else default_output(results, cell, fmt)
    if output.resolve() == source.resolve():
        raise ExportError(f"cell {cell}: the output {output} is its simulation file")
    write = export_emd if fmt == "emd" else export_zarr
    if fmt == "emd":  # before any simulation: a wrong name fails at once
        _check_emd_name(output)
    reason = resimulation_reason(source, cell, full)
    if reason is None:
        return write(source, output)
    campaign = campaign or load_campaign(configfile)
    require_cell(campaign, cell)
    log.info("cell %s: %s (simulation.store = %s)", cell, reason, campaign.store)
    with _resimulated(campaign, cell, output, results, device) as (tmp, record):
        record["reason"] = reason
        write(tmp, output, record)
    log.info("cell %s: exported -> %s", cell, output)
    return output


@contextlib.contextmanager
def _resimulated(
    campaign: Campaign, cell: str, output: Path, results: Path, device: str | None
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The cell simulated again into a temporary file beside ``output`` (removed afterwards,
    and any a killed export left) and the re-simulation's record."""
    from interface4d.resimulate import resimulate

    output.parent.mkdir(parents=True, exist_ok=True)
    stem = f".{output.name}.resim-"
    for stale in output.parent.glob(f"{stem}*"):
        stale.unlink(missing_ok=True)
    tmp = output.with_name(f"{stem}{os.getpid()}.h5")
    try:
        yield tmp, resimulate(campaign, cell, tmp, results=results, device=device)
    finally:
        tmp.unlink(missing_ok=True)
