"""The evaluation's numbers, each beside its interval, its count and the linear baseline's.

* classifier: accuracy per line and per held-out cell with 95 % Wilson intervals, balanced
  accuracy, AUC, confusion matrix, ROC, reliability, accuracy per group
  (:func:`classifier_metrics`, the numbers of ``classifier.json``);
* step-position regressor: MAE with a 95 % bootstrap interval over cells, RMSE, and the paired
  difference to the ridge baseline on the same examples (:func:`thickness_scores`);
* :func:`comparison` -- where the network stands against its baseline, metric by metric;
  :func:`paired_accuracy` -- the classifier's difference to it over the same lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from interface4d import metrics
from interface4d.celltables import CLASS_NAMES, NEAR_EXIT, cell_votes


def binary_safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, or NaN when ``y`` holds a single class."""
    return metrics.roc_auc(y, score) if len(np.unique(y)) == 2 else float("nan")


def grouped(df: pd.DataFrame, column: str, mask: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy per value of ``column`` over the rows ``mask`` of a classifier table."""
    sub = df[mask]
    if sub.empty:
        return []
    acc = metrics.grouped_accuracy(sub["y_true"], sub["y_pred"], sub[column].round(6))
    return [{column: k, "accuracy": a, "n": n} for k, (a, n) in acc.items()]


def class_scores(df: pd.DataFrame, p_diffusion: np.ndarray) -> dict[str, Any]:
    """Accuracy per line and per cell with 95 % Wilson intervals and their counts, balanced
    accuracy, AUC, and the cells whose step lies in the last 10 % of the thickness apart."""
    y = df["y_true"].to_numpy(np.int64)
    pred = (p_diffusion > 0.5).astype(np.int64)
    hits = int((pred == y).sum())
    cells = cell_votes(df.assign(p_diffusion=p_diffusion))
    near = cells["near_exit"].to_numpy(bool)
    ok = (cells["y_true"] == cells["y_pred"]).to_numpy()

    def prop(k: int, n: int) -> dict[str, Any]:
        if n == 0:
            return {"value": None, "ci95": None, "n": 0}
        return {"value": k / n, "ci95": list(metrics.wilson_interval(k, n)), "n": n}

    return {
        "accuracy": prop(hits, len(y)),
        "balanced_accuracy": metrics.balanced_accuracy(y, pred),
        "auc": binary_safe_auc(y, p_diffusion),
        "confusion_matrix": metrics.confusion_matrix(y, pred, 2),
        "cell_accuracy": prop(int(ok.sum()), len(ok)),
        "cell_balanced_accuracy": metrics.balanced_accuracy(
            cells["y_true"].to_numpy(np.int64), cells["y_pred"].to_numpy(np.int64)
        ),
        "cell_accuracy_detectable": prop(int(ok[~near].sum()), int((~near).sum())),
        "near_exit_cells": {
            str(c): bool(v) for c, v in zip(cells["cell"][near], ok[near], strict=True)
        },
    }


def flat_scores(scores: Mapping[str, Any]) -> dict[str, Any]:
    """The headline values of :func:`class_scores` (value, interval, count side by side)."""
    out: dict[str, Any] = {}
    for key in ("accuracy", "cell_accuracy", "cell_accuracy_detectable"):
        out[key] = scores[key]["value"]
        out[f"{key}_ci95"] = scores[key]["ci95"]
        out[f"{key}_n"] = scores[key]["n"]
    for key in ("balanced_accuracy", "cell_balanced_accuracy", "auc"):
        out[key] = scores[key]
    return out


def comparison(net: Mapping[str, Any], base: Mapping[str, Any], keys, lower_is_better=False):
    """{metric: {network, baseline, network_at_or_above_baseline}} (at or above: better or
    equal; for errors, at or below)."""
    out = {}
    for k in keys:
        a, b = net.get(k), base.get(k)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            out[k] = {"network": a, "baseline": b, "network_at_or_above_baseline": None}
            continue
        good = a <= b + 1e-12 if lower_is_better else a >= b - 1e-12
        out[k] = {"network": a, "baseline": b, "network_at_or_above_baseline": bool(good)}
    return out


def paired_accuracy(df: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """The network's accuracy per line minus its baseline's, paired over the same held-out lines
    of classifier table ``df`` (columns ``correct``, ``correct_baseline``, ``cell``), with a 95 %
    bootstrap interval over cells, and the lines only one of the two gets right (the discordant
    pairs: all that tells two classifiers apart on the same lines)."""
    net = df["correct"].to_numpy(bool)
    base = df["correct_baseline"].to_numpy(bool)
    diff = net.astype(np.float64) - base.astype(np.float64)
    cells = df["cell"].to_numpy()
    return {
        "accuracy_minus_baseline": float(diff.mean()) if len(diff) else None,
        "accuracy_minus_baseline_ci95": (
            list(metrics.bootstrap_interval(diff, cells, seed=seed)) if len(diff) else None
        ),
        "network_only_right": int((net & ~base).sum()),
        "baseline_only_right": int((~net & base).sum()),
        "n": int(len(diff)),
        "n_cells": int(len(set(cells.tolist()))),
    }


def thickness_scores(
    t: float,
    y: np.ndarray,
    val: Mapping[str, np.ndarray],
    cells: np.ndarray,
    seed: int,
    baseline_info: Mapping[str, Any],
) -> dict[str, Any]:
    """One thickness's step-position model and its ridge baseline on its validation examples
    (targets ``y``, outputs ``val["network"]`` and ``val["baseline"]``, cells ``cells``): MAE
    with a 95 % bootstrap interval over cells (seed ``seed``), RMSE, and the network's error
    minus the baseline's, paired over the same examples.

    Outputs of shape (K, B) are K validation draws of each of the B examples: an example's
    error is then its mean absolute error over the draws (and RMSE the root of its mean square
    error), so that one draw's shot noise does not decide the comparison."""
    y = y.astype(np.float64)
    draws = {name: np.atleast_2d(np.asarray(v, np.float64)) for name, v in val.items()}
    entry: dict[str, Any] = {
        "thickness": t,
        "n_val": len(y),
        "n_val_cells": int(len(set(cells))),
        "val_draws": int(draws["network"].shape[0]),
    }
    err = {name: np.abs(d - y).mean(axis=0) for name, d in draws.items()}
    for name, prefix in (("network", ""), ("baseline", "baseline_")):
        e = err[name]
        entry[f"{prefix}mae"] = float(e.mean()) if len(y) else float("nan")
        entry[f"{prefix}mae_ci95"] = (
            list(metrics.bootstrap_interval(e, cells, seed=seed)) if len(y) else None
        )
        entry[f"{prefix}rmse"] = float(np.sqrt(np.mean((draws[name] - y) ** 2))) if len(y) else None
    entry["network_at_or_below_baseline"] = (
        bool(entry["mae"] <= entry["baseline_mae"] + 1e-12) if len(y) else None
    )
    # paired over the same examples: how much the network's error differs from ridge's
    diff = err["network"] - err["baseline"]
    entry["mae_minus_baseline"] = float(diff.mean()) if len(y) else None
    entry["mae_minus_baseline_ci95"] = (
        list(metrics.bootstrap_interval(diff, cells, seed=seed)) if len(y) else None
    )
    entry["baseline_model"] = baseline_info
    return entry


def classifier_metrics(
    df: pd.DataFrame,
    y: np.ndarray,
    prob: np.ndarray,
    baseline_info: Mapping[str, Any],
) -> dict[str, Any]:
    """The numbers of ``classifier.json``: the network's (classifier table ``df``, targets
    ``y``, class probabilities ``prob``) beside its baseline's (``baseline_info``: the fitted
    baseline's description)."""
    n = len(y)
    score = df["p_diffusion"].to_numpy()
    roc_fpr, roc_tpr, _ = (
        metrics.roc_curve(y, score) if len(np.unique(y)) == 2 else (np.array([]),) * 3
    )
    rel = metrics.reliability(y, prob, n_bins=10)
    is_step = df["kind"].to_numpy() == "step"
    net_scores = class_scores(df, score)
    base_scores = class_scores(df, df["p_diffusion_baseline"].to_numpy())
    net_flat, base_flat = flat_scores(net_scores), flat_scores(base_scores)
    return {
        "task": "classify",
        "split": "val",
        "n_val_examples": n,
        "n_val_cells": int(df["cell"].nunique()),
        **net_flat,
        "near_exit_cells": net_scores["near_exit_cells"],
        "near_exit_rule": f"step fraction > {NEAR_EXIT}: a step in the last 10 % of the "
        "thickness, reported apart from cell_accuracy_detectable (never dropped)",
        "cell_accuracy_rule": "a held-out cell is classified by the mean of its lines' class "
        "probabilities (what interface4d predict does with the rows of a scan)",
        "interval": "95 % Wilson score interval; n = lines or cells it rests on",
        "confusion_matrix": net_scores["confusion_matrix"],
        "confusion_axes": {"rows": "true", "columns": "predicted", "classes": CLASS_NAMES},
        "ece": rel["ece"],
        "reliability": rel,
        "roc": {"fpr": roc_fpr, "tpr": roc_tpr},
        "by_thickness": grouped(df, "thickness", np.ones(n, bool)),
        "by_step_fraction": grouped(df, "step_fraction", is_step),
        "by_ti_fraction": grouped(df, "ti_fraction", ~is_step),
        "baseline": {
            **base_flat,
            "near_exit_cells": base_scores["near_exit_cells"],
            "confusion_matrix": base_scores["confusion_matrix"],
            **baseline_info,
        },
        "comparison": comparison(
            net_flat,
            base_flat,
            ("accuracy", "balanced_accuracy", "cell_accuracy", "cell_accuracy_detectable"),
        ),
        "paired": paired_accuracy(df),
    }
