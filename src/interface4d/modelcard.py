"""The model card (``interface4d model-card``): what the trained networks were trained on.

:func:`write_model_card` writes a JSON file beside the models that says what the networks were
trained on: beam energy, convergence angle, the network input's detector grid (mrad per binned
pixel, k x k pixels, centre pixel), the probe positions across the interface, the intensity
units and the augmentation's dose range, the classes, the model files (relative to the card, so
a copied ``models/`` folder works) and provenance. :func:`read_model_card` reads and validates
one for :mod:`interface4d.predict`; what is wrong with a card is a :class:`PredictError`.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

CARD_FORMAT = "interface4d-model-card/1"
INTENSITY_UNITS = "fraction of the incident probe per pixel"
INTENSITY_EXAMPLES = 256  # training examples read for the card's intensity figures
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


def _decode(value: Any) -> Any:
    """An HDF5 attribute value as the datasets module decodes it (JSON text -> objects)."""
    from interface4d.datasets import _decode as decode

    return decode(value)


def _dataset_meta(path: Path) -> dict[str, Any]:
    """Attributes (JSON decoded), example shape, cell ids and intensity figures of a dataset."""
    import h5py

    from interface4d.h5io import require_complete
    from interface4d.reducedrefs import check_sources

    with h5py.File(path, "r") as fh:
        require_complete(fh, path)
        check_sources(fh, path)
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
    from interface4d.settings import cell_settings

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
    from interface4d.config import validate_config
    from interface4d.grid import fmt, parse_cell
    from interface4d.h5io import atomic_path
    from interface4d.physics import wavelength
    from interface4d.provenance import file_sha256

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
