"""Prediction on a user's own 4D-STEM data with the trained networks (``interface4d predict``).

Two pieces:

* the *model card* (:func:`write_model_card`, :func:`read_model_card`): a JSON file beside the
  models that says what the networks were trained on: beam energy, convergence angle, the
  network input's detector grid (mrad per binned pixel, k x k pixels, centre pixel), the probe
  positions across the interface, the intensity units and the augmentation's dose range, the
  classes, the model files (relative to the card, so a copied ``models/`` folder works) and
  provenance;
* the prediction (:func:`predict`): a user's 4D array is reordered to (x, y, kx, ky),
  calibrated, checked against the card (mismatches are :class:`PredictError`\\ s naming both
  values), resampled onto the network's input grid, and fed to the classifier (one example per
  scan row) and, given a thickness, to the step-depth regressor of the nearest trained
  thickness (the mean over the rows). Outputs: ``prediction.json``, ``saliency.png`` /
  ``.svg`` and ``saliency.npz``.

Geometry and units
------------------
* Axes: x = scan across the interface (the growth direction, from the SrTiO3 substrate towards
  the LaAlO3 film), y = scan along the interface, kx / ky = detector axes with kx parallel to x.
* Detector pixel ``j`` on an axis of ``n`` pixels of ``s`` mrad with the zero frequency at
  pixel ``c`` (default ``n // 2``, abTEM's convention) covers ``[(j - c - 1/2) s,
  (j - c + 1/2) s]`` mrad. The network's pixel ``i`` covers ``[(i - c' - 1/2) s', (i - c' +
  1/2) s']`` with the card's ``center_px`` ``c'`` and ``angular_sampling_mrad`` ``s'``.
* Intensities are fractions of the incident probe per pixel (divide counts by the incident-beam
  counts, ``incident_intensity``). Resampling treats each pixel as a uniform density over its
  area and integrates that density over each network pixel (exact area overlap, separable:
  ``T = Wx P Wy^T`` with ``W[i, j]`` = the fraction of source pixel j inside target pixel i).
  The total intensity is conserved; a uniform density stays uniform at ``density * s'^2`` per
  pixel; a pattern already on the network's grid is unchanged; and a raw simulation on its own
  grid gives exactly the crop-and-bin of :mod:`interface4d.reduce`.
* Probe positions along x: the card's ``scan_x_relative_A`` (positions are point samples, not
  areas). ``interface_x_A`` is the interface's distance from the first probe position along
  the file's x axis. A trained position within 0.01 A of a probe position takes that pattern;
  otherwise the two neighbours are interpolated linearly, which needs a step of at most
  ``lambda / (4 alpha)`` (0.246 A at 300 kV, 20 mrad): the patterns vary with the probe
  position up to the spatial frequency ``2 alpha / lambda``. Measured while writing
  tests/test_predict.py: interpolated from a 0.5 A scan, patterns were off by up to 32 %
  (relative L2 per pattern) and a held-out intermixing cell came out a confident "step"; from
  0.25 A, at most 16 % and classified correctly.

TensorFlow, Keras and matplotlib are imported only inside the functions that use them.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

CARD_FORMAT = "interface4d-model-card/1"
PREDICTION_FORMAT = "interface4d-prediction/1"
AXES = ("x", "y", "kx", "ky")
DEFAULT_LAYOUT = "x,y,kx,ky"
INTENSITY_UNITS = "fraction of the incident probe per pixel"
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".emd")
ENERGY_TOLERANCE = 0.005  # relative
SAMPLING_TOLERANCE = 0.01  # relative: detector pixels and scan steps this much coarser pass
EXTENT_TOLERANCE = 0.01  # of a network pixel: detector edge
POSITION_TOLERANCE_A = 1e-6
POSITION_SNAP_A = 0.01  # a probe this close to a trained position is used as it is
THICKNESS_TOLERANCE_A = 25.0
INTENSITY_RANGE = (0.5, 2.0)  # mean pattern total / the training mean
INTENSITY_EXAMPLES = 256  # training examples read for the card's intensity figures
BATCH = 64
CARD_KEYS = (
    "format",
    "campaign",
    "energy_eV",
    "semiangle_cutoff_mrad",
    "lattice_constant_A",
    "input_shape",
    "pattern_px",
    "angular_sampling_mrad",
    "center_px",
    "crop_mrad",
    "bin",
    "scan_x_relative_A",
    "scan_x_step_A",
    "scan_y_step_A",
    "scan_y_positions",
    "dose_range",
    "intensity_units",
    "pattern_intensity",
    "classes",
    "classifier_model",
    "regressors",
    "provenance",
)


class PredictError(ValueError):
    """The data cannot be fed to the trained networks. The message names the mismatch."""


# --------------------------------------------------------------------------- the model card


def _decode(value: Any) -> Any:
    """An HDF5 attribute value as the datasets module decodes it (JSON text -> objects)."""
    from interface4d.datasets import _decode as decode

    return decode(value)


def _dataset_meta(path: Path) -> dict[str, Any]:
    """Attributes (JSON decoded), example shape, cell ids and intensity figures of a dataset."""
    import h5py

    from interface4d.h5io import require_complete

    with h5py.File(path, "r") as fh:
        require_complete(fh, path)
        attrs = {k: _decode(v) for k, v in fh.attrs.items() if k != "complete"}
        shape = tuple(int(n) for n in fh["x"].shape)
        cells = sorted({_decode(c) for c in fh["cell"][()]})
        n = shape[0]
        idx = np.unique(np.linspace(0, n - 1, min(n, INTENSITY_EXAMPLES)).round().astype(int))
        totals = fh["x"][idx].astype(np.float64).sum(axis=(-2, -1)).ravel() if n else np.ones(1)
    return {
        "attrs": attrs,
        "example_shape": shape[1:],
        "n_examples": n,
        "cells": cells,
        "totals": totals,
    }


def _input_block(meta: Mapping[str, Any], path: Path) -> dict[str, Any]:
    a = meta["attrs"]
    red = a.get("reduction") or {}
    missing = [
        k for k in ("angular_sampling_mrad", "center_px", "scan_x_relative_A") if k not in a
    ] + [k for k in ("crop_mrad", "bin") if k not in red]
    if missing:
        raise ValueError(f"{path}: the dataset lacks the calibration attributes {missing}")
    if len(meta["example_shape"]) != 3:
        raise ValueError(f"{path}: examples of shape {meta['example_shape']}, not (nx, k, k)")
    nx, k0, k1 = meta["example_shape"]
    return {
        "input_shape": [nx, k0, k1, 1],
        "pattern_px": [k0, k1],
        "angular_sampling_mrad": [float(s) for s in a["angular_sampling_mrad"]],
        "center_px": [float(c) for c in a["center_px"]],
        "crop_mrad": float(red["crop_mrad"]),
        "bin": int(red["bin"]),
        "scan_x_relative_A": [float(x) for x in a["scan_x_relative_A"]],
    }


def _same_input(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Keys of two input blocks that differ."""
    diff = []
    for key in a:
        va, vb = a[key], b[key]
        if isinstance(va, list):
            if len(va) != len(vb) or not np.allclose(va, vb, rtol=1e-6, atol=1e-6):
                diff.append(key)
        elif not math.isclose(va, vb, rel_tol=1e-6, abs_tol=1e-9):
            diff.append(key)
    return diff


def _beam_settings(config: Mapping[str, Any], cells: Sequence[str]) -> dict[str, Any]:
    """Energy, convergence angle, aberrations, lattice constant and y scan shared by ``cells``
    (per-cell overrides applied); an error if the cells differ."""
    from interface4d.grid import cell_settings

    seen: dict[str, dict[str, Any]] = {}
    for cell in cells:
        s = cell_settings(config, cell, code="")
        sim, st = s["simulation"], s["structure"]
        beam = {
            "energy_eV": float(sim["energy"]),
            "semiangle_cutoff_mrad": float(sim["semiangle_cutoff"]),
            "aberrations": dict(sim.get("aberrations") or {}),
            "lattice_constant_A": float(st["lattice_constant"]),
            "scan_y_positions": int(sim["scan"]["gpts"][1]),
        }
        seen.setdefault(json.dumps(beam, sort_keys=True), {"beam": beam, "cell": cell})
    if not seen:
        raise ValueError("write_model_card: the datasets hold no cells")
    if len(seen) > 1:
        lines = [f"{v['cell']}: {v['beam']}" for v in seen.values()]
        raise ValueError(
            "the datasets' cells were simulated with different beam, lattice or scan settings; "
            "one model card needs one:\n  " + "\n  ".join(lines)
        )
    return next(iter(seen.values()))["beam"]


def write_model_card(
    out_json: str | Path,
    *,
    classify_h5: str | Path,
    classifier_model: str | Path,
    regress: Mapping[Any, tuple[str | Path, str | Path]],
    config: Mapping[str, Any],
) -> Path:
    """Write the model card (atomically) and return its path.

    ``regress`` maps a thickness (Angstrom; number or text) to ``(regress_t<T>.h5, model)``.
    ``config`` is the campaign config (validated here, defaults filled). The detector grid, the
    probe positions, the crop and the bin come from the datasets' attributes; the beam, the
    lattice constant and the y scan from the config as each dataset cell sees it; the dose
    range from ``training.augment``. Model and dataset paths are stored relative to the card's
    folder, with their sha256.
    """
    from interface4d import versions
    from interface4d.config import validate_config, wavelength
    from interface4d.grid import fmt, parse_cell
    from interface4d.h5io import atomic_path
    from interface4d.reduce import file_sha256

    out_json = Path(out_json)
    folder = out_json.resolve().parent
    cfg = validate_config(copy.deepcopy(dict(config)))
    classify_h5, classifier_model = Path(classify_h5), Path(classifier_model)

    def rel(p: Path) -> str:
        return Path(os.path.relpath(Path(p).resolve(), folder)).as_posix()

    cls = _dataset_meta(classify_h5)
    if cls["attrs"].get("task") != "classify":
        raise ValueError(f"{classify_h5} is not a classification dataset")
    inputs = _input_block(cls, classify_h5)
    cells = list(cls["cells"])
    files: dict[str, dict[str, str]] = {
        rel(classify_h5): {"role": "classifier dataset", "sha256": file_sha256(classify_h5)},
        rel(classifier_model): {"role": "classifier", "sha256": file_sha256(classifier_model)},
    }
    regressors: dict[str, str] = {}
    for t, (ds, model) in sorted(regress.items(), key=lambda kv: float(kv[0])):
        ds, model = Path(ds), Path(model)
        meta = _dataset_meta(ds)
        if meta["attrs"].get("task") != "regress":
            raise ValueError(f"{ds} is not a regression dataset")
        if not math.isclose(float(meta["attrs"]["thickness"]), float(t), abs_tol=1e-6):
            raise ValueError(
                f"{ds} holds thickness {meta['attrs']['thickness']} A, not the {t} A given"
            )
        differ = _same_input(inputs, _input_block(meta, ds))
        if differ:
            raise ValueError(
                f"{ds}: the network input differs from {classify_h5} in {differ}; "
                "the classifier and the regressors must share one reduction"
            )
        cells += meta["cells"]
        regressors[fmt(float(t))] = rel(model)
        files[rel(ds)] = {"role": f"regressor dataset t{fmt(float(t))}", "sha256": file_sha256(ds)}
        files[rel(model)] = {"role": f"regressor t{fmt(float(t))}", "sha256": file_sha256(model)}
    beam = _beam_settings(cfg, sorted(set(cells)))
    classes = sorted(cls["attrs"]["classes"], key=lambda name: cls["attrs"]["classes"][name])
    x_rel = inputs["scan_x_relative_A"]
    totals = cls["totals"]
    aug = cfg["training"]["augment"]
    a = beam["lattice_constant_A"]
    card = {
        "format": CARD_FORMAT,
        "campaign": cfg["campaign"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "energy_eV": beam["energy_eV"],
        "wavelength_A": wavelength(beam["energy_eV"]),
        "semiangle_cutoff_mrad": beam["semiangle_cutoff_mrad"],
        "aberrations": beam["aberrations"],
        "lattice_constant_A": a,
        **inputs,
        "scan_x_step_A": float(np.diff(x_rel).min()) if len(x_rel) > 1 else 0.0,
        "scan_y_step_A": a / beam["scan_y_positions"],
        "scan_y_positions": beam["scan_y_positions"],
        "scan_y_extent_A": a,
        "axes": {
            "x": "scan across the interface (growth direction, SrTiO3 -> LaAlO3)",
            "y": "scan along the interface",
            "kx": "detector axis parallel to x",
            "ky": "detector axis parallel to y",
        },
        "dose_range": [float(d) for d in aug["dose"]],
        "dose_units": "electrons per pattern (Poisson augmentation, log-uniform)",
        "rotation_deg": float(aug["rotation_deg"]),
        "intensity_units": INTENSITY_UNITS,
        "pattern_intensity": {
            "mean": float(totals.mean()),
            "min": float(totals.min()),
            "max": float(totals.max()),
            "examples": int(totals.size),
            "what": "total intensity of one network-input pattern (k x k after crop and bin)",
        },
        "classes": classes,
        "class_meaning": {
            "step": "a buried step of the interface",
            "diffusion": "Ti/Al intermixing in the first AlO2 layer",
        },
        "classifier_model": rel(classifier_model),
        "classifier_thicknesses_A": sorted({parse_cell(c).thickness for c in cls["cells"]}),
        "regressors": regressors,
        "regressor_target": "step fraction = step depth / thickness",
        "provenance": {
            "files": files,
            "classify_dataset_attrs": {
                k: cls["attrs"][k]
                for k in ("n_examples", "n_train", "n_val", "split", "sources_sha256")
                if k in cls["attrs"]
            },
            "versions": versions("numpy", "h5py"),
        },
    }
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(card, indent=2) + "\n")
    return out_json


@dataclass
class ModelCard:
    """A model card read back (:func:`read_model_card`); paths resolved against its folder."""

    path: Path
    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def sampling(self) -> np.ndarray:
        return np.asarray(self.data["angular_sampling_mrad"], dtype=np.float64)

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.data["center_px"], dtype=np.float64)

    @property
    def pattern_px(self) -> tuple[int, int]:
        k0, k1 = self.data["pattern_px"]
        return int(k0), int(k1)

    @property
    def scan_x(self) -> np.ndarray:
        return np.asarray(self.data["scan_x_relative_A"], dtype=np.float64)

    def resolve(self, rel: str) -> Path:
        return (self.path.parent / rel).resolve()

    @property
    def classifier_path(self) -> Path:
        return self.resolve(self.data["classifier_model"])

    @property
    def regressors(self) -> dict[float, Path]:
        return {float(t): self.resolve(p) for t, p in self.data["regressors"].items()}

    def sha256_of(self, rel: str) -> str | None:
        entry = self.data.get("provenance", {}).get("files", {}).get(rel)
        return entry.get("sha256") if entry else None


def read_model_card(path: str | Path) -> ModelCard:
    """Read and validate a model card; raises :class:`PredictError` naming what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PredictError(f"model card {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise PredictError(f"model card {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise PredictError(
            f"{path} is not an interface4d model card (format {found!r}, expected {CARD_FORMAT!r})"
        )
    missing = [k for k in CARD_KEYS if k not in data]
    if missing:
        raise PredictError(f"model card {path} lacks the keys {missing}")
    k = data["pattern_px"]
    if (
        len(data["angular_sampling_mrad"]) != 2
        or len(data["center_px"]) != 2
        or len(k) != 2
        or list(data["input_shape"]) != [len(data["scan_x_relative_A"]), k[0], k[1], 1]
    ):
        raise PredictError(
            f"model card {path}: inconsistent input geometry (input_shape "
            f"{data['input_shape']}, pattern_px {k}, {len(data['scan_x_relative_A'])} positions)"
        )
    return ModelCard(path=path.resolve(), data=data)


# --------------------------------------------------------------------------- layout and units


def parse_layout(text: str) -> tuple[str, str, str, str]:
    """``"y,x,ky,kx"`` -> ('y', 'x', 'ky', 'kx'): the file's axis order, a permutation of
    x, y, kx, ky."""
    parts = tuple(p.strip().lower() for p in str(text).split(","))
    if len(parts) != 4 or sorted(parts) != sorted(AXES):
        raise PredictError(
            f"layout {text!r}: must name each of x, y, kx, ky once, comma separated, in the "
            "order of the file's axes (e.g. x,y,kx,ky or y,x,ky,kx)"
        )
    return parts  # type: ignore[return-value]


def to_canonical(array, layout: Sequence[str]):
    """Transpose an array in ``layout`` order to (x, y, kx, ky)."""
    return np.transpose(array, [list(layout).index(a) for a in AXES])


def from_canonical(array, layout: Sequence[str]):
    """Transpose an (x, y, kx, ky) array to ``layout`` order (the inverse of to_canonical)."""
    return np.transpose(array, [AXES.index(a) for a in layout])


def mrad_from_inv_angstrom(sampling_inv_a: float, energy_ev: float) -> float:
    """Angular pixel size (mrad) of a reciprocal pixel size (1/Angstrom): ``s * lambda``, the
    relativistic wavelength at ``energy_ev`` (abTEM's convention)."""
    from interface4d.config import wavelength

    return float(sampling_inv_a) * wavelength(float(energy_ev)) * 1e3


def inv_angstrom_from_mrad(sampling_mrad: float, energy_ev: float) -> float:
    from interface4d.config import wavelength

    return float(sampling_mrad) * 1e-3 / wavelength(float(energy_ev))


@dataclass
class Calibration:
    """How to read the user's data. Detector values are ordered (kx, ky)."""

    energy_eV: float
    sampling_mrad: tuple[float, float]
    scan_step_x_A: float
    scan_step_y_A: float
    interface_x_A: float
    center_px: tuple[float, float] | None = None  # None: pixel n // 2 on each axis
    incident_intensity: float = 1.0
    sampling_given: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = {
            "energy": self.energy_eV,
            "scan step along x": self.scan_step_x_A,
            "scan step along y": self.scan_step_y_A,
            "incident intensity": self.incident_intensity,
        }
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise PredictError(f"{name} = {value!r}: must be a positive number")
        self.sampling_mrad = _pair(self.sampling_mrad, "detector sampling")
        if not all(s > 0 for s in self.sampling_mrad):
            raise PredictError(f"detector sampling {self.sampling_mrad} mrad/px must be positive")
        if self.center_px is not None:
            self.center_px = _pair(self.center_px, "detector centre")


def _pair(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if np.ndim(value) == 0:
        value = [value]
    if len(value) == 1:
        value = [value[0], value[0]]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise PredictError(f"{what} {value!r}: need one number or two (kx,ky)") from None
    if len(out) != 2 or not all(np.isfinite(out)):
        raise PredictError(f"{what} {value!r}: need one number or two (kx,ky)")
    return out  # type: ignore[return-value]


def calibration(
    *,
    energy_eV: float,
    scan_step_x_A: float,
    interface_x_A: float,
    sampling_mrad: Any = None,
    sampling_inv_angstrom: Any = None,
    scan_step_y_A: float | None = None,
    center_px: Any = None,
    incident_intensity: float = 1.0,
) -> Calibration:
    """A :class:`Calibration` from the detector sampling in mrad/px or in 1/Angstrom per px
    (exactly one; converted with the relativistic wavelength at ``energy_eV``)."""
    if (sampling_mrad is None) == (sampling_inv_angstrom is None):
        raise PredictError("give the detector sampling once: in mrad/px or in 1/A per pixel")
    if sampling_mrad is not None:
        mrad = _pair(sampling_mrad, "detector sampling")
        given = {"mrad_per_px": list(mrad)}
    else:
        inv = _pair(sampling_inv_angstrom, "detector sampling")
        if not (np.isfinite(energy_eV) and energy_eV > 0):
            raise PredictError(f"energy = {energy_eV!r}: must be a positive number")
        mrad = tuple(mrad_from_inv_angstrom(s, energy_eV) for s in inv)
        given = {"inv_angstrom_per_px": list(inv)}
    return Calibration(
        energy_eV=float(energy_eV),
        sampling_mrad=mrad,  # type: ignore[arg-type]
        scan_step_x_A=float(scan_step_x_A),
        scan_step_y_A=float(scan_step_y_A if scan_step_y_A is not None else scan_step_x_A),
        interface_x_A=float(interface_x_A),
        center_px=None if center_px is None else _pair(center_px, "detector centre"),
        incident_intensity=float(incident_intensity),
        sampling_given=given,
    )


# --------------------------------------------------------------------------- resampling


def overlap_matrix(
    n_src: int, s_src: float, c_src: float, n_dst: int, s_dst: float, c_dst: float
) -> np.ndarray:
    """``W[i, j]``: the fraction of source pixel ``j`` that lies inside target pixel ``i``.

    Pixel ``j`` of ``s`` mrad with the zero frequency at pixel ``c`` covers
    ``[(j - c - 1/2) s, (j - c + 1/2) s]``. Shape ``(n_dst, n_src)``.
    """
    j = np.arange(n_src, dtype=np.float64)
    i = np.arange(n_dst, dtype=np.float64)
    src_lo, src_hi = (j - c_src - 0.5) * s_src, (j - c_src + 0.5) * s_src
    dst_lo, dst_hi = (i - c_dst - 0.5) * s_dst, (i - c_dst + 0.5) * s_dst
    lo = np.maximum(dst_lo[:, None], src_lo[None, :])
    hi = np.minimum(dst_hi[:, None], src_hi[None, :])
    return np.clip(hi - lo, 0.0, None) / s_src


def resample_patterns(
    patterns: np.ndarray,
    sampling_src: Sequence[float],
    center_src: Sequence[float],
    sampling_dst: Sequence[float],
    center_dst: Sequence[float],
    shape_dst: Sequence[int],
) -> np.ndarray:
    """Resample ``patterns`` (..., n0, n1) of per-pixel intensities onto another detector grid
    (..., k0, k1) by exact area overlap (module doc). float64 in, float64 out."""
    p = np.asarray(patterns, dtype=np.float64)
    n0, n1 = p.shape[-2:]
    w0, w1 = (
        overlap_matrix(n, sampling_src[a], center_src[a], shape_dst[a], sampling_dst[a], c)
        for a, (n, c) in enumerate(zip((n0, n1), center_dst, strict=True))
    )
    lead = p.shape[:-2]
    flat = p.reshape(-1, n0, n1)
    out = np.empty((flat.shape[0], int(shape_dst[0]), int(shape_dst[1])), dtype=np.float64)
    for i in range(0, flat.shape[0], 256):
        out[i : i + 256] = np.einsum("ij,bjk,lk->bil", w0, flat[i : i + 256], w1, optimize=True)
    return out.reshape(*lead, *out.shape[-2:])


def interpolate_scan(
    block: np.ndarray,
    positions: np.ndarray,
    targets: np.ndarray,
    snap: float = POSITION_TOLERANCE_A,
) -> np.ndarray:
    """Linear interpolation along axis 0 of ``block`` from increasing, evenly spaced
    ``positions`` to ``targets`` (which must lie inside them, to 1e-6 A). A target within
    ``snap`` (A) of a position takes that position's value as it is."""
    positions = np.asarray(positions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if positions.size == 1:
        if not np.allclose(targets, positions[0], atol=POSITION_TOLERANCE_A):
            raise PredictError("one probe position cannot be interpolated to several")
        return np.repeat(np.asarray(block)[:1], targets.size, axis=0)
    step = positions[1] - positions[0]
    u = (targets - positions[0]) / step
    tol = max(snap, POSITION_TOLERANCE_A) / step
    if u.min() < -tol or u.max() > positions.size - 1 + tol:
        raise PredictError(
            f"positions {np.round(targets, 4).tolist()} lie outside "
            f"[{positions[0]:.4f}, {positions[-1]:.4f}] A"
        )
    u = np.clip(u, 0, positions.size - 1)
    j = np.minimum(np.floor(u + 1e-9).astype(int), positions.size - 2)
    w = u - j
    w[w * step <= max(snap, 1e-9 * step)] = 0.0
    w[(1 - w) * step <= max(snap, 1e-9 * step)] = 1.0
    shape = (-1,) + (1,) * (np.ndim(block) - 1)
    b = np.asarray(block, dtype=np.float64)
    return (1 - w).reshape(shape) * b[j] + w.reshape(shape) * b[j + 1]


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
    from interface4d.config import wavelength

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
    if len(file_shape) != 4:
        raise PredictError(
            f"the data has {len(file_shape)} axes, shape {tuple(file_shape)}; need a 4D array "
            "(scan x, scan y, kx, ky in some order: see --layout)"
        )
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


# --------------------------------------------------------------------------- data


def find_hdf5_dataset(path: str | Path, dataset_path: str | None = None) -> str:
    """The 4D dataset of an HDF5 file (``dataset_path`` if given, else the single 4D one)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as fh:
        if dataset_path:
            obj = fh.get(dataset_path)
            if not isinstance(obj, h5py.Dataset):
                raise PredictError(f"{path}: no dataset at {dataset_path!r}")
            return obj.name
        found: list[tuple[str, tuple[int, ...]]] = []
        fh.visititems(
            lambda name, obj: (
                found.append((name, obj.shape)) if isinstance(obj, h5py.Dataset) else None
            )
        )
    four = [name for name, shape in found if len(shape) == 4]
    if len(four) == 1:
        return "/" + four[0]
    listing = ", ".join(f"/{n} {tuple(s)}" for n, s in found) or "none"
    if not four:
        raise PredictError(f"{path} holds no 4D dataset (datasets: {listing})")
    raise PredictError(
        f"{path} holds several 4D datasets: choose one with --dataset-path "
        f"({', '.join('/' + n for n in four)})"
    )


class DataFile:
    """A user's 4D array, opened lazily: ``.npy`` (memory-mapped) or HDF5 (h5py dataset)."""

    def __init__(self, path: str | Path, dataset_path: str | None = None) -> None:
        self.path = Path(path)
        self._fh = None
        suffix = self.path.suffix.lower()
        if not self.path.exists():
            raise PredictError(f"data file {self.path} does not exist")
        if suffix == ".npy":
            self.array = np.load(self.path, mmap_mode="r")
            self.dataset_path = None
        elif suffix in HDF5_SUFFIXES:
            import h5py

            self.dataset_path = find_hdf5_dataset(self.path, dataset_path)
            self._fh = h5py.File(self.path, "r")
            self.array = self._fh[self.dataset_path]
        else:
            raise PredictError(
                f"{self.path}: unknown file type {suffix!r} (need .npy or HDF5: "
                f"{', '.join(HDF5_SUFFIXES)})"
            )
        self.shape = tuple(int(n) for n in self.array.shape)
        self.dtype = str(self.array.dtype)

    def read_x(self, layout: Sequence[str], first: int, last: int) -> np.ndarray:
        """Probe columns ``first..last`` along x (inclusive), all of y, as (x, y, kx, ky)."""
        index = [slice(None)] * 4
        index[list(layout).index("x")] = slice(first, last + 1)
        return to_canonical(np.asarray(self.array[tuple(index)]), layout)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class NetworkInput:
    lines: np.ndarray  # (ny, nx, k, k) float32: one classifier example per scan row
    average: np.ndarray  # (nx, k, k) float32: the mean over the rows (regression input)
    mean_pattern_total: float


def prepare_input(
    block: np.ndarray, first: int, card: ModelCard, calib: Calibration, center: Sequence[float]
) -> NetworkInput:
    """Canonical probe columns ``first..`` (x, y, kx, ky) -> the networks' input."""
    x = np.asarray(block, dtype=np.float64) / calib.incident_intensity
    if not np.isfinite(x).all():
        raise PredictError("the data holds NaN or infinite values")
    patterns = resample_patterns(
        x, calib.sampling_mrad, center, card.sampling, card.center, card.pattern_px
    )  # (m, ny, k, k)
    positions = (first + np.arange(x.shape[0])) * calib.scan_step_x_A - calib.interface_x_A
    on_grid = interpolate_scan(patterns, positions, card.scan_x, POSITION_SNAP_A)
    lines = np.ascontiguousarray(on_grid.transpose(1, 0, 2, 3))
    return NetworkInput(
        lines=lines.astype(np.float32),
        average=lines.mean(axis=0).astype(np.float32),
        mean_pattern_total=float(lines.sum(axis=(-2, -1)).mean()),
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
    from interface4d.reduce import file_sha256

    if not path.exists():
        raise PredictError(f"model {path} (listed in {card.path}) does not exist")
    want = card.sha256_of(rel)
    if want is not None and file_sha256(path) != want:
        raise PredictError(
            f"model {path} differs from the one the model card {card.path} describes (sha256)"
        )


def _load_model(path: Path):
    from interface4d.model import load

    return load(path)


def output_and_gradient(model, x: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Network output for a batch ``x`` (B, nx, k, k) and the gradient of output ``index`` of
    each example with respect to that example's input (B, nx, k, k), without dropout."""
    import tensorflow as tf

    outs, grads = [], []
    for i in range(0, x.shape[0], BATCH):
        xt = tf.convert_to_tensor(x[i : i + BATCH, ..., None], dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = model(xt, training=False)
            target = tf.reduce_sum(out[:, index])
        grads.append(tape.gradient(target, xt).numpy()[..., 0])
        outs.append(np.asarray(out))
    return np.concatenate(outs), np.concatenate(grads)


def _saliency(grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|grad| (B, nx, k, k) integrated over the examples and the scan (k x k map) and over the
    examples and the detector (scan profile)."""
    a = np.abs(grad.astype(np.float64))
    return a.sum(axis=(0, 1)), a.sum(axis=(0, 2, 3))


def plot_saliency(
    out_png: Path, card: ModelCard, panels: Sequence[tuple[str, np.ndarray, np.ndarray]]
) -> None:
    """One row per network: the k x k saliency map (mrad axes, the bright-field disc dashed)
    and its profile along the scan; written as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, c, k = card.sampling, card.center, card.pattern_px
    extent = [
        (-c[0] - 0.5) * s[0],
        (k[0] - 1 - c[0] + 0.5) * s[0],
        (-c[1] - 0.5) * s[1],
        (k[1] - 1 - c[1] + 0.5) * s[1],
    ]
    x = card.scan_x
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for row, (title, smap, profile) in zip(axes, panels, strict=True):
        im = row[0].imshow(smap.T, origin="lower", extent=extent, cmap="magma")
        theta = np.linspace(0, 2 * np.pi, 200)
        r = float(card["semiangle_cutoff_mrad"])
        row[0].plot(r * np.cos(theta), r * np.sin(theta), "c--", lw=0.8)
        row[0].set_xlabel("k_x (mrad, along the growth direction)")
        row[0].set_ylabel("k_y (mrad)")
        row[0].set_title(f"{title}\n|gradient| summed over the scan")
        fig.colorbar(im, ax=row[0], shrink=0.8)
        row[1].plot(x, profile, "o-")
        row[1].axvline(0.0, color="k", ls=":", lw=0.8)
        row[1].set_xlabel("probe position from the interface (A)")
        row[1].set_ylabel("|gradient| summed over the detector")
        row[1].set_title(f"{title}\n|gradient| along the scan")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    fig.savefig(out_png.with_suffix(".svg"))
    plt.close(fig)


# --------------------------------------------------------------------------- prediction


def predict(
    data_path: str | Path,
    card_path: str | Path,
    calib: Calibration,
    out_dir: str | Path,
    *,
    layout: str | Sequence[str] = DEFAULT_LAYOUT,
    dataset_path: str | None = None,
    thickness: float | None = None,
    thickness_tolerance: float = THICKNESS_TOLERANCE_A,
) -> dict[str, Any]:
    """Classify (and, given ``thickness``, regress the step depth of) a user's 4D data set.

    All checks run before TensorFlow is imported. Writes ``prediction.json``,
    ``saliency.png``/``.svg`` and ``saliency.npz`` to ``out_dir`` and returns the prediction.
    """
    from interface4d import versions
    from interface4d.config import wavelength
    from interface4d.h5io import atomic_path
    from interface4d.reduce import file_sha256

    card = read_model_card(card_path)
    axes = parse_layout(layout if isinstance(layout, str) else ",".join(layout))
    with DataFile(data_path, dataset_path) as data:
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
        }
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
    classifier = _load_model(card.classifier_path)
    probs, grad = output_and_gradient(classifier, net.lines, 0)
    mean = probs.astype(np.float64).mean(axis=0)
    predicted = classes[int(np.argmax(mean))]
    if len(classes) != 2 and classes.index(predicted) != 0:
        # with two classes |d p_predicted / dx| = |d p_0 / dx|: one pass serves both
        _, grad = output_and_gradient(classifier, net.lines, classes.index(predicted))
    cmap, cprofile = _saliency(grad)
    panels = [(f"classifier (p[{predicted}])", cmap, cprofile)]
    saliency = {"classifier_map": cmap, "classifier_profile": cprofile}

    regression = None
    if p.regressor_thickness is not None:
        regressor = _load_model(card.regressors[float(key)])
        value, rgrad = output_and_gradient(regressor, net.average[None], 0)
        fraction = float(value[0, 0])
        rmap, rprofile = _saliency(rgrad)
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
        "notes": p.notes + ([] if regression else ["no thickness given: classification only"]),
        "warnings": p.warnings,
        "model_card": {
            "path": str(card.path),
            "sha256": file_sha256(card.path),
            "campaign": card["campaign"],
        },
        "versions": versions("numpy", "h5py", "tensorflow", "keras"),
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
        help="4D data: .npy, or HDF5 (.h5/.hdf5/.emd; emdfile/py4DSTEM files are HDF5 too)",
    )
    p.add_argument("--models", required=True, metavar="CARD", help="model_card.json")
    p.add_argument(
        "--dataset-path",
        metavar="PATH",
        help="the 4D dataset inside an HDF5 file (default: its only 4D dataset)",
    )
    p.add_argument(
        "--layout",
        default=DEFAULT_LAYOUT,
        help="order of the file's four axes, a permutation of x,y,kx,ky (default %(default)s)",
    )
    p.add_argument(
        "--scan-step",
        type=float,
        required=True,
        metavar="A",
        help="probe step along x (A). The trained probe positions must coincide with probe "
        "positions (within 0.01 A), or the step be at most lambda/(4 alpha) (0.246 A at "
        "300 kV, 20 mrad) so that the patterns can be interpolated",
    )
    p.add_argument(
        "--scan-step-y", type=float, metavar="A", help="probe step along y (A; default: as x)"
    )
    s = p.add_mutually_exclusive_group(required=True)
    s.add_argument("--sampling-mrad", metavar="S[,S]", help="detector pixel size in mrad (kx[,ky])")
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
        help="zero-frequency pixel along kx and along ky (default: pixel n//2 on each axis)",
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
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from interface4d.config import ConfigError

    try:
        calib = calibration(
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
