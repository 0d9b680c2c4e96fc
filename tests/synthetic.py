"""Simulation files with known values, in the layout ``simulate_cell`` writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from interface4d.h5io import atomic_h5, set_attrs, write_cbed
from interface4d.simulate import scan_window


def scan_positions(settings: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The probe positions simulate.run gives for these settings."""
    (x0, y0), (x1, y1) = scan_window(settings)
    nx, ny = settings["simulation"]["scan"]["gpts"]
    return x0 + np.arange(nx) * (x1 - x0) / nx, y0 + np.arange(ny) * (y1 - y0) / ny


def coded_cbed(nx: int, ny: int, n: int) -> np.ndarray:
    """cbed[i, j, p, q] = ((i * ny + j) * n + p) * n + q: every value distinct and exact in
    float32 (and so are sums of a few of them) for the sizes used here."""
    i, j, p, q = np.meshgrid(
        np.arange(nx), np.arange(ny), np.arange(n), np.arange(n), indexing="ij"
    )
    values = ((i * ny + j) * n + p) * n + q
    assert values.max() * 16 < 2**24  # exact in float32 even after binning 4 x 4
    return values.astype(np.float32)


def write_sim(
    path: Path,
    settings: Mapping,
    cbed: np.ndarray,
    sampling: tuple[float, float],
    complete: bool = True,
) -> Path:
    """A simulation file as simulate_cell writes it (the parts reduce_cell reads)."""
    scan_x, scan_y = scan_positions(settings)
    assert cbed.shape[:2] == (scan_x.size, scan_y.size)
    with atomic_h5(path) as fh:
        write_cbed(fh, "cbed", cbed)
        fh.create_dataset("scan/x", data=scan_x)
        fh.create_dataset("scan/y", data=scan_y)
        set_attrs(
            fh,
            {
                "cell": settings["cell"],
                "kind": settings["kind"],
                "settings": settings,
                "angular_sampling_mrad": list(sampling),
            },
        )
        fh.attrs["settings"] = json.dumps(settings, sort_keys=True)
    if not complete:
        import h5py

        with h5py.File(path, "r+") as fh:
            del fh.attrs["complete"]
    return path
