"""abTEM 4D-STEM simulation of one cell: frozen-phonon multislice (or PRISM), CPU or GPU.

One call builds the cell's structure in-process, simulates a scan band across the interface
and writes ``<cell>.h5`` atomically (:mod:`interface4d.h5io`) with the structure, the scan
positions, samplings, every parameter, versions, seeds and wall times. The file keeps what the
cell's ``stored`` setting says (``simulation.store``): the whole 4D array, or the CBED centre
and the probe band that the reductions read (:func:`keep_stored`). TensorFlow is never
imported here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interface4d import versions
from interface4d.cropping import band_mask, crop_center
from interface4d.emd import add_datacube
from interface4d.h5io import FORMAT, atomic_h5, flatten, set_attrs, write_cbed
from interface4d.structures import build_from_settings, interface_x

log = logging.getLogger("interface4d.simulate")


@dataclass
class Simulation:
    """A simulated cell in memory: the 4D array and everything needed to interpret it."""

    cbed: np.ndarray  # (scan x, scan y, kx, ky) float32
    scan_x: np.ndarray  # probe positions along x (Angstrom)
    scan_y: np.ndarray
    angular_sampling: tuple[float, float]  # mrad per detector pixel
    reciprocal_sampling: tuple[float, float]  # 1/Angstrom per detector pixel
    real_sampling: tuple[float, float]  # Angstrom per potential pixel
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    fft_planning: str = ""  # how the FFTs were planned (interface4d.fftplan)


def scan_window(settings: Mapping[str, Any]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(start, end) of the probe scan in Angstrom: a band around the interface along x, one
    unit cell along y. ``end`` is exclusive (positions are start + i * (end - start) / gpts)."""
    st = settings["structure"]
    a = st["lattice_constant"]
    window = settings["simulation"]["scan"]["window_x"]
    if window == "full":
        x0, x1 = 0.0, st["cells_x"] * a
    else:
        xc = interface_x(st["interface_layer"], a)
        x0, x1 = xc + window[0], xc + window[1]
    return (x0, 0.0), (x1, a)


def stored_window(settings: Mapping[str, Any]) -> tuple[float, float]:
    """(start, end) along x in Angstrom of the probe positions a cell's file holds: the scan
    (:func:`scan_window`) or, with a cropped store, the stored band inside it."""
    (x0, _), (x1, _) = scan_window(settings)
    stored = settings.get("stored")
    if stored and stored["window_x"] is not None:
        st = settings["structure"]
        xc = interface_x(st["interface_layer"], st["lattice_constant"])
        x0, x1 = max(x0, xc + stored["window_x"][0]), min(x1, xc + stored["window_x"][1])
    return x0, x1


def keep_stored(result: Simulation, settings: Mapping[str, Any]) -> Simulation:
    """What the cell's file keeps of ``result`` (its ``stored`` setting): all of it, or the CBED
    within the stored angle and the probe positions in the stored band, cut by the reduction's
    own rules (:mod:`interface4d.cropping`), so that any reduction within them reads the same
    numbers from this file as from the full one."""
    stored = settings.get("stored")
    if not stored:
        return result
    cbed, scan_x = result.cbed, result.scan_x
    if stored["window_x"] is not None:
        st = settings["structure"]
        rel = scan_x - interface_x(st["interface_layer"], st["lattice_constant"])
        keep = band_mask(rel, stored["window_x"])
        if not keep.any():
            raise ValueError(
                f"simulation.store_window_x = {stored['window_x']}: keeps no probe position "
                f"(positions at {np.round(rel, 4).tolist()} A from the interface)"
            )
        cbed, scan_x = cbed[keep], scan_x[keep]
    cbed = crop_center(
        cbed, stored["crop_mrad"], result.angular_sampling, key="simulation.store_crop_mrad"
    )
    return dataclasses.replace(result, cbed=np.ascontiguousarray(cbed), scan_x=scan_x)


def _configure_abtem(device: str, precision: str, threads: int) -> None:
    import abtem

    abtem.config.set(
        {
            "device": device,
            "precision": precision,
            "diagnostics.progress_bar": False,
            "fftw.threads": 1,
            # planning effort: interface4d.fftplan (estimated, or measured and shared)
        }
    )


def build_measurement(settings: Mapping[str, Any], atoms, max_batch: int):
    """The lazy abTEM DiffractionPatterns of one cell (nothing computed yet)."""
    import abtem

    sim = settings["simulation"]
    sigmas = settings["structure"]["phonon_sigmas"]
    if sim["num_configs"] == 1 and not any(sigmas.values()):
        specimen = atoms  # static lattice
    else:
        specimen = abtem.FrozenPhonons(
            atoms, sim["num_configs"], sigmas=dict(sigmas), seed=settings["phonon_seed"]
        )
    square = np.isclose(atoms.cell[0, 0], atoms.cell[1, 1])
    gpts = sim["gpts"]
    potential = abtem.Potential(
        specimen,
        gpts=(gpts, gpts),
        slice_thickness=sim["slice_thickness"],
        projection="infinite",
        parametrization="lobato",
    )
    start, end = scan_window(settings)
    scan = abtem.GridScan(start=start, end=end, gpts=tuple(sim["scan"]["gpts"]), endpoint=False)
    detector = abtem.PixelatedDetector(
        max_angle=sim["detector_max_angle"], resample=False if square else "uniform"
    )
    aberrations = dict(sim.get("aberrations") or {})
    if sim["method"] == "prism":
        smatrix = abtem.SMatrix(
            potential=potential,
            energy=sim["energy"],
            semiangle_cutoff=sim["semiangle_cutoff"],
            interpolation=sim["prism_interpolation"],
        )
        # SMatrixArray.scan() crashes in abTEM 1.0.11; reduce() is the working path.
        ctf = abtem.CTF(
            semiangle_cutoff=sim["semiangle_cutoff"],
            energy=sim["energy"],
            aberration_coefficients=aberrations,
        )
        return smatrix.reduce(scan=scan, detectors=detector, ctf=ctf, max_batch_reduction=max_batch)
    probe = abtem.Probe(
        energy=sim["energy"],
        semiangle_cutoff=sim["semiangle_cutoff"],
        aberrations=aberrations,
    )
    return probe.scan(potential, scan=scan, detectors=detector, max_batch=max_batch)


def run(
    settings: Mapping[str, Any],
    atoms=None,
    device: str = "cpu",
    threads: int = 1,
    max_batch: int = 48,
    fftw_wisdom: str | Path | None = None,
) -> Simulation:
    """Simulate one cell and return the result in memory (float32 NumPy, whatever the device).

    ``fftw_wisdom``: a folder where CPU processes share measured FFTW plans
    (:mod:`interface4d.fftplan`); None: estimated plans. Ignored on the GPU.
    """
    from interface4d import fftplan

    t0 = time.perf_counter()
    if atoms is None:
        atoms = build_from_settings(settings)
    t_build = time.perf_counter() - t0
    _configure_abtem(device, settings["simulation"]["precision"], threads)
    wisdom = fftw_wisdom if device == "cpu" else None
    key = fftplan.wisdom_key(settings["simulation"], max_batch) if wisdom is not None else ""
    with fftplan.shared_plans(wisdom, key) as planning:
        measurement = build_measurement(settings, atoms, max_batch)
        t1 = time.perf_counter()
        if threads > 1:
            measurement = measurement.compute(scheduler="threads", num_workers=threads)
        else:
            measurement = measurement.compute(scheduler="synchronous")
        t_sim = time.perf_counter() - t1
    array = measurement.array
    if hasattr(array, "get"):  # CuPy -> NumPy
        array = array.get()
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 4:
        raise RuntimeError(f"expected a 4D (x, y, kx, ky) array, abTEM returned {array.shape}")
    (x0, y0), (x1, y1) = scan_window(settings)
    nx, ny = settings["simulation"]["scan"]["gpts"]
    return Simulation(
        cbed=array,
        scan_x=x0 + np.arange(nx) * (x1 - x0) / nx,
        scan_y=y0 + np.arange(ny) * (y1 - y0) / ny,
        angular_sampling=tuple(float(s) for s in measurement.angular_sampling),
        reciprocal_sampling=tuple(float(s) for s in measurement.sampling),
        real_sampling=tuple(
            float(e / settings["simulation"]["gpts"]) for e in atoms.cell.lengths()[:2]
        ),
        timings={"build_s": t_build, "simulate_s": t_sim},
        device=device,
        fft_planning=planning.describe() if device == "cpu" else "cuFFT",
    )


def simulate_cell(
    settings: Mapping[str, Any],
    output: str | Path,
    device: str = "cpu",
    threads: int = 1,
    max_batch: int = 48,
    fftw_wisdom: str | Path | None = None,
) -> Path:
    """Build, simulate and write one cell to ``output`` (atomically). Returns the path.

    ``fftw_wisdom``: see :func:`run`."""
    output = Path(output)
    t_start = time.perf_counter()
    atoms = build_from_settings(settings)
    sim = settings["simulation"]
    log.info(
        "cell %s: %d atoms, %d slices, %d x %d positions x %d configs, %s on %s",
        settings["cell"],
        len(atoms),
        int(np.ceil(atoms.cell[2, 2] / sim["slice_thickness"])),
        *sim["scan"]["gpts"],
        sim["num_configs"],
        sim["method"],
        device,
    )
    with atomic_h5(output) as fh:
        # structure and parameters first: a job killed from here on leaves only a .part file
        st = fh.create_group("structure")
        st.create_dataset("positions", data=atoms.positions.astype(np.float64))
        st.create_dataset("numbers", data=atoms.numbers.astype(np.int16))
        st.create_dataset("cell", data=np.asarray(atoms.cell))
        set_attrs(st, dict(atoms.info))
        result = run(
            settings,
            atoms=atoms,
            device=device,
            threads=threads,
            max_batch=max_batch,
            fftw_wisdom=fftw_wisdom,
        )
        result = keep_stored(result, settings)  # what simulation.store keeps
        t_write = time.perf_counter()
        write_cbed(fh, "cbed", result.cbed)
        fh["cbed"].attrs["axes"] = json.dumps(["scan_x", "scan_y", "kx", "ky"])
        fh.create_dataset("scan/x", data=result.scan_x)
        fh.create_dataset("scan/y", data=result.scan_y)
        attrs = {
            "format": FORMAT,
            "cell": settings["cell"],
            "kind": settings["kind"],
            "settings": settings,
            "angular_sampling_mrad": list(result.angular_sampling),
            "reciprocal_sampling_invA": list(result.reciprocal_sampling),
            "real_sampling_A": list(result.real_sampling),
            "scan_sampling_A": [
                float(np.diff(result.scan_x[:2])[0]) if result.scan_x.size > 1 else 0.0,
                float(np.diff(result.scan_y[:2])[0]) if result.scan_y.size > 1 else 0.0,
            ],
            "versions": versions(
                "abtem", "ase", "numpy", "h5py", *(["cupy"] if "cupy" in sys.modules else [])
            ),
            "device": device,
            "threads": threads,
            "max_batch": max_batch,
            "fft_planning": result.fft_planning,
            "host": socket.gethostname(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_s": result.timings["build_s"],
            "simulate_s": result.timings["simulate_s"],
        }
        attrs.update({f"param.{k}": v for k, v in flatten(settings).items()})
        set_attrs(fh, attrs)
        add_datacube(fh)  # also EMD 1.0: py4DSTEM reads cbed as a DataCube (emd.py)
        fh.attrs["write_s"] = time.perf_counter() - t_write
        fh.attrs["wall_s"] = time.perf_counter() - t_start
    log.info(
        "cell %s done: simulate %.1f s, total %.1f s -> %s",
        settings["cell"],
        result.timings["simulate_s"],
        time.perf_counter() - t_start,
        output,
    )
    return output


def read_cell(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Load a cell's 4D array and its attributes (settings decoded). Refuses incomplete files."""
    import h5py

    from interface4d.h5io import require_complete

    with h5py.File(path, "r") as fh:
        require_complete(fh, path)
        attrs = dict(fh.attrs)
        array = fh["cbed"][()]
    attrs["settings"] = json.loads(attrs["settings"])
    return array, attrs


def settings_from_json(text: str) -> dict[str, Any]:
    settings = json.loads(text)
    for key in ("cell", "kind", "nz", "structure", "simulation", "phonon_seed"):
        if key not in settings:
            raise ValueError(f"cell settings lack the key {key!r}")
    return settings
