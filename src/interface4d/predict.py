"""Prediction on a user's own 4D-STEM data with the trained networks (``interface4d predict``).

A user's 4D array is read (:mod:`interface4d.userformats`: .npy, HDF5, EMD 1.0 / py4DSTEM and
the detector formats of rosettasciio), calibrated from the file and the command line
(:mod:`interface4d.usercalibration`), reordered to (x, y, kx, ky) (:mod:`interface4d.userdata`),
checked against the model card (:mod:`interface4d.modelcard`;
mismatches are :class:`PredictError`\\ s naming both values: :func:`plan`), resampled onto the
network's input grid, and fed to the classifier (one example per scan row) and, given a
thickness, to the step-depth regressor of the nearest trained thickness (the mean over the
rows). Outputs (:func:`predict`): ``prediction.json``, ``saliency.png`` / ``.svg`` and
``saliency.npz`` (:mod:`interface4d.saliency`). The geometry, the units and the resampling are
described in :mod:`interface4d.userdata`.

TensorFlow, Keras and matplotlib are imported only inside the functions that use them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.modelcard import ModelCard, PredictError, read_model_card
from interface4d.saliency import (
    load_model,
    output_and_gradient,
    plot_saliency,
    saliency_map_and_profile,
)
from interface4d.usercalibration import Given, resolve_calibration
from interface4d.userdata import (
    AXES,
    DEFAULT_LAYOUT,
    POSITION_SNAP_A,
    Calibration,
    NetworkInput,
    check_rank,
    parse_layout,
    prepare_input,
)
from interface4d.userformats import open_data

PREDICTION_FORMAT = "interface4d-prediction/1"
ENERGY_TOLERANCE = 0.005  # relative
SAMPLING_TOLERANCE = 0.01  # relative: detector pixels and scan steps this much coarser pass
EXTENT_TOLERANCE = 0.01  # of a network pixel: detector edge
THICKNESS_TOLERANCE_A = 25.0
INTENSITY_RANGE = (0.5, 2.0)  # mean pattern total / the training mean


# --------------------------------------------------------------------------- checks


@dataclass
class Plan:
    """What :func:`plan` decided: the x slab to read, the regressor, notes."""

    shape: tuple[int, int, int, int]  # canonical (x, y, kx, ky)
    center_px: tuple[float, float]
    x_first: int  # first and last probe index along x to read (inclusive)
    x_last: int
    x_interpolated: int  # trained positions that fall between probe positions
    regressor_thickness: float | None
    regressor_exact: bool
    notes: list[str]
    warnings: list[str]


def scan_nyquist_A(card: ModelCard) -> float:
    """lambda / (4 alpha) (A): the probe-position sampling that resolves every spatial frequency
    of a 4D data set (its patterns vary with the probe position up to 2 alpha / lambda)."""
    from interface4d.physics import wavelength

    alpha = float(card["semiangle_cutoff_mrad"]) * 1e-3
    return wavelength(float(card["energy_eV"])) / (4 * alpha)


def check_energy(card: ModelCard, energy_ev: float) -> None:
    trained = float(card["energy_eV"])
    rel = abs(energy_ev - trained) / trained
    if rel > ENERGY_TOLERANCE:
        raise PredictError(
            f"beam energy {energy_ev:g} eV differs from the trained energy {trained:g} eV by "
            f"{100 * rel:.2f} % (more than {100 * ENERGY_TOLERANCE:g} %)"
        )


def check_detector(
    card: ModelCard, n: Sequence[int], sampling: Sequence[float], center: Sequence[float]
) -> None:
    """The detector must be at least as fine as the network's pixel and reach its extent."""
    s_dst, c_dst, k = card.sampling, card.center, card.pattern_px
    for axis, name in enumerate(("kx", "ky")):
        s, c, nn = float(sampling[axis]), float(center[axis]), int(n[axis])
        if s > s_dst[axis] * (1 + SAMPLING_TOLERANCE):
            raise PredictError(
                f"detector sampling outside the trained range: {s:.4g} mrad/px along {name} "
                f"is coarser than the network's pixel, {s_dst[axis]:.4g} mrad/px"
            )
        lo_dst = (-c_dst[axis] - 0.5) * s_dst[axis]
        hi_dst = (k[axis] - 1 - c_dst[axis] + 0.5) * s_dst[axis]
        lo, hi = (-c - 0.5) * s, (nn - 1 - c + 0.5) * s
        tol = EXTENT_TOLERANCE * s_dst[axis]
        if lo > lo_dst + tol or hi < hi_dst - tol:
            raise PredictError(
                f"detector sampling outside the trained range: along {name} the detector "
                f"({nn} pixels of {s:.4g} mrad, centre at pixel {c:g}) reaches {lo:.2f} to "
                f"{hi:.2f} mrad about the centre, but the network needs {lo_dst:.2f} to "
                f"{hi_dst:.2f} mrad (crop_mrad {float(card['crop_mrad']):g}); check the "
                "sampling and the centre"
            )


def choose_regressor(
    card: ModelCard, thickness: float, tolerance: float = THICKNESS_TOLERANCE_A
) -> tuple[float, bool]:
    """(trained thickness of the nearest regressor, whether it is exact)."""
    trained = sorted(card.regressors)
    if not trained:
        raise PredictError(f"model card {card.path} lists no regressor: use --classify-only")
    nearest = min(trained, key=lambda t: (abs(t - thickness), t))
    if abs(nearest - thickness) > tolerance:
        raise PredictError(
            f"thickness {thickness:g} A is outside the trained range: regressors exist for "
            f"{[float(t) for t in trained]} A (accepted within +-{tolerance:g} A)"
        )
    return nearest, math.isclose(nearest, thickness, abs_tol=1e-6)


def plan(
    card: ModelCard,
    file_shape: Sequence[int],
    layout: Sequence[str],
    calib: Calibration,
    *,
    thickness: float | None = None,
    thickness_tolerance: float = THICKNESS_TOLERANCE_A,
) -> Plan:
    """Every check that needs no data: rank, energy, detector, scan along x and y, thickness.
    Raises :class:`PredictError` naming the first mismatch."""
    check_rank(file_shape)
    layout = parse_layout(layout if isinstance(layout, str) else ",".join(layout))
    shape = tuple(int(file_shape[layout.index(a)]) for a in AXES)
    check_energy(card, calib.energy_eV)
    nx, ny, n0, n1 = shape
    center = calib.center_px if calib.center_px is not None else (float(n0 // 2), float(n1 // 2))
    check_detector(card, (n0, n1), calib.sampling_mrad, center)

    notes: list[str] = []
    warnings: list[str] = []
    targets = card.scan_x
    trained_step = float(card["scan_x_step_A"])
    step = calib.scan_step_x_A
    if trained_step > 0 and step > trained_step * (1 + SAMPLING_TOLERANCE):
        raise PredictError(
            f"scan step along x {step:.4g} A is coarser than the trained step "
            f"{trained_step:.4g} A: too few probe positions across the interface"
        )
    x0 = -calib.interface_x_A
    x1 = (nx - 1) * step - calib.interface_x_A
    if x0 > targets[0] + POSITION_SNAP_A or x1 < targets[-1] - POSITION_SNAP_A:
        raise PredictError(
            f"too few probe positions: the scan ({nx} positions of {step:g} A, the interface at "
            f"{calib.interface_x_A:g} A from the first) covers {x0:.3f} to {x1:.3f} A about the "
            f"interface, but the network was trained on {targets[0]:.3f} to {targets[-1]:.3f} A"
        )
    u = (targets + calib.interface_x_A) / step
    between = np.abs(u - np.round(u)) * step > POSITION_SNAP_A
    nyquist = scan_nyquist_A(card)
    if between.any() and step > nyquist * (1 + SAMPLING_TOLERANCE):
        raise PredictError(
            f"scan step along x {step:g} A is too coarse to interpolate the patterns to the "
            f"trained probe positions: the patterns vary with the probe position up to the "
            f"spatial frequency 2 alpha / lambda = {0.5 / nyquist:.3g} 1/A, so interpolation "
            f"needs a step <= lambda / (4 alpha) = {nyquist:.3f} A. Or scan so that probe "
            f"positions coincide (within {POSITION_SNAP_A:g} A) with the trained ones, "
            f"{np.round(targets, 3).tolist()} A from the interface ({int(between.sum())} of "
            f"{targets.size} fall between probe positions here)"
        )
    first = int(math.floor(u[0] + POSITION_SNAP_A / step))
    last = int(math.ceil(u[-1] - POSITION_SNAP_A / step))
    first, last = max(first, 0), min(last, nx - 1)

    regressor, exact = None, False
    a = float(card["lattice_constant_A"])
    if thickness is not None:
        if not (np.isfinite(thickness) and thickness > 0):
            raise PredictError(f"thickness {thickness!r} A: must be a positive number")
        regressor, exact = choose_regressor(card, float(thickness), thickness_tolerance)
        covered = ny * calib.scan_step_y_A
        if covered < a * (1 - SAMPLING_TOLERANCE):
            raise PredictError(
                f"too few probe positions along y for the step-depth regression: {ny} rows of "
                f"{calib.scan_step_y_A:g} A cover {covered:.3f} A, less than one unit cell "
                f"(lattice constant {a:g} A); scan a whole unit cell or use --classify-only"
            )
        cells = covered / a
        if abs(cells - round(cells)) > 0.05:
            warnings.append(
                f"the {ny} rows cover {cells:.2f} unit cells along y, not a whole number: the "
                "row average (the regression input) weights part of the unit cell twice"
            )
        if not exact:
            notes.append(
                f"no regressor was trained at {thickness:g} A; used the nearest, {regressor:g} A"
            )
        trained_y = float(card["scan_y_step_A"])
        if calib.scan_step_y_A > trained_y * (1 + SAMPLING_TOLERANCE):
            warnings.append(
                f"scan step along y {calib.scan_step_y_A:g} A is coarser than the trained "
                f"{trained_y:g} A: the row average samples the unit cell more sparsely than "
                "the regressor's training examples"
            )
        tc = card.data.get("classifier_thicknesses_A") or []
        if tc and not (min(tc) - thickness_tolerance <= thickness <= max(tc) + thickness_tolerance):
            warnings.append(
                f"thickness {thickness:g} A is outside the classifier's training thicknesses {tc} A"
            )
    return Plan(
        shape=shape,  # type: ignore[arg-type]
        center_px=(float(center[0]), float(center[1])),
        x_first=first,
        x_last=last,
        x_interpolated=int(between.sum()),
        regressor_thickness=regressor,
        regressor_exact=exact,
        notes=notes,
        warnings=warnings,
    )


def check_intensity(card: ModelCard, net: NetworkInput, calib: Calibration) -> None:
    trained = float(card["pattern_intensity"]["mean"])
    ratio = net.mean_pattern_total / trained
    lo, hi = INTENSITY_RANGE
    if not lo <= ratio <= hi:
        raise PredictError(
            f"intensity outside the trained range: the patterns hold {net.mean_pattern_total:.4g} "
            f"on average inside the network's detector area (after dividing by the incident "
            f"intensity {calib.incident_intensity:g}), the training patterns "
            f"{trained:.4g} ({card['intensity_units']}); give the incident-beam counts with "
            "--incident-intensity (a wrong detector sampling or centre also shows here)"
        )


# --------------------------------------------------------------------------- networks


def verify_model(card: ModelCard, rel: str, path: Path) -> None:
    """The model file exists and is the one the card recorded (sha256)."""
    from interface4d.provenance import file_sha256

    if not path.exists():
        raise PredictError(f"model {path} (listed in {card.path}) does not exist")
    want = card.sha256_of(rel)
    if want is not None and file_sha256(path) != want:
        raise PredictError(
            f"model {path} differs from the one the model card {card.path} describes (sha256)"
        )


# --------------------------------------------------------------------------- prediction


def predict(
    data_path: str | Path,
    card_path: str | Path,
    calib: Calibration | Given,
    out_dir: str | Path,
    *,
    layout: str | Sequence[str] = DEFAULT_LAYOUT,
    dataset_path: str | None = None,
    thickness: float | None = None,
    thickness_tolerance: float = THICKNESS_TOLERANCE_A,
) -> dict[str, Any]:
    """Classify (and, given ``thickness``, regress the step depth of) a user's 4D data set.

    ``calib``: the command line's values (:class:`Given`; what the file records fills the rest
    and is checked against them), or a whole :class:`Calibration` (checked against the file
    alike). All checks run before TensorFlow is imported. Writes ``prediction.json``,
    ``saliency.png``/``.svg`` and ``saliency.npz`` to ``out_dir`` and returns the prediction.
    """
    from interface4d import versions
    from interface4d.h5io import atomic_path
    from interface4d.physics import wavelength
    from interface4d.provenance import file_sha256

    card = read_model_card(card_path)
    axes = parse_layout(layout if isinstance(layout, str) else ",".join(layout))
    given = calib if isinstance(calib, Given) else Given.of(calib)
    with open_data(data_path, dataset_path) as data:
        calib = resolve_calibration(given, data, axes)
        p = plan(
            card,
            data.shape,
            axes,
            calib,
            thickness=thickness,
            thickness_tolerance=thickness_tolerance,
        )
        block = data.read_x(axes, p.x_first, p.x_last)
        file_info = {
            "path": str(Path(data_path).resolve()),
            "dataset_path": data.dataset_path,
            "shape": list(data.shape),
            "dtype": data.dtype,
            "layout": list(axes),
            **data.describe(),
        }
        file_notes, file_warnings, fmt = data.notes, data.warnings, data.format
    net = prepare_input(block, p.x_first, card, calib, p.center_px)
    del block
    check_intensity(card, net, calib)
    models = [(card["classifier_model"], card.classifier_path)]
    if p.regressor_thickness is not None:
        key = next(k for k in card["regressors"] if float(k) == p.regressor_thickness)
        models.append((card["regressors"][key], card.regressors[float(key)]))
    for rel, path in models:
        verify_model(card, rel, path)

    classes = list(card["classes"])
    classifier = load_model(card.classifier_path)
    probs, grad = output_and_gradient(classifier, net.lines, 0)
    mean = probs.astype(np.float64).mean(axis=0)
    predicted = classes[int(np.argmax(mean))]
    if len(classes) != 2 and classes.index(predicted) != 0:
        # with two classes |d p_predicted / dx| = |d p_0 / dx|: one pass serves both
        _, grad = output_and_gradient(classifier, net.lines, classes.index(predicted))
    cmap, cprofile = saliency_map_and_profile(grad)
    panels = [(f"classifier (p[{predicted}])", cmap, cprofile)]
    saliency = {"classifier_map": cmap, "classifier_profile": cprofile}

    regression = None
    if p.regressor_thickness is not None:
        regressor = load_model(card.regressors[float(key)])
        value, rgrad = output_and_gradient(regressor, net.average[None], 0)
        fraction = float(value[0, 0])
        rmap, rprofile = saliency_map_and_profile(rgrad)
        panels.append(("regressor (step fraction)", rmap, rprofile))
        saliency.update({"regressor_map": rmap, "regressor_profile": rprofile})
        a = float(card["lattice_constant_A"])
        regression = {
            "thickness_A": float(thickness),
            "model_thickness_A": p.regressor_thickness,
            "model": card["regressors"][key],
            "exact_thickness": p.regressor_exact,
            "step_fraction": fraction,
            "step_depth_A": fraction * float(thickness),
            "step_depth_unit_cells": fraction * float(thickness) / a,
            "meaning": "depth of the buried step below the entrance surface / thickness; "
            "meaningful when the class is 'step'",
            "applies": predicted == "step",
        }

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_saliency(out_dir / "saliency.png", card, panels)
    with atomic_path(out_dir / "saliency.npz", ".npz") as tmp:
        np.savez(tmp, **saliency, scan_x_relative_A=card.scan_x)
    result = {
        "format": PREDICTION_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": file_info,
        "calibration": {
            "energy_eV": calib.energy_eV,
            "wavelength_A": wavelength(calib.energy_eV),
            "sampling_given": calib.sampling_given,
            "sources": calib.sources,
            "sampling_mrad": list(calib.sampling_mrad),
            "center_px": list(p.center_px),
            "center_given": calib.center_px is not None,
            "scan_step_x_A": calib.scan_step_x_A,
            "scan_step_y_A": calib.scan_step_y_A,
            "interface_x_A": calib.interface_x_A,
            "incident_intensity": calib.incident_intensity,
            "axes_canonical": list(AXES),
            "shape_canonical": list(p.shape),
            "probe_columns_read": [p.x_first, p.x_last],
            "trained_positions_interpolated": p.x_interpolated,
            "scan_nyquist_A": scan_nyquist_A(card),
        },
        "network_input": {
            "lines_shape": list(net.lines.shape),
            "average_shape": list(net.average.shape),
            "angular_sampling_mrad": card.sampling.tolist(),
            "center_px": card.center.tolist(),
            "scan_x_relative_A": card.scan_x.tolist(),
            "mean_pattern_total": net.mean_pattern_total,
            "trained_mean_pattern_total": float(card["pattern_intensity"]["mean"]),
            "resampling": "detector: exact pixel-area overlap (intensity per pixel conserved); "
            f"scan x: a probe within {POSITION_SNAP_A:g} A of a trained position as it is, "
            "else linear interpolation (step <= lambda / (4 alpha))",
        },
        "classification": {
            "classes": classes,
            "per_line": probs.astype(np.float64).round(6).tolist(),
            "mean_probability": {c: float(mean[i]) for i, c in enumerate(classes)},
            "lines_voting": {
                c: int((probs.argmax(axis=1) == i).sum()) for i, c in enumerate(classes)
            },
            "predicted_class": predicted,
            "rule": "argmax of the class probability averaged over the scan rows",
            "model": card["classifier_model"],
        },
        "regression": regression,
        "saliency": {
            "files": ["saliency.png", "saliency.svg", "saliency.npz"],
            "what": "|d output / d input| (classifier: the predicted class's probability; "
            "regressor: the step fraction), summed over the scan positions (k x k map) and "
            "over the detector (profile along x)",
            "classifier_profile": cprofile.tolist(),
            **({"regressor_profile": saliency["regressor_profile"].tolist()} if regression else {}),
        },
        "notes": file_notes
        + p.notes
        + ([] if regression else ["no thickness given: classification only"]),
        "warnings": file_warnings + p.warnings,
        "model_card": {
            "path": str(card.path),
            "sha256": file_sha256(card.path),
            "campaign": card["campaign"],
        },
        "versions": versions(
            "numpy", "h5py", "tensorflow", "keras", *(["rsciio"] if "rosettasciio" in fmt else [])
        ),
    }
    with atomic_path(out_dir / "prediction.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interface4d predict",
        description="Classify a 4D-STEM scan across a LaAlO3/SrTiO3 interface (buried step vs "
        "Ti/Al intermixing) and, given the thickness, regress the step depth with the trained "
        "networks. The data are resampled onto the grid the networks were trained on (model "
        "card); any mismatch (energy, detector sampling or extent, scan step or coverage, "
        "thickness) is an error naming both values.",
        epilog="Axes: x = scan across the interface (growth direction, from SrTiO3 towards "
        "LaAlO3), y = scan along it, kx/ky = detector axes (kx parallel to x). Outputs in "
        "OUTDIR: prediction.json, saliency.png/.svg/.npz.",
    )
    p.add_argument(
        "data",
        metavar="DATA",
        help="4D data: .npy, HDF5 (.h5/.hdf5/.hdf/.emd), EMD 1.0 (py4DSTEM, emdfile: "
        "calibrations read from the file), Merlin .mib, Gatan .dm3/.dm4, EMPAD .xml (+ .raw), "
        "NanoMegas .blo (read with rosettasciio, calibrations where the format has them)",
    )
    p.add_argument("--models", required=True, metavar="CARD", help="model_card.json")
    p.add_argument(
        "--dataset-path",
        metavar="PATH",
        help="the 4D dataset (or EMD array group) inside an HDF5 file, the index of the 4D "
        "data set in a .dm3/.dm4 (default: the only 4D one)",
    )
    p.add_argument(
        "--layout",
        default=DEFAULT_LAYOUT,
        help="order of the file's four axes, a permutation of x,y,kx,ky (default %(default)s; "
        "py4DSTEM's are Rx,Ry,Qx,Qy, rosettasciio's the scan axes first)",
    )
    p.add_argument(
        "--scan-step",
        type=float,
        metavar="A",
        help="probe step along x (A; default: from the file, and checked against it if given). "
        "The trained probe positions must coincide with probe "
        "positions (within 0.01 A), or the step be at most lambda/(4 alpha) (0.246 A at "
        "300 kV, 20 mrad) so that the patterns can be interpolated",
    )
    p.add_argument(
        "--scan-step-y",
        type=float,
        metavar="A",
        help="probe step along y (A; default: from the file, else as x)",
    )
    s = p.add_mutually_exclusive_group()
    s.add_argument(
        "--sampling-mrad",
        metavar="S[,S]",
        help="detector pixel size in mrad (kx[,ky]; default: from the file, checked if given)",
    )
    s.add_argument(
        "--sampling-inv-angstrom",
        metavar="S[,S]",
        help="detector pixel size in 1/A (kx[,ky]); converted with the wavelength at --energy",
    )
    p.add_argument("--energy", type=float, required=True, metavar="EV", help="beam energy (eV)")
    p.add_argument(
        "--interface-x",
        type=float,
        required=True,
        metavar="A",
        help="the interface's distance from the first probe position along x (A): the TiO2/LaO "
        "interface, midway between the last TiO2 and the first LaO plane",
    )
    p.add_argument(
        "--center",
        metavar="CKX,CKY",
        help="zero-frequency pixel along kx and along ky (default: the file's origin, e.g. "
        "py4DSTEM's qx0_mean/qy0_mean, else pixel n//2 on each axis)",
    )
    p.add_argument(
        "--incident-intensity",
        type=float,
        default=1.0,
        metavar="N",
        help="divide the data by this (default 1: the data hold fractions of the incident "
        "probe per pixel; for counts give the incident-beam counts)",
    )
    t = p.add_mutually_exclusive_group()
    t.add_argument(
        "--thickness", type=float, metavar="A", help="specimen thickness: regress the step depth"
    )
    t.add_argument(
        "--classify-only",
        action="store_true",
        help="no step-depth regression (also the case without --thickness)",
    )
    p.add_argument(
        "--thickness-tolerance",
        type=float,
        default=THICKNESS_TOLERANCE_A,
        metavar="A",
        help="accept a thickness this far from a trained one (default %(default)g)",
    )
    p.add_argument("-o", "--out-dir", required=True, metavar="OUTDIR")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse ``argv``, then :func:`run`."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """``interface4d predict`` on the parsed ``args``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from interface4d.config import ConfigError

    try:
        calib = Given(
            energy_eV=args.energy,
            scan_step_x_A=args.scan_step,
            scan_step_y_A=args.scan_step_y,
            interface_x_A=args.interface_x,
            sampling_mrad=args.sampling_mrad,
            sampling_inv_angstrom=args.sampling_inv_angstrom,
            center_px=args.center,
            incident_intensity=args.incident_intensity,
        )
        result = predict(
            args.data,
            args.models,
            calib,
            args.out_dir,
            layout=args.layout,
            dataset_path=args.dataset_path,
            thickness=None if args.classify_only else args.thickness,
            thickness_tolerance=args.thickness_tolerance,
        )
    except (PredictError, ConfigError, OSError) as exc:
        print(f"interface4d predict: error: {exc}", file=sys.stderr)
        return 2
    c = result["classification"]
    line = f"{c['predicted_class']} (mean p = {c['mean_probability'][c['predicted_class']]:.3f})"
    if result["regression"]:
        r = result["regression"]
        line += (
            f"; step fraction {r['step_fraction']:.3f} = depth {r['step_depth_A']:.1f} A "
            f"(regressor t{r['model_thickness_A']:g})"
        )
    print(f"{line} -> {Path(args.out_dir) / 'prediction.json'}")
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
