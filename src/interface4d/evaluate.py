"""Evaluation of the trained networks (Oxley et al. 2020, Figs. 3-5) and the dose study.

Everything is measured on the *validation* split of the gathered datasets, which the networks
never trained on and whose cells no training or model selection saw (with ``reduction.split:
structure`` no cell has examples on both sides; training selects on development cells carved
from its training cells). Validation inputs are augmented as training's development pass
augments its cells (:mod:`interface4d.augment`: per example ``val_rng(val_seed, uid)`` draws a
dose log-uniform in ``training.augment.dose`` and a rotation). Beside every network stands its
linear baseline (:mod:`interface4d.baseline`), fitted on the same training cells and predicting
the same validation inputs at every dose; every accuracy carries its 95 % Wilson interval and
the number of lines or cells it rests on, every MAE a 95 % bootstrap interval over cells.

Dose study: the same validation examples, the same rotation draw, but shot noise at a fixed dose
(electrons per pattern) from ``evaluation.doses``, plus ``noiseless`` (rotation only).

* :func:`evaluate_classifier` -- accuracy, confusion matrix, ROC/AUC, reliability (ECE),
  accuracy per thickness / step fraction / Ti fraction, example predictions and saliency maps
  (Fig. 3b-d), dose curve. Writes ``classifier.json``, ``classifier_predictions.csv``,
  ``classifier_dose.csv`` and the figures.
* :func:`evaluate_regressors` -- each thickness's model on its own validation set (Fig. 4a-d,
  4e, 5d), the reference thickness's model on every thickness (transferability, Fig. 5a-c, 5e),
  dose curves. Writes ``regression.json``, ``regression_predictions.csv``,
  ``regression_dose.csv`` and the figures.
* :func:`summarise` -- the headline numbers (``headline.json``, ``headline.csv``), the dose
  study (``dose_study.csv`` and its figure) and the detectability of steps against their depth
  below the exit surface (``detectability.csv`` and its figure); no TensorFlow.

TensorFlow/Keras are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interface4d import metrics, versions
from interface4d.augment import draw_angle, draw_dose, poisson_noise, rotate_patterns, val_rng
from interface4d.datasets import CLASSES
from interface4d.h5io import atomic_path
from interface4d.reduce import file_sha256

log = logging.getLogger("interface4d.evaluate")

NOISELESS = "noiseless"
CLASS_NAMES = tuple(sorted(CLASSES, key=CLASSES.get))  # ("step", "diffusion")
DEFAULT_DOSES = (1.0e2, 1.0e3, 1.0e4, 1.0e5, 1.0e6, 1.0e7)
DEFAULT_REFERENCE = 200.0  # Angstrom, the paper's transferability model
NEAR_EXIT = 0.9  # step fraction beyond which a step lies in the last 10 % of the thickness
EVALUATION_DEFAULTS: dict[str, Any] = {
    "reference_thickness": None,
    "doses": list(DEFAULT_DOSES),
    "examples_per_class": 1,
    "batch_size": 64,
}


# --------------------------------------------------------------------------- config


def complete_evaluation_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``evaluation`` block with defaults filled in (unknown keys are errors)."""
    out = dict(EVALUATION_DEFAULTS)
    unknown = sorted(set(cfg or {}) - set(EVALUATION_DEFAULTS))
    if unknown:
        raise ValueError(f"evaluation: unknown keys {unknown} (known: {sorted(out)})")
    out.update(cfg or {})
    doses = [float(d) for d in out["doses"]]
    if not doses or any(not d > 0 for d in doses):
        raise ValueError(f"evaluation.doses = {out['doses']!r}: need positive electrons/pattern")
    out["doses"] = sorted(doses)
    return out


def reference_thickness(requested: float | None, available: Sequence[float]) -> float:
    """The thickness whose regressor is applied to every other thickness (Fig. 5).

    ``requested`` must be one of ``available`` (thicknesses with a step-position model); ``None``
    takes 200 Å if available, else the available thickness nearest to 200 Å.
    """
    avail = sorted(float(t) for t in available)
    if not avail:
        raise ValueError("no thickness has a step-position model (no step cells in the grid)")
    if requested is None:
        return min(avail, key=lambda t: (abs(t - DEFAULT_REFERENCE), t))
    for t in avail:
        if math.isclose(t, float(requested), abs_tol=1e-6):
            return t
    raise ValueError(
        f"evaluation.reference_thickness = {requested!r}: no step-position model at that "
        f"thickness (models exist for {[_fmt(t) for t in avail]} Å)"
    )


def _fmt(x: float) -> str:
    return f"{float(x):g}"


# --------------------------------------------------------------------------- inputs


def augment_for_eval(
    x: np.ndarray,
    indices: Sequence[int],
    augment_cfg: Mapping[str, Any],
    dose: float | str | None = "val",
) -> np.ndarray:
    """Validation inputs (B, nx, k, k) for dataset rows ``indices``.

    ``dose="val"``: exactly training's validation augmentation (dose and angle drawn from
    ``val_rng(val_seed, index)``); a number: the same rotation draw, shot noise at that dose;
    ``None`` or ``"noiseless"``: the same rotation, no noise.
    """
    out = np.empty(x.shape, dtype=np.float32)
    for j, idx in enumerate(indices):
        rng = val_rng(int(augment_cfg["val_seed"]), int(idx))
        drawn = draw_dose(rng, augment_cfg["dose"])
        angle = draw_angle(rng, float(augment_cfg["rotation_deg"]))
        rotated = rotate_patterns(x[j], angle)
        if dose == "val":
            out[j] = poisson_noise(rotated, drawn, rng)
        elif dose is None or dose == NOISELESS:
            out[j] = rotated
        else:
            out[j] = poisson_noise(rotated, float(dose), rng)
    return out


def load_model(path: str | Path):
    """A trained network (``.keras``) for inference."""
    from interface4d.model import load

    return load(path)


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Network outputs for inputs ``x`` (B, nx, k, k): (B, 2) probabilities or (B,) fractions."""
    import tensorflow as tf

    outs = []
    for i in range(0, len(x), batch_size):
        xb = tf.constant(np.asarray(x[i : i + batch_size], np.float32)[..., None])
        outs.append(np.asarray(model(xb, training=False)))
    if not outs:
        n_out = int(model.outputs[0].shape[-1])
        return np.empty((0, n_out) if n_out > 1 else (0,), np.float32)
    out = np.concatenate(outs)
    return out[:, 0] if out.shape[-1] == 1 else out


Predictor = Callable[[np.ndarray], np.ndarray]


def predict_split(
    predictors: Mapping[str, Predictor],
    dataset_h5: str | Path,
    augment_cfg: Mapping[str, Any],
    doses: Sequence[float | str | None],
    batch_size: int = 64,
    split: str = "val",
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[Any, np.ndarray]]]:
    """Predict one split of a dataset at several doses with several predictors (the network and
    its baseline see the very same inputs), streaming (never the whole split in memory).

    ``predictors`` maps a name to a function of raw augmented examples (B, nx, k, k). Returns
    (row indices, targets, {name: {dose: outputs}}). The augmentation draws are keyed by each
    example's :func:`interface4d.datasets.example_uid`, as in training's development pass.
    """
    from interface4d.datasets import H5Examples

    with H5Examples(dataset_h5, split) as data:
        idx = data.indices
        targets = []
        outs: dict[str, dict[Any, list[np.ndarray]]] = {
            n: {d: [] for d in doses} for n in predictors
        }
        for i in range(0, len(idx), batch_size):
            rows = idx[i : i + batch_size]
            x, y = data.batch(rows)
            uids = data.uids(rows)
            targets.append(y)
            for d in doses:
                xa = augment_for_eval(x, uids, augment_cfg, d)
                for name, fn in predictors.items():
                    outs[name][d].append(np.asarray(fn(xa)))
    y_all = np.concatenate(targets) if targets else np.empty((0,))
    joined = {
        n: {d: np.concatenate(v) if v else np.empty((0,)) for d, v in per.items()}
        for n, per in outs.items()
    }
    return idx, y_all, joined


def network_predictor(model, batch_size: int = 64) -> Predictor:
    return lambda x: predict(model, x, batch_size)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A dataset's manifest CSV, indexed by dataset row."""
    df = pd.read_csv(path)
    return df.set_index("index", drop=False)


def saliency(model, x: np.ndarray, output_index: int | None = None) -> np.ndarray:
    """|d output / d input| for each example of ``x`` (B, nx, k, k) -> (B, nx, k, k).

    ``output_index``: the class whose probability is differentiated (classifier); ``None``
    takes each example's predicted class, or the single output of a regressor.
    """
    import tensorflow as tf

    xt = tf.constant(np.asarray(x, np.float32)[..., None])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = model(xt, training=False)
        if out.shape[-1] == 1:
            score = out[:, 0]
        else:
            cls = (
                tf.argmax(out, axis=-1, output_type=tf.int32)
                if output_index is None
                else tf.fill([tf.shape(out)[0]], int(output_index))
            )
            score = tf.gather(out, cls, axis=1, batch_dims=1)
    grad = tape.gradient(score, xt)
    return np.abs(np.asarray(grad)[..., 0])


# --------------------------------------------------------------------------- outputs


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, allow_nan=True) + "\n")


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _provenance(inputs: Mapping[str, str | Path], cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "inputs": {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in inputs.items()},
        "evaluation": dict(cfg),
        "created": datetime.now(UTC).isoformat(),
        "versions": versions("tensorflow", "keras", "numpy", "pandas", "matplotlib"),
    }


def dose_key(d: float | str | None) -> str:
    return NOISELESS if d is None or d == NOISELESS else f"{float(d):g}"


def _binary_safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    return metrics.roc_auc(y, score) if len(np.unique(y)) == 2 else float("nan")


def _grouped(df: pd.DataFrame, column: str, mask: np.ndarray) -> list[dict[str, Any]]:
    sub = df[mask]
    if sub.empty:
        return []
    acc = metrics.grouped_accuracy(sub["y_true"], sub["y_pred"], sub[column].round(6))
    return [{column: k, "accuracy": a, "n": n} for k, (a, n) in acc.items()]


# --------------------------------------------------------------------------- classification


@dataclass
class ClassifierResult:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    dose: pd.DataFrame


def _class_scores(df: pd.DataFrame, p_diffusion: np.ndarray) -> dict[str, Any]:
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
        "auc": _binary_safe_auc(y, p_diffusion),
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


def _flat_scores(scores: Mapping[str, Any]) -> dict[str, Any]:
    """The headline values of :func:`_class_scores` (value, interval, count side by side)."""
    out: dict[str, Any] = {}
    for key in ("accuracy", "cell_accuracy", "cell_accuracy_detectable"):
        out[key] = scores[key]["value"]
        out[f"{key}_ci95"] = scores[key]["ci95"]
        out[f"{key}_n"] = scores[key]["n"]
    for key in ("balanced_accuracy", "cell_balanced_accuracy", "auc"):
        out[key] = scores[key]
    return out


def _comparison(net: Mapping[str, Any], base: Mapping[str, Any], keys, lower_is_better=False):
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


def evaluate_classifier(
    model_path: str | Path,
    dataset_h5: str | Path,
    manifest_csv: str | Path,
    history_csv: str | Path,
    training_cfg: Mapping[str, Any],
    evaluation_cfg: Mapping[str, Any] | None,
    metrics_dir: str | Path,
    figures_dir: str | Path,
) -> ClassifierResult:
    """Evaluate the step-vs-intermixing classifier and its linear baseline on the validation
    split (module doc).

    Writes ``metrics_dir/classifier.json``, ``classifier_predictions.csv``,
    ``classifier_dose.csv`` and ``figures_dir/{training,performance,accuracy_by_group,
    examples,saliency}.{png,svg}``.
    """
    from interface4d import baseline, figures
    from interface4d.train import complete_training_config, read_history_csv

    cfg = complete_evaluation_config(evaluation_cfg)
    training = complete_training_config(training_cfg)
    aug = training["augment"]
    metrics_dir, figures_dir = Path(metrics_dir), Path(figures_dir)
    model = load_model(model_path)
    base = baseline.fit(dataset_h5, "classify", training)
    log.info("classifier baseline: %s", base.info["hyperparameters"])
    doses: list[Any] = ["val", *cfg["doses"], NOISELESS]
    predictors = {"network": network_predictor(model, cfg["batch_size"]), "baseline": base.predict}
    idx, y, outs = predict_split(predictors, dataset_h5, aug, doses, cfg["batch_size"])
    y = y.astype(np.int64)
    n = len(y)
    if n == 0:
        raise ValueError(f"{dataset_h5}: the validation split is empty; nothing to evaluate")
    manifest = read_manifest(manifest_csv)
    meta = manifest.loc[idx]
    prob = outs["network"]["val"]
    prob_base = outs["baseline"]["val"]
    pred = prob.argmax(axis=1)
    df = pd.DataFrame(
        {
            "index": idx,
            "cell": meta["cell"].to_numpy(),
            "line": meta["line"].to_numpy(),
            "kind": meta["kind"].to_numpy(),
            "thickness": meta["thickness"].to_numpy(),
            "step_fraction": meta["step_fraction"].to_numpy(),
            "ti_fraction": meta["ti_fraction"].to_numpy(),
            "seed": meta["seed"].to_numpy(),
            "y_true": y,
            "p_step": prob[:, CLASSES["step"]],
            "p_diffusion": prob[:, CLASSES["diffusion"]],
            "y_pred": pred,
            "p_diffusion_baseline": prob_base[:, CLASSES["diffusion"]],
            "y_pred_baseline": prob_base.argmax(axis=1),
        }
    )
    df["predicted"] = [CLASS_NAMES[int(p)] for p in df["y_pred"]]
    df["correct"] = df["y_true"] == df["y_pred"]
    df["correct_baseline"] = df["y_true"] == df["y_pred_baseline"]
    df["confidence"] = prob.max(axis=1)

    score = df["p_diffusion"].to_numpy()
    roc_fpr, roc_tpr, _ = (
        metrics.roc_curve(y, score) if len(np.unique(y)) == 2 else (np.array([]),) * 3
    )
    rel = metrics.reliability(y, prob, n_bins=10)
    is_step = df["kind"].to_numpy() == "step"
    dose_rows = []
    for d in doses[1:]:
        for name in predictors:
            p = outs[name][d]
            dose_rows.append(
                {
                    "model": name,
                    "dose": dose_key(d),
                    "dose_e_per_pattern": float("inf") if d == NOISELESS else float(d),
                    "accuracy": metrics.accuracy(y, p.argmax(axis=1)),
                    "balanced_accuracy": metrics.balanced_accuracy(y, p.argmax(axis=1)),
                    "auc": _binary_safe_auc(y, p[:, CLASSES["diffusion"]]),
                    "n": n,
                }
            )
    dose_df = pd.DataFrame(dose_rows)
    net_scores = _class_scores(df, score)
    base_scores = _class_scores(df, df["p_diffusion_baseline"].to_numpy())
    net_flat, base_flat = _flat_scores(net_scores), _flat_scores(base_scores)
    history = read_history_csv(history_csv)
    result = {
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
        "by_thickness": _grouped(df, "thickness", np.ones(n, bool)),
        "by_step_fraction": _grouped(df, "step_fraction", is_step),
        "by_ti_fraction": _grouped(df, "ti_fraction", ~is_step),
        "baseline": {
            **base_flat,
            "near_exit_cells": base_scores["near_exit_cells"],
            "confusion_matrix": base_scores["confusion_matrix"],
            **base.info,
        },
        "comparison": _comparison(
            net_flat,
            base_flat,
            ("accuracy", "balanced_accuracy", "cell_accuracy", "cell_accuracy_detectable"),
        ),
        "dose": [r for r in dose_rows if r["model"] == "network"],
        "dose_baseline": [r for r in dose_rows if r["model"] == "baseline"],
        "dose_protocol": "same validation examples and rotation draws; Poisson noise at the "
        "dose (electrons per pattern); noiseless = rotation only",
        "final_epoch": history[-1] if history else None,
        "validation_augmentation": dict(aug),
        "provenance": _provenance(
            {"model": model_path, "dataset": dataset_h5, "history": history_csv}, cfg
        ),
    }

    # figures: training curves, performance, groups, examples with confidence, saliency
    figures.training_curves({"classifier": history}, "classify", figures_dir / "training")
    figures.classifier_performance(result, figures_dir / "performance")
    figures.accuracy_by_group(result, figures_dir / "accuracy_by_group")
    picks = _example_rows(df, int(cfg["examples_per_class"]), int(aug["val_seed"]))
    from interface4d.datasets import H5Examples

    with H5Examples(dataset_h5, "val") as data:
        x, _ = data.batch(picks)
        uids = data.uids(picks)
        scan_x = data.attrs.get("scan_x_relative_A")
    x_in = augment_for_eval(x, uids, aug, "val")
    ex = df.set_index("index").loc[picks]
    figures.classifier_examples(x_in, ex, figures_dir / "examples")
    sal = saliency(model, x_in)
    figures.saliency_maps(x_in, sal, ex, figures_dir / "saliency", scan_x=scan_x)
    result["figure_examples"] = [int(i) for i in picks]

    _write_json(metrics_dir / "classifier.json", result)
    _write_csv(metrics_dir / "classifier_predictions.csv", df)
    _write_csv(metrics_dir / "classifier_dose.csv", dose_df)
    return ClassifierResult(result, df, dose_df)


def cell_votes(df: pd.DataFrame) -> pd.DataFrame:
    """One row per validation cell: the mean class probability over its lines and the class
    it gives (``y_pred``), beside the cell's true class."""
    g = df.groupby("cell", sort=True)
    out = pd.DataFrame(
        {
            "y_true": g["y_true"].first(),
            "p_diffusion": g["p_diffusion"].mean(),
            "lines": g.size(),
            "near_exit": g["step_fraction"].first().fillna(0).astype(float) > NEAR_EXIT,
        }
    )
    out["y_pred"] = (out["p_diffusion"] > 0.5).astype(np.int64)
    return out.reset_index()


def _example_rows(df: pd.DataFrame, per_class: int, seed: int) -> np.ndarray:
    """Dataset rows shown as examples: ``per_class`` validation examples of each class, drawn
    with a fixed seed (not chosen by correctness)."""
    rng = np.random.default_rng([seed, 7])
    picks: list[int] = []
    for c in range(len(CLASS_NAMES)):
        rows = df.loc[df["y_true"] == c, "index"].to_numpy()
        if len(rows):
            picks += sorted(rng.choice(rows, min(per_class, len(rows)), replace=False).tolist())
    return np.asarray(picks, dtype=np.int64)


# --------------------------------------------------------------------------- regression


@dataclass
class RegressionResult:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    dose: pd.DataFrame


def evaluate_regressors(
    thicknesses: Sequence[float],
    models: Sequence[str | Path],
    datasets: Sequence[str | Path],
    manifests: Sequence[str | Path],
    histories: Sequence[str | Path],
    training_cfg: Mapping[str, Any],
    evaluation_cfg: Mapping[str, Any] | None,
    metrics_dir: str | Path,
    figures_dir: str | Path,
) -> RegressionResult:
    """Evaluate the per-thickness step-position regressors and their transferability.

    The four sequences are parallel (one entry per thickness). Writes
    ``metrics_dir/regression.json``, ``regression_predictions.csv`` (one row per model x
    validation example: ``model_thickness``, ``data_thickness``, ``cell``, ``true``,
    ``predicted``, ``abs_error``), ``regression_dose.csv`` and ``figures_dir/{training,
    predicted_vs_true, examples, error_vs_thickness, transfer_predicted_vs_true,
    transfer_error}.{png,svg}``.
    """
    from interface4d import baseline, figures
    from interface4d.datasets import H5Examples
    from interface4d.train import complete_training_config, read_history_csv

    n = len(thicknesses)
    if not (len(models) == len(datasets) == len(manifests) == len(histories) == n) or n == 0:
        raise ValueError("need one model, dataset, manifest and history per thickness")
    cfg = complete_evaluation_config(evaluation_cfg)
    training = complete_training_config(training_cfg)
    aug = training["augment"]
    ts = [float(t) for t in thicknesses]
    ref = reference_thickness(cfg["reference_thickness"], ts)
    metrics_dir, figures_dir = Path(metrics_dir), Path(figures_dir)
    rows: list[pd.DataFrame] = []
    dose_rows: list[dict[str, Any]] = []
    per_thickness: list[dict[str, Any]] = []
    ref_model = None
    doses: list[Any] = ["val", *cfg["doses"], NOISELESS]
    for t, model_path, data_path, man_path in zip(ts, models, datasets, manifests, strict=True):
        model = load_model(model_path)
        if t == ref:
            ref_model = model
        base = baseline.fit(data_path, "regress", training)
        predictors = {
            "network": network_predictor(model, cfg["batch_size"]),
            "baseline": base.predict,
        }
        idx, y, outs = predict_split(predictors, data_path, aug, doses, cfg["batch_size"])
        man = read_manifest(man_path).loc[idx]
        rows.append(
            _regression_rows(t, t, idx, y, outs["network"]["val"], man, outs["baseline"]["val"])
        )
        cells = man["cell"].to_numpy()
        entry: dict[str, Any] = {
            "thickness": t,
            "n_val": len(y),
            "n_val_cells": int(len(set(cells))),
        }
        for name, prefix in (("network", ""), ("baseline", "baseline_")):
            err = np.abs(outs[name]["val"].astype(np.float64) - y.astype(np.float64))
            entry[f"{prefix}mae"] = float(err.mean()) if len(y) else float("nan")
            entry[f"{prefix}mae_ci95"] = (
                list(metrics.bootstrap_interval(err, cells, seed=int(aug["val_seed"])))
                if len(y)
                else None
            )
            entry[f"{prefix}rmse"] = float(np.sqrt(np.mean(err**2))) if len(y) else None
        entry["network_at_or_below_baseline"] = (
            bool(entry["mae"] <= entry["baseline_mae"] + 1e-12) if len(y) else None
        )
        # paired over the same examples: how much the network's error differs from ridge's
        diff = np.abs(outs["network"]["val"].astype(np.float64) - y) - np.abs(
            outs["baseline"]["val"].astype(np.float64) - y
        )
        entry["mae_minus_baseline"] = float(diff.mean()) if len(y) else None
        entry["mae_minus_baseline_ci95"] = (
            list(metrics.bootstrap_interval(diff, cells, seed=int(aug["val_seed"])))
            if len(y)
            else None
        )
        entry["baseline_model"] = base.info
        per_thickness.append(entry)
        for d in doses[1:]:
            for name in predictors:
                dose_rows.append(
                    {
                        "model": name,
                        "thickness": t,
                        "dose": dose_key(d),
                        "dose_e_per_pattern": float("inf") if d == NOISELESS else float(d),
                        "mae": metrics.mae(y, outs[name][d]) if len(y) else float("nan"),
                        "n": len(y),
                    }
                )
    assert ref_model is not None
    transfer: list[dict[str, Any]] = []
    for t, data_path, man_path in zip(ts, datasets, manifests, strict=True):
        if t == ref:
            own = next(r for r in per_thickness if r["thickness"] == t)
            transfer.append({"data_thickness": t, "mae": own["mae"], "n": own["n_val"]})
            continue
        idx, y, outs = predict_split(
            {"network": network_predictor(ref_model, cfg["batch_size"])},
            data_path,
            aug,
            ["val"],
            cfg["batch_size"],
        )
        man = read_manifest(man_path).loc[idx]
        rows.append(_regression_rows(ref, t, idx, y, outs["network"]["val"], man))
        transfer.append(
            {
                "data_thickness": t,
                "mae": metrics.mae(y, outs["network"]["val"]) if len(y) else float("nan"),
                "n": len(y),
            }
        )
    df = pd.concat(rows, ignore_index=True)
    dose_df = pd.DataFrame(dose_rows)
    hist = {_fmt(t): read_history_csv(h) for t, h in zip(ts, histories, strict=True)}
    result = {
        "task": "regress",
        "split": "val",
        "reference_thickness": ref,
        "per_thickness": per_thickness,
        "transfer": {"model_thickness": ref, "curve": transfer},
        "dose": dose_rows,
        "final_epochs": {t: (h[-1] if h else None) for t, h in hist.items()},
        "validation_augmentation": dict(aug),
        "provenance": _provenance(
            {
                **{f"model_t{_fmt(t)}": m for t, m in zip(ts, models, strict=True)},
                **{f"dataset_t{_fmt(t)}": d for t, d in zip(ts, datasets, strict=True)},
            },
            cfg,
        ),
    }

    figures.training_curves(hist, "regress", figures_dir / "training")
    own = df[df["model_thickness"] == df["data_thickness"]]
    figures.regression_scatter(own, "model_thickness", figures_dir / "predicted_vs_true")
    figures.error_vs_thickness(per_thickness, figures_dir / "error_vs_thickness")
    others = df[(df["model_thickness"] == ref) & (df["data_thickness"] != ref)]
    figures.regression_scatter(
        others, "data_thickness", figures_dir / "transfer_predicted_vs_true", model_thickness=ref
    )
    figures.transfer_error(result, figures_dir / "transfer_error")
    # Fig. 4e: two validation examples of the reference thickness, input and prediction
    ref_rows = own[own["model_thickness"] == ref].sort_values("index")
    rng = np.random.default_rng([int(aug["val_seed"]), 11])
    k = min(2, len(ref_rows))
    picks = np.sort(rng.choice(ref_rows["index"].to_numpy(), k, replace=False)) if k else []
    ref_path = datasets[ts.index(ref)]
    with H5Examples(ref_path, "val") as data:
        x, _ = data.batch(picks)
        uids = data.uids(picks)
    x_in = augment_for_eval(x, uids, aug, "val")
    figures.regression_examples(
        x_in, ref_rows.set_index("index").loc[picks], ref, figures_dir / "examples"
    )
    result["figure_examples"] = [int(i) for i in picks]

    _write_json(metrics_dir / "regression.json", result)
    _write_csv(metrics_dir / "regression_predictions.csv", df)
    _write_csv(metrics_dir / "regression_dose.csv", dose_df)
    return RegressionResult(result, df, dose_df)


def _regression_rows(
    model_t: float, data_t: float, idx, y, pred, man: pd.DataFrame, baseline=None
) -> pd.DataFrame:
    true = y.astype(np.float64)
    out = pd.DataFrame(
        {
            "model_thickness": model_t,
            "data_thickness": data_t,
            "index": idx,
            "cell": man["cell"].to_numpy(),
            "true": true,
            "predicted": pred.astype(np.float64),
            "abs_error": np.abs(pred.astype(np.float64) - true),
        }
    )
    if baseline is not None:
        out["predicted_baseline"] = baseline.astype(np.float64)
        out["abs_error_baseline"] = np.abs(baseline.astype(np.float64) - true)
    return out


# --------------------------------------------------------------------------- summary


def detectability(
    classifier_predictions: str | Path, regression_predictions: str | Path | None
) -> pd.DataFrame:
    """One row per held-out step cell: its thickness, step fraction and the step's distance from
    the exit surface (Å), the classifier's accuracy over its lines and its cell vote, and the
    step-position error of its thickness's model, each for the network and the baseline."""
    cls = pd.read_csv(classifier_predictions)
    steps = cls[cls["kind"] == "step"]
    if steps.empty:
        return pd.DataFrame()
    g = steps.groupby("cell", sort=True)
    out = pd.DataFrame(
        {
            "thickness": g["thickness"].first(),
            "step_fraction": g["step_fraction"].first(),
            "lines": g.size(),
            "line_accuracy": g["correct"].mean(),
            "cell_correct": g["p_diffusion"].mean() < 0.5,
            "line_accuracy_baseline": g["correct_baseline"].mean(),
            "cell_correct_baseline": g["p_diffusion_baseline"].mean() < 0.5,
        }
    ).reset_index()
    out["distance_from_exit_A"] = out["thickness"] * (1.0 - out["step_fraction"])
    out["near_exit"] = out["step_fraction"] > NEAR_EXIT
    if regression_predictions is not None:
        reg = pd.read_csv(regression_predictions)
        own = reg[reg["model_thickness"] == reg["data_thickness"]].set_index("cell")
        out["position_abs_error"] = out["cell"].map(own["abs_error"])
        if "abs_error_baseline" in own:
            out["position_abs_error_baseline"] = out["cell"].map(own["abs_error_baseline"])
    return out.sort_values(["thickness", "distance_from_exit_A"]).reset_index(drop=True)


def summarise(
    classifier_json: str | Path,
    regression_json: str | Path | None,
    out_dir: str | Path,
    figure_path: str | Path,
    campaign: str = "",
    headline_figure: str | Path | None = None,
    classifier_predictions: str | Path | None = None,
    regression_predictions: str | Path | None = None,
    detectability_figure: str | Path | None = None,
) -> dict[str, Any]:
    """Headline numbers, the dose study and the detectability of steps (no TensorFlow).

    Writes ``out_dir/headline.json``, ``out_dir/headline.csv`` (quantity, value, 95 % interval,
    n, baseline, detail), ``out_dir/dose_study.csv`` (model, network, thickness, dose, accuracy
    or MAE), the dose-study figure at ``figure_path`` (``.png`` + ``.svg``) and, if given, the
    headline figure ``headline_figure``; with ``classifier_predictions``,
    ``out_dir/detectability.csv`` and its figure ``detectability_figure``.
    """
    from interface4d import figures

    out_dir = Path(out_dir)
    cls = json.loads(Path(classifier_json).read_text())
    reg = json.loads(Path(regression_json).read_text()) if regression_json else None
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
                "detail": f"split by structure; balanced accuracy {_num(cls.get('balanced_accuracy'))}"
                f" (baseline {_num(base.get('balanced_accuracy'))}); AUC {_num(cls['auc'])}",
            }
        )
    headline: dict[str, Any] = {
        "campaign": campaign,
        "classification": {
            **{
                k: cls.get(k)
                for k in (
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
            },
            "baseline": {
                k: base.get(k)
                for k in (
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
            },
            "comparison": cls.get("comparison"),
        },
    }
    dose_rows = [
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
        per = reg["per_thickness"]
        headline["regression"] = {
            "reference_thickness": reg["reference_thickness"],
            "mae_by_thickness": {_fmt(r["thickness"]): r["mae"] for r in per},
            "mae_ci95_by_thickness": {_fmt(r["thickness"]): r.get("mae_ci95") for r in per},
            "n_val_by_thickness": {_fmt(r["thickness"]): r["n_val"] for r in per},
            "n_val_cells_by_thickness": {_fmt(r["thickness"]): r["n_val_cells"] for r in per},
            "baseline_mae_by_thickness": {_fmt(r["thickness"]): r.get("baseline_mae") for r in per},
            "baseline_mae_ci95_by_thickness": {
                _fmt(r["thickness"]): r.get("baseline_mae_ci95") for r in per
            },
            "network_at_or_below_baseline": {
                _fmt(r["thickness"]): r.get("network_at_or_below_baseline") for r in per
            },
            "mae_minus_baseline_by_thickness": {
                _fmt(r["thickness"]): r.get("mae_minus_baseline") for r in per
            },
            "mae_minus_baseline_ci95_by_thickness": {
                _fmt(r["thickness"]): r.get("mae_minus_baseline_ci95") for r in per
            },
            "transfer_mae_by_thickness": {
                _fmt(r["data_thickness"]): r["mae"] for r in reg["transfer"]["curve"]
            },
        }
        for r in per:
            ci = r.get("mae_ci95") or [None, None]
            rows.append(
                {
                    "quantity": f"step-fraction MAE, {_fmt(r['thickness'])} Å model",
                    "value": r["mae"],
                    "ci95_low": ci[0],
                    "ci95_high": ci[1],
                    "n": r["n_val_cells"],
                    "unit": "cells",
                    "baseline": r.get("baseline_mae"),
                    "detail": "95 % bootstrap interval over held-out cells",
                }
            )
        for r in reg["transfer"]["curve"]:
            rows.append(
                {
                    "quantity": f"transfer MAE, {_fmt(reg['reference_thickness'])} Å model on "
                    f"{_fmt(r['data_thickness'])} Å",
                    "value": r["mae"],
                    "n": r["n"],
                    "unit": "cells",
                    "detail": "the reference thickness's model on another thickness",
                }
            )
        dose_rows += [
            {
                "model": r.get("model", "network"),
                "network": "regressor",
                "thickness": _fmt(r["thickness"]),
                "dose": r["dose"],
                "dose_e_per_pattern": r["dose_e_per_pattern"],
                "accuracy": None,
                "mae": r["mae"],
            }
            for r in reg["dose"]
        ]
    headline["verdict"] = verdict(headline)
    headline["sources"] = {
        "classifier": {"path": str(classifier_json), "sha256": file_sha256(classifier_json)},
        **(
            {"regression": {"path": str(regression_json), "sha256": file_sha256(regression_json)}}
            if regression_json
            else {}
        ),
    }
    headline["created"] = datetime.now(UTC).isoformat()
    if classifier_predictions is not None:
        det = detectability(classifier_predictions, regression_predictions)
        _write_csv(out_dir / "detectability.csv", det)
        if detectability_figure is not None:
            figures.detectability(det, Path(detectability_figure))
    _write_json(out_dir / "headline.json", headline)
    _write_csv(out_dir / "headline.csv", pd.DataFrame(rows))
    dose_df = pd.DataFrame(dose_rows)
    _write_csv(out_dir / "dose_study.csv", dose_df)
    figures.dose_study(dose_df[dose_df["model"] == "network"], Path(figure_path))
    if headline_figure is not None:
        figures.headline(headline, Path(headline_figure))
    return headline


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


def _num(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interface4d evaluate",
        description="Evaluate trained networks on their validation split (Figs. 3-5, dose).",
    )
    sub = p.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--training-json", required=True, help="the campaign's training block")
    common.add_argument("--evaluation-json", default="{}", help="the campaign's evaluation block")
    common.add_argument("--metrics-dir", required=True)
    common.add_argument("--figures-dir", required=True)
    common.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads")
    c = sub.add_parser("classify", parents=[common], help="the step-vs-intermixing classifier")
    c.add_argument("--model", required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--manifest", required=True)
    c.add_argument("--history", required=True)
    r = sub.add_parser("regress", parents=[common], help="the step-position regressors")
    r.add_argument("--thicknesses", nargs="+", type=float, required=True)
    r.add_argument("--models", nargs="+", required=True)
    r.add_argument("--datasets", nargs="+", required=True)
    r.add_argument("--manifests", nargs="+", required=True)
    r.add_argument("--histories", nargs="+", required=True)
    s = sub.add_parser("summary", help="headline numbers and the dose study (no TensorFlow)")
    s.add_argument("--classifier", required=True, help="classifier.json")
    s.add_argument("--regression", help="regression.json (absent without step cells)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--figure", required=True, help="dose-study figure (.png, also .svg)")
    s.add_argument("--campaign", default="")
    s.add_argument("--headline-figure", help="headline figure (.png, also .svg)")
    s.add_argument("--classifier-predictions", help="classifier_predictions.csv (detectability)")
    s.add_argument("--regression-predictions", help="regression_predictions.csv (detectability)")
    s.add_argument("--detectability-figure", help="detectability figure (.png, also .svg)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if args.what == "summary":
            h = summarise(
                args.classifier,
                args.regression,
                args.out_dir,
                args.figure,
                args.campaign,
                args.headline_figure,
                args.classifier_predictions,
                args.regression_predictions,
                args.detectability_figure,
            )
            log.info("headline: %s", json.dumps(_jsonable(h)))
            return 0
        if args.threads:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(int(args.threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        training = json.loads(args.training_json)
        evaluation = json.loads(args.evaluation_json)
        if args.what == "classify":
            res = evaluate_classifier(
                args.model,
                args.dataset,
                args.manifest,
                args.history,
                training,
                evaluation,
                args.metrics_dir,
                args.figures_dir,
            )
            log.info(
                "classifier: validation accuracy %.4f on %d examples, AUC %s",
                res.metrics["accuracy"],
                res.metrics["n_val_examples"],
                _num(res.metrics["auc"]),
            )
        else:
            res = evaluate_regressors(
                args.thicknesses,
                args.models,
                args.datasets,
                args.manifests,
                args.histories,
                training,
                evaluation,
                args.metrics_dir,
                args.figures_dir,
            )
            for r in res.metrics["per_thickness"]:
                log.info(
                    "regressor %s Å: validation MAE %s on %d examples",
                    _fmt(r["thickness"]),
                    _num(r["mae"]),
                    r["n_val"],
                )
    except (ValueError, OSError) as exc:
        raise SystemExit(f"interface4d evaluate: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
