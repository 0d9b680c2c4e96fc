"""The evaluation's files and the report's headline: tables, JSON and plain sentences.

* :func:`write_json`, :func:`write_csv` -- atomic writes of the metrics files (non-finite
  numbers become JSON ``null``), each JSON with its :func:`provenance`;
* :func:`headline_rows` -- the rows of ``headline.csv`` (quantity, value, 95 % interval, n,
  baseline, detail);
* :func:`headline_numbers` -- ``headline.json``'s numbers, read by :mod:`interface4d.headline`
  for the report's top page, and :func:`verdict`, where each network stands against its
  linear baseline.

No TensorFlow, no figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interface4d import versions
from interface4d.celltables import NEAR_EXIT
from interface4d.h5io import atomic_path
from interface4d.headline import num
from interface4d.provenance import file_sha256

CLASSIFICATION_HEADLINE = (
    "accuracy",
    "accuracy_ci95",
    "accuracy_n",
    "balanced_accuracy",
    "cell_accuracy",
    "cell_accuracy_ci95",
    "cell_accuracy_n",
    "cell_balanced_accuracy",
    "cell_accuracy_detectable",
    "cell_accuracy_detectable_ci95",
    "cell_accuracy_detectable_n",
    "near_exit_cells",
    "auc",
    "ece",
    "n_val_examples",
    "n_val_cells",
    "confusion_matrix",
)
BASELINE_HEADLINE = (
    "accuracy",
    "accuracy_ci95",
    "balanced_accuracy",
    "cell_accuracy",
    "cell_accuracy_ci95",
    "cell_accuracy_detectable",
    "cell_accuracy_detectable_ci95",
    "auc",
    "model",
)


def fmt(x: float) -> str:
    """A number as the file names and tables write it (a thickness: ``200``, ``150.5``)."""
    return f"{float(x):g}"


# --------------------------------------------------------------------------- files


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=True) + "\n")


def write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (arrays as lists, non-finite floats as None)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def provenance(inputs: Mapping[str, str | Path], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The input files (path, sha256), the evaluation block, the time and the versions."""
    return {
        "inputs": {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in inputs.items()},
        "evaluation": dict(cfg),
        "created": datetime.now(UTC).isoformat(),
        "versions": versions("tensorflow", "keras", "numpy", "pandas", "matplotlib"),
    }


def sources(classifier_json: str | Path, regression_json: str | Path | None) -> dict[str, Any]:
    """The metrics files the headline was read from (path, sha256)."""
    return {
        "classifier": {"path": str(classifier_json), "sha256": file_sha256(classifier_json)},
        **(
            {"regression": {"path": str(regression_json), "sha256": file_sha256(regression_json)}}
            if regression_json
            else {}
        ),
    }


# --------------------------------------------------------------------------- headline.csv


def headline_rows(cls: Mapping[str, Any], reg: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The rows of ``headline.csv`` from ``classifier.json`` and ``regression.json``."""
    rows = _classification_rows(cls)
    if reg is not None:
        rows += _regression_rows(reg)
    return rows


def _classification_rows(cls: Mapping[str, Any]) -> list[dict[str, Any]]:
    base = cls.get("baseline") or {}
    rows = []
    for key, what in (
        ("accuracy", "classification accuracy per line (held-out cells)"),
        ("cell_accuracy", "classification accuracy per held-out cell (mean over its lines)"),
        (
            "cell_accuracy_detectable",
            f"classification accuracy per held-out cell, steps at fraction <= {NEAR_EXIT}",
        ),
    ):
        rows.append(
            {
                "quantity": what,
                "value": cls.get(key),
                "ci95_low": (cls.get(f"{key}_ci95") or [None, None])[0],
                "ci95_high": (cls.get(f"{key}_ci95") or [None, None])[1],
                "n": cls.get(f"{key}_n"),
                "unit": "lines" if key == "accuracy" else "cells",
                "baseline": base.get(key),
                "detail": f"split by structure; balanced accuracy {num(cls.get('balanced_accuracy'))}"
                f" (baseline {num(base.get('balanced_accuracy'))}); AUC {num(cls['auc'])}",
            }
        )
    return rows


def _regression_rows(reg: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in reg["per_thickness"]:
        ci = r.get("mae_ci95") or [None, None]
        rows.append(
            {
                "quantity": f"step-fraction MAE, {fmt(r['thickness'])} Å model",
                "value": r["mae"],
                "ci95_low": ci[0],
                "ci95_high": ci[1],
                "n": r["n_val_cells"],
                "unit": "cells",
                "baseline": r.get("baseline_mae"),
                "detail": "95 % bootstrap interval over held-out cells; each cell's error "
                f"the mean over {int(r.get('val_draws', 1))} validation draws of dose and rotation",
            }
        )
    for r in reg["transfer"]["curve"]:
        rows.append(
            {
                "quantity": f"transfer MAE, {fmt(reg['reference_thickness'])} Å model on "
                f"{fmt(r['data_thickness'])} Å",
                "value": r["mae"],
                "n": r["n"],
                "unit": "cells",
                "detail": "the reference thickness's model on another thickness",
            }
        )
    return rows


# --------------------------------------------------------------------------- headline.json


def headline_numbers(
    cls: Mapping[str, Any], reg: Mapping[str, Any] | None, campaign: str = ""
) -> dict[str, Any]:
    """The headline numbers of ``classifier.json`` and ``regression.json`` and their
    :func:`verdict` (``headline.json`` less its sources and time)."""
    base = cls.get("baseline") or {}
    headline: dict[str, Any] = {
        "campaign": campaign,
        "classification": {
            **{k: cls.get(k) for k in CLASSIFICATION_HEADLINE},
            "baseline": {k: base.get(k) for k in BASELINE_HEADLINE},
            "comparison": cls.get("comparison"),
            "paired": cls.get("paired"),
        },
    }
    if reg is not None:
        headline["regression"] = _regression_headline(reg)
    headline["verdict"] = verdict(headline)
    return headline


def _regression_headline(reg: Mapping[str, Any]) -> dict[str, Any]:
    per = reg["per_thickness"]
    return {
        "reference_thickness": reg["reference_thickness"],
        "val_draws": max((int(r.get("val_draws", 1)) for r in per), default=1),
        "mae_by_thickness": {fmt(r["thickness"]): r["mae"] for r in per},
        "mae_ci95_by_thickness": {fmt(r["thickness"]): r.get("mae_ci95") for r in per},
        "n_val_by_thickness": {fmt(r["thickness"]): r["n_val"] for r in per},
        "n_val_cells_by_thickness": {fmt(r["thickness"]): r["n_val_cells"] for r in per},
        "baseline_mae_by_thickness": {fmt(r["thickness"]): r.get("baseline_mae") for r in per},
        "baseline_mae_ci95_by_thickness": {
            fmt(r["thickness"]): r.get("baseline_mae_ci95") for r in per
        },
        "network_at_or_below_baseline": {
            fmt(r["thickness"]): r.get("network_at_or_below_baseline") for r in per
        },
        "mae_minus_baseline_by_thickness": {
            fmt(r["thickness"]): r.get("mae_minus_baseline") for r in per
        },
        "mae_minus_baseline_ci95_by_thickness": {
            fmt(r["thickness"]): r.get("mae_minus_baseline_ci95") for r in per
        },
        "transfer_mae_by_thickness": {
            fmt(r["data_thickness"]): r["mae"] for r in reg["transfer"]["curve"]
        },
    }


def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def verdict(headline: Mapping[str, Any]) -> list[str]:
    """Plain sentences: where each network stands against its linear baseline."""
    out = []
    comp = (headline.get("classification") or {}).get("comparison") or {}
    worse = [k for k, v in comp.items() if v.get("network_at_or_above_baseline") is False]
    if comp:
        out.append(
            "The classifier does not beat its linear baseline on "
            + ", ".join(k.replace("_", " ") for k in worse)
            + ": it has not learned what its data holds."
            if worse
            else "The classifier is at or above its linear baseline on every reported accuracy."
        )
    paired = (headline.get("classification") or {}).get("paired") or {}
    if paired.get("accuracy_minus_baseline_ci95"):
        lo, hi = paired["accuracy_minus_baseline_ci95"]
        out.append(
            "Network minus baseline classifier accuracy per line, paired over the same "
            f"{paired['n']} held-out lines of {paired['n_cells']} cells (95 % bootstrap over "
            f"cells): {paired['accuracy_minus_baseline']:+.3f} [{lo:+.3f}, {hi:+.3f}]; only the "
            f"network is right on {_lines(paired['network_only_right'])}, only the baseline on "
            f"{_lines(paired['baseline_only_right'])}."
        )
    reg = headline.get("regression") or {}
    flags = reg.get("network_at_or_below_baseline") or {}
    lose = [t for t, ok in flags.items() if ok is False]
    if flags:
        out.append(
            "The step-position network is worse than its ridge baseline at "
            + ", ".join(f"{t} Å" for t in lose)
            + "."
            if lose
            else "Each step-position network's error is at or below its ridge baseline's."
        )
    diffs = reg.get("mae_minus_baseline_by_thickness") or {}
    cis = reg.get("mae_minus_baseline_ci95_by_thickness") or {}
    parts = [
        f"{t} Å {d:+.3f} [{cis[t][0]:+.3f}, {cis[t][1]:+.3f}]"
        for t, d in diffs.items()
        if d is not None and cis.get(t)
    ]
    if parts:
        out.append(
            "Network minus ridge step-position error, paired over the same held-out examples "
            "(95 % bootstrap over cells): " + "; ".join(parts) + "."
        )
    return out
