"""The calibration ``interface4d predict`` uses: what the file records (read by
:mod:`interface4d.userformats`) merged with what the command line gives (:class:`Given`).

A value given by one of them is used; by both, they must agree (within 0.5 %, the detector
centre within half a pixel), and the file's value is used; a contradiction is a
:class:`PredictError` naming both values and the file; a value neither gives is an error naming
the option to give (the scan step along y defaults to the one along x, the detector centre to
pixel n // 2). Where every value came from goes to the prediction's provenance
(:attr:`~interface4d.userdata.Calibration.sources`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.modelcard import PredictError
from interface4d.physics import mrad_from_inv_angstrom
from interface4d.userdata import AXES, Calibration, _pair, check_rank
from interface4d.userformats import LENGTH_A, UserData

AGREE_RELATIVE = 0.005  # a command-line scan step or detector sampling this close to the file's
AGREE_CENTER_PX = 0.5


@dataclass
class Given:
    """Calibration values given on the command line (None: not given)."""

    energy_eV: float
    interface_x_A: float
    scan_step_x_A: float | None = None
    scan_step_y_A: float | None = None
    sampling_mrad: Any = None
    sampling_inv_angstrom: Any = None
    center_px: Any = None
    incident_intensity: float = 1.0

    @classmethod
    def of(cls, calib: Calibration) -> Given:
        """Every value of a complete :class:`Calibration` as if typed on the command line."""
        given = calib.sampling_given
        inv = given.get("inv_angstrom_per_px")
        return cls(
            energy_eV=calib.energy_eV,
            interface_x_A=calib.interface_x_A,
            scan_step_x_A=calib.scan_step_x_A,
            scan_step_y_A=calib.scan_step_y_A,
            sampling_mrad=None if inv is not None else calib.sampling_mrad,
            sampling_inv_angstrom=inv,
            center_px=calib.center_px,
            incident_intensity=calib.incident_intensity,
        )


def _merge(
    what: str,
    option: str,
    unit: str,
    file_value: float | None,
    where: str | None,
    given: float | None,
    path: Path,
    *,
    rel: float = AGREE_RELATIVE,
    abs_tol: float = 0.0,
) -> tuple[float | None, dict[str, Any]]:
    """One calibration value from the file and/or the command line (module doc)."""
    source: dict[str, Any] = {"file": file_value, "file_where": where, "command_line": given}
    if file_value is None:
        source["from"] = "command line" if given is not None else "none"
        return given, source
    if given is None:
        source["from"] = "file"
        return file_value, source
    if abs(given - file_value) > max(rel * abs(file_value), abs_tol):
        raise PredictError(
            f"{option} {given:g} {unit} contradicts {path}: the file records {file_value:.6g} "
            f"{unit} {what} ({where})"
        )
    source["from"] = "file (the command line agrees)"
    return file_value, source


def resolve_calibration(given: Given, data: UserData, layout: Sequence[str]) -> Calibration:
    """The calibration to use: the file's values, the command line's, checked against each
    other (module doc). ``layout`` maps the file's axes to x, y, kx, ky."""
    path = data.path
    check_rank(data.shape)
    if not (np.isfinite(given.energy_eV) and given.energy_eV > 0):
        raise PredictError(f"energy = {given.energy_eV!r}: must be a positive number")
    if given.sampling_mrad is not None and given.sampling_inv_angstrom is not None:
        raise PredictError("give the detector sampling once: in mrad/px or in 1/A per pixel")
    layout = list(layout)
    axes = {a: (layout.index(a), data.axes[layout.index(a)]) for a in AXES} if data.axes else {}
    for a, (i, ax) in axes.items():
        want = "scan" if a in ("x", "y") else "detector"
        if ax.kind is not None and ax.kind != want:
            raise PredictError(
                f"--layout {','.join(layout)} puts {a} on axis {i} of {path}, which the file "
                f"calls {ax.label!r}, a {ax.kind} axis: {a} must be a {want} axis"
            )
    sources: dict[str, Any] = {}

    def scan(a: str) -> tuple[float | None, str | None]:
        if a not in axes:
            return None, None
        ax = axes[a][1]
        return ax.length_A(), f"{ax.where}: {ax.scale:g} {ax.units}" if ax.scale else None

    fx, wx = scan("x")
    step_x, sources["scan_step_x_A"] = _merge(
        "along x", "--scan-step", "A", fx, wx, given.scan_step_x_A, path
    )
    if step_x is None:
        ax = axes["x"][1] if "x" in axes else None
        why = f" (its axis {ax.label!r} is in {ax.units!r})" if ax is not None and ax.units else ""
        raise PredictError(f"{path} records no scan step along x{why}: give --scan-step (A)")
    fy, wy = scan("y")
    step_y, sources["scan_step_y_A"] = _merge(
        "along y", "--scan-step-y", "A", fy, wy, given.scan_step_y_A, path
    )
    if step_y is None:
        step_y = step_x
        sources["scan_step_y_A"]["from"] = "as along x"

    g_shown: tuple[float | None, float | None] = (None, None)
    g_mrad: tuple[float | None, float | None] = (None, None)
    g_option = g_unit = ""
    if given.sampling_mrad is not None:
        g_shown = g_mrad = _pair(given.sampling_mrad, "detector sampling")
        g_option, g_unit = "--sampling-mrad", "mrad"
    elif given.sampling_inv_angstrom is not None:
        g_shown = _pair(given.sampling_inv_angstrom, "detector sampling")
        g_mrad = tuple(mrad_from_inv_angstrom(s, given.energy_eV) for s in g_shown)
        g_option, g_unit = "--sampling-inv-angstrom", "1/A"
    mrad: list[float] = []
    used: list[tuple[str, float]] = []  # each axis's sampling as read or typed (unit, value)
    sources["sampling_mrad"] = []
    for j, a in enumerate(("kx", "ky")):
        ax = axes[a][1] if a in axes else None
        found = ax.detector() if ax is not None else None
        src: dict[str, Any] = {"command_line": g_shown[j], "command_line_units": g_unit or None}
        if found is not None:
            f_unit = "mrad" if found[0] == "mrad" else "1/A"
            f_mrad = (
                found[1] if f_unit == "mrad" else mrad_from_inv_angstrom(found[1], given.energy_eV)
            )
            f_where = f"{ax.where}: {ax.scale:g} {ax.units}"
            src.update({"file": found[1], "file_units": f_unit, "file_where": f_where})
            src["from"] = "file"
            if g_shown[j] is not None:
                same = g_unit == f_unit  # compare in the file's units, else in mrad
                f_cmp, g_cmp = (found[1], g_shown[j]) if same else (f_mrad, g_mrad[j])
                if abs(g_cmp - f_cmp) > AGREE_RELATIVE * abs(f_cmp):
                    e = given.energy_eV

                    def shown(v, unit, v_mrad, same=same, e=e):
                        at = "" if same or unit == "mrad" else f" (= {v_mrad:.6g} mrad at {e:g} eV)"
                        return f"{v:.6g} {unit}{at}"

                    raise PredictError(
                        f"{g_option} {shown(g_shown[j], g_unit, g_mrad[j])} contradicts {path}: "
                        f"the file records {shown(found[1], f_unit, f_mrad)} per pixel along {a} "
                        f"({f_where})"
                    )
                src["from"] = "file (the command line agrees)"
            value = f_mrad
            used.append((found[0], found[1]))
        elif g_mrad[j] is not None:
            value = g_mrad[j]
            src["from"] = "command line"
            used.append(("mrad" if g_unit == "mrad" else "inv_angstrom", g_shown[j]))
        else:
            why = ""
            if ax is not None and ax.units:
                what = "not an angle or 1/length"
                if ax.key() in LENGTH_A:
                    what = "a length on the camera, which needs the camera length"
                why = f" (its axis {ax.label!r} is in {ax.units!r}, {what})"
            raise PredictError(
                f"{path} records no detector calibration along {a}{why}: give --sampling-mrad "
                "or --sampling-inv-angstrom"
            )
        mrad.append(float(value))
        sources["sampling_mrad"].append(src)

    file_center = [data.center.get(layout.index(a)) for a in ("kx", "ky")]
    if not all(file_center):  # both or none
        file_center = [None, None]
    g_center = (
        (None, None) if given.center_px is None else _pair(given.center_px, "detector centre")
    )
    center: list[float | None] = []
    sources["center_px"] = []
    for j, a in enumerate(("kx", "ky")):
        f = file_center[j]
        value, src = _merge(
            f"as the zero-frequency pixel along {a}",
            "--center",
            "px",
            None if f is None else f[0],
            None if f is None else f[1],
            g_center[j],
            path,
            abs_tol=AGREE_CENTER_PX,
        )
        center.append(value)
        sources["center_px"].append(src)
    if None in center:
        center = []
        sources["center_px"] = {"from": "default: pixel n // 2"}

    sampling_given: dict[str, Any] = {"mrad_per_px": list(mrad)}
    if all(unit == "inv_angstrom" for unit, _ in used):
        sampling_given = {"inv_angstrom_per_px": [v for _, v in used]}
    return Calibration(
        energy_eV=float(given.energy_eV),
        sampling_mrad=tuple(mrad),  # type: ignore[arg-type]
        scan_step_x_A=float(step_x),
        scan_step_y_A=float(step_y),
        interface_x_A=float(given.interface_x_A),
        center_px=tuple(center) if center else None,  # type: ignore[arg-type]
        incident_intensity=float(given.incident_intensity),
        sampling_given=sampling_given,
        sources=sources,
    )
