"""The dose study: the networks and their baselines against the electron dose.

The same validation examples, the same rotation draw as the evaluation's validation inputs
(:func:`interface4d.validation.augment_for_eval`), but shot noise at a fixed dose (electrons per
pattern) from ``evaluation.doses``, plus ``noiseless`` (rotation only). The classifier is scored
by accuracy, balanced accuracy and AUC per dose (``classifier_dose.csv``), each step-position
model by its MAE (``regression_dose.csv``); the summary joins both into ``dose_study.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from interface4d import metrics
from interface4d.datasets import CLASSES
from interface4d.evalreport import fmt
from interface4d.scores import binary_safe_auc
from interface4d.validation import NOISELESS, VAL, val_draw_keys

DOSE_PROTOCOL = (
    "same validation examples and rotation draws; Poisson noise at the "
    "dose (electrons per pattern); noiseless = rotation only"
)


def evaluation_doses(doses: Iterable[float], draws: int = 1) -> list[Any]:
    """The inputs each validation example is predicted at: ``draws`` validation draws
    (``"val"``, training's development draw, then ``"val:1"``, ...), each study dose, then
    ``noiseless``."""
    return [*val_draw_keys(draws), *doses, NOISELESS]


def study_doses(doses: Sequence[Any]) -> list[Any]:
    """The study's doses (and ``noiseless``) of an :func:`evaluation_doses` list."""
    return [d for d in doses if not (isinstance(d, str) and d.startswith(VAL))]


def dose_key(d: float | str | None) -> str:
    return NOISELESS if d is None or d == NOISELESS else f"{float(d):g}"


def _dose_value(d: float | str) -> float:
    return float("inf") if d == NOISELESS else float(d)


def classifier_dose_rows(
    y: np.ndarray, outs: Mapping[str, Mapping[Any, np.ndarray]], doses: Sequence[Any]
) -> list[dict[str, Any]]:
    """One row per study dose (:func:`study_doses` of ``doses``) and predictor of ``outs``
    ({name: {dose: class probabilities}}): accuracy, balanced accuracy, AUC on targets ``y``."""
    rows = []
    for d in study_doses(doses):
        for name in outs:
            p = outs[name][d]
            rows.append(
                {
                    "model": name,
                    "dose": dose_key(d),
                    "dose_e_per_pattern": _dose_value(d),
                    "accuracy": metrics.accuracy(y, p.argmax(axis=1)),
                    "balanced_accuracy": metrics.balanced_accuracy(y, p.argmax(axis=1)),
                    "auc": binary_safe_auc(y, p[:, CLASSES["diffusion"]]),
                    "n": len(y),
                }
            )
    return rows


def regression_dose_rows(
    t: float, y: np.ndarray, outs: Mapping[str, Mapping[Any, np.ndarray]], doses: Sequence[Any]
) -> list[dict[str, Any]]:
    """One row per study dose and predictor: the thickness ``t`` model's MAE on targets ``y``."""
    rows = []
    for d in study_doses(doses):
        for name in outs:
            rows.append(
                {
                    "model": name,
                    "thickness": t,
                    "dose": dose_key(d),
                    "dose_e_per_pattern": _dose_value(d),
                    "mae": metrics.mae(y, outs[name][d]) if len(y) else float("nan"),
                    "n": len(y),
                }
            )
    return rows


def dose_study_rows(cls: Mapping[str, Any], reg: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The rows of ``dose_study.csv`` from ``classifier.json`` and ``regression.json``."""
    rows = [
        {
            "model": r.get("model", "network"),
            "network": "classifier",
            "thickness": "all",
            "dose": r["dose"],
            "dose_e_per_pattern": r["dose_e_per_pattern"],
            "accuracy": r["accuracy"],
            "mae": None,
        }
        for r in cls["dose"] + cls.get("dose_baseline", [])
    ]
    if reg is not None:
        rows += [
            {
                "model": r.get("model", "network"),
                "network": "regressor",
                "thickness": fmt(r["thickness"]),
                "dose": r["dose"],
                "dose_e_per_pattern": r["dose_e_per_pattern"],
                "accuracy": None,
                "mae": r["mae"],
            }
            for r in reg["dose"]
        ]
    return rows


def _e(d: float) -> str:
    """A dose for a sentence: ``1e4``, ``3e3``, ``2500``, ``noiseless``."""
    if math.isinf(d):
        return "noiseless"
    m, x = f"{d:.2e}".split("e")
    return f"{float(m):g}e{int(x)}" if float(m) == round(float(m)) else f"{d:g}"


def _side(d: float, lo: float, hi: float) -> str:
    if math.isinf(d):
        return "noiseless"
    return "below" if d < lo else "above" if d > hi else "inside"


def dose_losses(
    rows: Sequence[Mapping[str, Any]], training_doses: Sequence[float] | None
) -> list[dict[str, Any]]:
    """The study's doses at which a network scores worse than its baseline on the same inputs
    (accuracy lower, MAE higher), each marked inside or outside ``training_doses`` (the range
    ``training.augment.dose`` its training draws and the headline take)."""
    lo, hi = (float(v) for v in training_doses) if training_doses else (0.0, math.inf)
    key = ("network", "thickness", "dose")
    base = {tuple(r[k] for k in key): r for r in rows if r["model"] == "baseline"}
    out = []
    for r in rows:
        b = base.get(tuple(r[k] for k in key))
        if r["model"] != "network" or b is None:
            continue
        col = "accuracy" if r["network"] == "classifier" else "mae"
        net, ref = float(r[col]), float(b[col])
        if net < ref if col == "accuracy" else net > ref:
            d = _dose_value(r["dose"])  # "noiseless": inf (its e/pattern reads null in JSON)
            out.append(
                {
                    "network": r["network"],
                    "thickness": r["thickness"],
                    "dose": r["dose"],
                    col: net,
                    f"baseline_{col}": ref,
                    "inside_training_doses": lo <= d <= hi,
                    "relative_to_training_doses": _side(d, lo, hi),
                }
            )
    return out


def dose_verdict(
    losses: Sequence[Mapping[str, Any]], training_doses: Sequence[float] | None
) -> str:
    """One plain sentence on :func:`dose_losses`: which network loses to its baseline at which
    doses, and whether those lie below, inside or above the doses it was trained on."""
    if not losses:
        return "Dose study: every network is at or above its baseline at every dose studied."
    parts = []
    for (net, t), grp in _groups(losses):
        who = "the classifier" if net == "classifier" else f"the {t} Å step-position network"
        where = []
        for side in ("below", "inside", "above", "noiseless"):
            doses = [_e(_dose_value(g["dose"])) for g in grp
                     if g["relative_to_training_doses"] == side]  # fmt: skip
            if doses and side == "noiseless":
                where.append("noiseless")
            elif doses:
                them = "them" if where else "the training doses"
                where.append(f"{', '.join(doses)} ({side} {them})")
        parts.append(f"{who} at {' and '.join(where)}")
    span = (
        f" The networks train on {_e(training_doses[0])}-{_e(training_doses[1])}; outside that "
        "range they extrapolate."
        if training_doses
        else ""
    )
    return (
        "Dose study (electrons per pattern), where a network scores worse than its baseline on "
        "the same inputs: " + "; ".join(parts) + "." + span
    )


def _groups(losses: Sequence[Mapping[str, Any]]):
    seen: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
    for r in losses:
        seen.setdefault((r["network"], r["thickness"]), []).append(r)
    return seen.items()
