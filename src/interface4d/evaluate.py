"""Evaluation of the trained networks (Oxley et al. 2020, Figs. 3-5) and the dose study.

Everything is measured on the *validation* split of the gathered datasets, which the networks
never trained on (with ``reduction.split: structure`` no cell has examples on both sides).
Validation inputs are augmented exactly as during training's validation pass
(:mod:`interface4d.augment`: per example ``val_rng(val_seed, index)`` draws a dose log-uniform in
``training.augment.dose`` and a rotation), so :func:`evaluate_classifier`'s accuracy equals the
last ``val_accuracy`` in the training history.

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
* :func:`summarise` -- the headline numbers (``headline.json``, ``headline.csv``) and the dose
  study (``dose_study.csv`` and its figure) from the two metric files; no TensorFlow.

TensorFlow/Keras are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
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
    import keras

    return keras.models.load_model(str(path), compile=False)


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


def predict_split(
    model,
    dataset_h5: str | Path,
    augment_cfg: Mapping[str, Any],
    doses: Sequence[float | str | None],
    batch_size: int = 64,
    split: str = "val",
) -> tuple[np.ndarray, np.ndarray, dict[Any, np.ndarray]]:
    """Predict one split of a dataset at several doses, streaming (never the whole split in
    memory). Returns (row indices, targets, {dose: outputs})."""
    from interface4d.datasets import H5Examples

    with H5Examples(dataset_h5, split) as data:
        idx = data.indices
        targets = []
        outs: dict[Any, list[np.ndarray]] = {d: [] for d in doses}
        for i in range(0, len(idx), batch_size):
            rows = idx[i : i + batch_size]
            x, y = data.batch(rows)
            targets.append(y)
            for d in doses:
                outs[d].append(predict(model, augment_for_eval(x, rows, augment_cfg, d), len(x)))
    y_all = np.concatenate(targets) if targets else np.empty((0,))
    joined = {
        d: (np.concatenate(v) if v else predict(model, np.empty((0, 1, 1, 1)), 1))
        for d, v in outs.items()
    }
    return idx, y_all, joined


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
    """Evaluate the step-vs-intermixing classifier on the validation split (module doc).

    Writes ``metrics_dir/classifier.json``, ``classifier_predictions.csv``,
    ``classifier_dose.csv`` and ``figures_dir/{training,performance,accuracy_by_group,
    examples,saliency}.{png,svg}``.
    """
    from interface4d import figures
    from interface4d.train import complete_training_config, read_history_csv

    cfg = complete_evaluation_config(evaluation_cfg)
    aug = complete_training_config(training_cfg)["augment"]
    metrics_dir, figures_dir = Path(metrics_dir), Path(figures_dir)
    model = load_model(model_path)
    doses: list[Any] = ["val", *cfg["doses"], NOISELESS]
    idx, y, outs = predict_split(model, dataset_h5, aug, doses, cfg["batch_size"])
    y = y.astype(np.int64)
    manifest = read_manifest(manifest_csv)
    meta = manifest.loc[idx]
    prob = outs["val"]
    pred = prob.argmax(axis=1) if len(prob) else np.empty((0,), np.int64)
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
            "p_step": prob[:, CLASSES["step"]] if len(prob) else [],
            "p_diffusion": prob[:, CLASSES["diffusion"]] if len(prob) else [],
            "y_pred": pred,
        }
    )
    df["predicted"] = [CLASS_NAMES[int(p)] for p in df["y_pred"]]
    df["correct"] = df["y_true"] == df["y_pred"]
    df["confidence"] = prob.max(axis=1) if len(prob) else []

    n = len(df)
    if n == 0:
        raise ValueError(f"{dataset_h5}: the validation split is empty; nothing to evaluate")
    score = df["p_diffusion"].to_numpy()
    roc_fpr, roc_tpr, _ = (
        metrics.roc_curve(y, score) if len(np.unique(y)) == 2 else (np.array([]),) * 3
    )
    rel = metrics.reliability(y, prob, n_bins=10)
    is_step = df["kind"].to_numpy() == "step"
    dose_rows = []
    for d in doses[1:]:
        p = outs[d]
        dose_rows.append(
            {
                "dose": dose_key(d),
                "dose_e_per_pattern": float("inf") if d == NOISELESS else float(d),
                "accuracy": metrics.accuracy(y, p.argmax(axis=1)),
                "auc": _binary_safe_auc(y, p[:, CLASSES["diffusion"]]),
                "n": n,
            }
        )
    dose_df = pd.DataFrame(dose_rows)
    cells = cell_votes(df)
    history = read_history_csv(history_csv)
    result = {
        "task": "classify",
        "split": "val",
        "n_val_examples": n,
        "n_val_cells": int(df["cell"].nunique()),
        "accuracy": metrics.accuracy(y, pred),
        "cell_accuracy": metrics.accuracy(cells["y_true"], cells["y_pred"]),
        "cell_accuracy_rule": "a held-out cell is classified by the mean of its lines' class "
        "probabilities (what interface4d predict does with the rows of a scan)",
        "confusion_matrix": metrics.confusion_matrix(y, pred, 2),
        "confusion_axes": {"rows": "true", "columns": "predicted", "classes": CLASS_NAMES},
        "auc": _binary_safe_auc(y, score),
        "ece": rel["ece"],
        "reliability": rel,
        "roc": {"fpr": roc_fpr, "tpr": roc_tpr},
        "by_thickness": _grouped(df, "thickness", np.ones(n, bool)),
        "by_step_fraction": _grouped(df, "step_fraction", is_step),
        "by_ti_fraction": _grouped(df, "ti_fraction", ~is_step),
        "dose": dose_rows,
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
        scan_x = data.attrs.get("scan_x_relative_A")
    x_in = augment_for_eval(x, picks, aug, "val")
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
    from interface4d import figures
    from interface4d.datasets import H5Examples
    from interface4d.train import complete_training_config, read_history_csv

    n = len(thicknesses)
    if not (len(models) == len(datasets) == len(manifests) == len(histories) == n) or n == 0:
        raise ValueError("need one model, dataset, manifest and history per thickness")
    cfg = complete_evaluation_config(evaluation_cfg)
    aug = complete_training_config(training_cfg)["augment"]
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
        idx, y, outs = predict_split(model, data_path, aug, doses, cfg["batch_size"])
        man = read_manifest(man_path).loc[idx]
        rows.append(_regression_rows(t, t, idx, y, outs["val"], man))
        mae = metrics.mae(y, outs["val"]) if len(y) else float("nan")
        per_thickness.append(
            {
                "thickness": t,
                "mae": mae,
                "rmse": float(np.sqrt(np.mean((y - outs["val"]) ** 2))) if len(y) else None,
                "n_val": len(y),
                "n_val_cells": int(man["cell"].nunique()),
            }
        )
        for d in doses[1:]:
            dose_rows.append(
                {
                    "thickness": t,
                    "dose": dose_key(d),
                    "dose_e_per_pattern": float("inf") if d == NOISELESS else float(d),
                    "mae": metrics.mae(y, outs[d]) if len(y) else float("nan"),
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
        idx, y, outs = predict_split(ref_model, data_path, aug, ["val"], cfg["batch_size"])
        man = read_manifest(man_path).loc[idx]
        rows.append(_regression_rows(ref, t, idx, y, outs["val"], man))
        transfer.append(
            {
                "data_thickness": t,
                "mae": metrics.mae(y, outs["val"]) if len(y) else float("nan"),
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
    x_in = augment_for_eval(x, picks, aug, "val")
    figures.regression_examples(
        x_in, ref_rows.set_index("index").loc[picks], ref, figures_dir / "examples"
    )
    result["figure_examples"] = [int(i) for i in picks]

    _write_json(metrics_dir / "regression.json", result)
    _write_csv(metrics_dir / "regression_predictions.csv", df)
    _write_csv(metrics_dir / "regression_dose.csv", dose_df)
    return RegressionResult(result, df, dose_df)


def _regression_rows(
    model_t: float, data_t: float, idx, y, pred, man: pd.DataFrame
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_thickness": model_t,
            "data_thickness": data_t,
            "index": idx,
            "cell": man["cell"].to_numpy(),
            "true": y.astype(np.float64),
            "predicted": pred.astype(np.float64),
            "abs_error": np.abs(pred.astype(np.float64) - y.astype(np.float64)),
        }
    )


# --------------------------------------------------------------------------- summary


def summarise(
    classifier_json: str | Path,
    regression_json: str | Path | None,
    out_dir: str | Path,
    figure_path: str | Path,
    campaign: str = "",
    headline_figure: str | Path | None = None,
) -> dict[str, Any]:
    """Headline numbers and the dose study from the metric files (no TensorFlow).

    Writes ``out_dir/headline.json``, ``out_dir/headline.csv`` (quantity, value, detail) and
    ``out_dir/dose_study.csv`` (network, thickness, dose, accuracy or MAE), the dose-study
    figure at ``figure_path`` (``.png`` + ``.svg``) and, if given, the headline figure
    ``headline_figure`` (also both formats).
    """
    from interface4d import figures

    out_dir = Path(out_dir)
    cls = json.loads(Path(classifier_json).read_text())
    reg = json.loads(Path(regression_json).read_text()) if regression_json else None
    rows = [
        {
            "quantity": "classification accuracy (validation)",
            "value": cls["accuracy"],
            "detail": f"{cls['n_val_examples']} examples from {cls['n_val_cells']} held-out "
            f"cells, split by structure; AUC {_num(cls['auc'])}, ECE {_num(cls['ece'])}",
        },
        {
            "quantity": "classification accuracy per held-out cell (mean over its lines)",
            "value": cls.get("cell_accuracy"),
            "detail": f"{cls['n_val_cells']} cells",
        },
    ]
    headline: dict[str, Any] = {
        "campaign": campaign,
        "classification": {
            "accuracy": cls["accuracy"],
            "cell_accuracy": cls.get("cell_accuracy"),
            "auc": cls["auc"],
            "ece": cls["ece"],
            "n_val_examples": cls["n_val_examples"],
            "n_val_cells": cls["n_val_cells"],
            "confusion_matrix": cls["confusion_matrix"],
        },
    }
    dose_rows = [
        {
            "network": "classifier",
            "thickness": "all",
            "dose": r["dose"],
            "dose_e_per_pattern": r["dose_e_per_pattern"],
            "accuracy": r["accuracy"],
            "mae": None,
        }
        for r in cls["dose"]
    ]
    if reg is not None:
        headline["regression"] = {
            "reference_thickness": reg["reference_thickness"],
            "mae_by_thickness": {_fmt(r["thickness"]): r["mae"] for r in reg["per_thickness"]},
            "n_val_by_thickness": {_fmt(r["thickness"]): r["n_val"] for r in reg["per_thickness"]},
            "transfer_mae_by_thickness": {
                _fmt(r["data_thickness"]): r["mae"] for r in reg["transfer"]["curve"]
            },
        }
        for r in reg["per_thickness"]:
            rows.append(
                {
                    "quantity": f"step-fraction MAE, {_fmt(r['thickness'])} Å model",
                    "value": r["mae"],
                    "detail": f"{r['n_val']} validation examples ({r['n_val_cells']} cells)",
                }
            )
        for r in reg["transfer"]["curve"]:
            rows.append(
                {
                    "quantity": f"transfer MAE, {_fmt(reg['reference_thickness'])} Å model on "
                    f"{_fmt(r['data_thickness'])} Å",
                    "value": r["mae"],
                    "detail": f"{r['n']} validation examples",
                }
            )
        dose_rows += [
            {
                "network": "regressor",
                "thickness": _fmt(r["thickness"]),
                "dose": r["dose"],
                "dose_e_per_pattern": r["dose_e_per_pattern"],
                "accuracy": None,
                "mae": r["mae"],
            }
            for r in reg["dose"]
        ]
    headline["sources"] = {
        "classifier": {"path": str(classifier_json), "sha256": file_sha256(classifier_json)},
        **(
            {"regression": {"path": str(regression_json), "sha256": file_sha256(regression_json)}}
            if regression_json
            else {}
        ),
    }
    headline["created"] = datetime.now(UTC).isoformat()
    _write_json(out_dir / "headline.json", headline)
    _write_csv(out_dir / "headline.csv", pd.DataFrame(rows))
    dose_df = pd.DataFrame(dose_rows)
    _write_csv(out_dir / "dose_study.csv", dose_df)
    figures.dose_study(dose_df, Path(figure_path))
    if headline_figure is not None:
        figures.headline(headline, Path(headline_figure))
    return headline


def _num(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def load_headline(path: str | Path) -> dict[str, Any] | None:
    """The headline numbers for the report's top page, or None before they exist."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


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
