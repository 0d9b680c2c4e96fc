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

The steps live in their own modules, each imported here (never the other way):
:mod:`interface4d.validation` (the network, the augmented validation inputs, predictions,
saliency), :mod:`interface4d.celltables` (per-example and per-cell tables, detectability),
:mod:`interface4d.scores` (accuracies, errors, intervals, comparison with the baseline),
:mod:`interface4d.dosestudy` (the dose study) and :mod:`interface4d.evalreport` (the metrics
files, the headline table and its sentences).

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

from interface4d import metrics
from interface4d.celltables import classifier_table, detectability, example_rows, regression_rows
from interface4d.dosestudy import (
    DOSE_PROTOCOL,
    classifier_dose_rows,
    dose_losses,
    dose_study_rows,
    dose_verdict,
    evaluation_doses,
    regression_dose_rows,
)
from interface4d.evalreport import (
    fmt,
    headline_numbers,
    headline_rows,
    jsonable,
    provenance,
    sources,
    write_csv,
    write_json,
)
from interface4d.headline import num
from interface4d.saliency import load_model, saliency
from interface4d.scores import classifier_metrics, thickness_scores
from interface4d.validation import (
    network_predictor,
    predict_split,
    read_manifest,
    val_draw_keys,
    validation_examples,
)

log = logging.getLogger("interface4d.evaluate")

DEFAULT_REFERENCE = 200.0  # Angstrom, the paper's transferability model


# --------------------------------------------------------------------------- config


def complete_evaluation_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``evaluation`` block with the schema's defaults filled in (unknown keys and bad values
    are config errors naming the key), doses sorted."""
    from interface4d.config import complete_block

    out = complete_block("evaluation", cfg)
    out["doses"] = sorted(float(d) for d in out["doses"])
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
        f"thickness (models exist for {[fmt(t) for t in avail]} Å)"
    )


def _configs(
    training_cfg: Mapping[str, Any], evaluation_cfg: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The completed ``evaluation`` and ``training`` blocks."""
    from interface4d.train import complete_training_config

    cfg = complete_evaluation_config(evaluation_cfg)
    return cfg, complete_training_config(training_cfg)


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
    """Evaluate the step-vs-intermixing classifier and its linear baseline on the validation
    split (module doc).

    Writes ``metrics_dir/classifier.json``, ``classifier_predictions.csv``,
    ``classifier_dose.csv`` and ``figures_dir/{training,performance,accuracy_by_group,
    examples,saliency}.{png,svg}``.
    """
    from interface4d import baseline
    from interface4d.checkpoints import read_history_csv

    cfg, training = _configs(training_cfg, evaluation_cfg)
    aug = training["augment"]
    metrics_dir, figures_dir = Path(metrics_dir), Path(figures_dir)
    model = load_model(model_path)
    base = baseline.fit(dataset_h5, "classify", training)
    log.info("classifier baseline: %s", base.info["hyperparameters"])
    doses = evaluation_doses(cfg["doses"])
    predictors = {"network": network_predictor(model, cfg["batch_size"]), "baseline": base.predict}
    idx, y, outs = predict_split(predictors, dataset_h5, aug, doses, cfg["batch_size"])
    y = y.astype(np.int64)
    if len(y) == 0:
        raise ValueError(f"{dataset_h5}: the validation split is empty; nothing to evaluate")
    meta = read_manifest(manifest_csv).loc[idx]
    prob = outs["network"]["val"]
    df = classifier_table(idx, y, prob, outs["baseline"]["val"], meta)
    dose_rows = classifier_dose_rows(y, outs, doses)
    dose_df = pd.DataFrame(dose_rows)
    history = read_history_csv(history_csv)
    result = {
        **classifier_metrics(df, y, prob, base.info),
        "dose": [r for r in dose_rows if r["model"] == "network"],
        "dose_baseline": [r for r in dose_rows if r["model"] == "baseline"],
        "dose_protocol": DOSE_PROTOCOL,
        "final_epoch": history[-1] if history else None,
        "validation_augmentation": dict(aug),
        "provenance": provenance(
            {"model": model_path, "dataset": dataset_h5, "history": history_csv}, cfg
        ),
    }
    result["figure_examples"] = _classifier_figures(
        result, history, df, model, dataset_h5, cfg, aug, figures_dir
    )
    write_json(metrics_dir / "classifier.json", result)
    write_csv(metrics_dir / "classifier_predictions.csv", df)
    write_csv(metrics_dir / "classifier_dose.csv", dose_df)
    return ClassifierResult(result, df, dose_df)


def _classifier_figures(
    result: Mapping[str, Any],
    history: list,
    df: pd.DataFrame,
    model,
    dataset_h5: str | Path,
    cfg: Mapping[str, Any],
    aug: Mapping[str, Any],
    figures_dir: Path,
) -> list[int]:
    """Training curves, performance, accuracy by group, examples with their confidence and
    saliency maps (Fig. 3b-d); returns the dataset rows shown as examples."""
    from interface4d.figures import evaluation as figures

    figures.training_curves({"classifier": history}, "classify", figures_dir / "training")
    figures.classifier_performance(result, figures_dir / "performance")
    figures.accuracy_by_group(result, figures_dir / "accuracy_by_group")
    picks = example_rows(df, int(cfg["examples_per_class"]), int(aug["val_seed"]))
    x_in, scan_x = validation_examples(dataset_h5, picks, aug)
    ex = df.set_index("index").loc[picks]
    figures.classifier_examples(x_in, ex, figures_dir / "examples")
    sal = saliency(model, x_in)
    figures.saliency_maps(x_in, sal, ex, figures_dir / "saliency", scan_x=scan_x)
    return [int(i) for i in picks]


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
    from interface4d.checkpoints import read_history_csv

    n = len(thicknesses)
    if not (len(models) == len(datasets) == len(manifests) == len(histories) == n) or n == 0:
        raise ValueError("need one model, dataset, manifest and history per thickness")
    cfg, training = _configs(training_cfg, evaluation_cfg)
    aug = training["augment"]
    ts = [float(t) for t in thicknesses]
    ref = reference_thickness(cfg["reference_thickness"], ts)
    metrics_dir, figures_dir = Path(metrics_dir), Path(figures_dir)
    rows: list[pd.DataFrame] = []
    dose_rows: list[dict[str, Any]] = []
    per_thickness: list[dict[str, Any]] = []
    ref_model = None
    for t, model_path, data_path, man_path in zip(ts, models, datasets, manifests, strict=True):
        model = load_model(model_path)
        if t == ref:
            ref_model = model
        own, entry, own_dose = _evaluate_thickness(t, model, data_path, man_path, training, cfg)
        rows.append(own)
        per_thickness.append(entry)
        dose_rows += own_dose
    assert ref_model is not None
    transfer_rows, transfer = _transfer(
        ref, ref_model, ts, datasets, manifests, per_thickness, cfg, aug
    )
    df = pd.concat(rows + transfer_rows, ignore_index=True)
    dose_df = pd.DataFrame(dose_rows)
    hist = {fmt(t): read_history_csv(h) for t, h in zip(ts, histories, strict=True)}
    result = {
        "task": "regress",
        "split": "val",
        "reference_thickness": ref,
        "per_thickness": per_thickness,
        "transfer": {"model_thickness": ref, "curve": transfer},
        "dose": dose_rows,
        "final_epochs": {t: (h[-1] if h else None) for t, h in hist.items()},
        "validation_augmentation": dict(aug),
        "provenance": provenance(
            {
                **{f"model_t{fmt(t)}": m for t, m in zip(ts, models, strict=True)},
                **{f"dataset_t{fmt(t)}": d for t, d in zip(ts, datasets, strict=True)},
            },
            cfg,
        ),
    }
    result["figure_examples"] = _regression_figures(
        result, hist, df, datasets[ts.index(ref)], aug, figures_dir
    )
    write_json(metrics_dir / "regression.json", result)
    write_csv(metrics_dir / "regression_predictions.csv", df)
    write_csv(metrics_dir / "regression_dose.csv", dose_df)
    return RegressionResult(result, df, dose_df)


def _evaluate_thickness(
    t: float,
    model,
    data_path: str | Path,
    man_path: str | Path,
    training: Mapping[str, Any],
    cfg: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any], list[dict[str, Any]]]:
    """One thickness's model and its ridge baseline on that thickness's validation examples at
    every dose: (prediction rows, scores, dose-study rows)."""
    from interface4d import baseline

    aug = training["augment"]
    doses = evaluation_doses(cfg["doses"], int(cfg["val_draws"]))
    base = baseline.fit(data_path, "regress", training)
    predictors = {
        "network": network_predictor(model, cfg["batch_size"]),
        "baseline": base.predict,
    }
    idx, y, outs = predict_split(predictors, data_path, aug, doses, cfg["batch_size"])
    man = read_manifest(man_path).loc[idx]
    keys = val_draw_keys(int(cfg["val_draws"]))
    val = {name: np.stack([outs[name][k] for k in keys]) for name in predictors}
    rows = regression_rows(t, t, idx, y, val["network"], man, val["baseline"])
    cells = man["cell"].to_numpy()
    entry = thickness_scores(t, y, val, cells, int(aug["val_seed"]), base.info)
    return rows, entry, regression_dose_rows(t, y, outs, doses)


def _transfer(
    ref: float,
    ref_model,
    ts: Sequence[float],
    datasets: Sequence[str | Path],
    manifests: Sequence[str | Path],
    per_thickness: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
    aug: Mapping[str, Any],
) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """The reference thickness's model on every other thickness's validation examples:
    (prediction rows, the transfer curve of MAE against data thickness)."""
    rows: list[pd.DataFrame] = []
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
        rows.append(regression_rows(ref, t, idx, y, outs["network"]["val"], man))
        transfer.append(
            {
                "data_thickness": t,
                "mae": metrics.mae(y, outs["network"]["val"]) if len(y) else float("nan"),
                "n": len(y),
            }
        )
    return rows, transfer


def _regression_figures(
    result: Mapping[str, Any],
    hist: Mapping[str, list],
    df: pd.DataFrame,
    ref_path: str | Path,
    aug: Mapping[str, Any],
    figures_dir: Path,
) -> list[int]:
    """Training curves, predicted vs true, error against thickness, transferability and two
    validation examples of the reference thickness (Figs. 4-5); returns their dataset rows."""
    from interface4d.figures import evaluation as figures

    ref = result["reference_thickness"]
    figures.training_curves(hist, "regress", figures_dir / "training")
    own = df[df["model_thickness"] == df["data_thickness"]]
    figures.regression_scatter(own, "model_thickness", figures_dir / "predicted_vs_true")
    figures.error_vs_thickness(result["per_thickness"], figures_dir / "error_vs_thickness")
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
    x_in, _ = validation_examples(ref_path, picks, aug)
    figures.regression_examples(
        x_in, ref_rows.set_index("index").loc[picks], ref, figures_dir / "examples"
    )
    return [int(i) for i in picks]


# --------------------------------------------------------------------------- summary


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
    from interface4d.figures import evaluation as figures

    out_dir = Path(out_dir)
    cls = json.loads(Path(classifier_json).read_text())
    reg = json.loads(Path(regression_json).read_text()) if regression_json else None
    rows = headline_rows(cls, reg)
    headline = headline_numbers(cls, reg, campaign)
    dose_rows = dose_study_rows(cls, reg)
    headline["sources"] = sources(classifier_json, regression_json)
    headline["created"] = datetime.now(UTC).isoformat()
    if classifier_predictions is not None:
        det = detectability(classifier_predictions, regression_predictions)
        write_csv(out_dir / "detectability.csv", det)
        if detectability_figure is not None:
            figures.detectability(det, Path(detectability_figure))
    trained_on = (cls.get("validation_augmentation") or {}).get("dose")
    losses = dose_losses(dose_rows, trained_on)
    headline["dose_study"] = {"training_doses": trained_on, "network_worse": losses}
    if any(r["model"] == "baseline" for r in dose_rows):
        headline["verdict"].append(dose_verdict(losses, trained_on))
    write_json(out_dir / "headline.json", headline)
    write_csv(out_dir / "headline.csv", pd.DataFrame(rows))
    dose_df = pd.DataFrame(dose_rows)
    write_csv(out_dir / "dose_study.csv", dose_df)
    figures.dose_study(dose_df, Path(figure_path), trained_on)
    if headline_figure is not None:
        figures.headline(headline, Path(headline_figure))
    return headline


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
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
    c.set_defaults(step=cmd_classify)
    c.add_argument("--model", required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--manifest", required=True)
    c.add_argument("--history", required=True)
    r = sub.add_parser("regress", parents=[common], help="the step-position regressors")
    r.set_defaults(step=cmd_regress)
    r.add_argument("--thicknesses", nargs="+", type=float, required=True)
    r.add_argument("--models", nargs="+", required=True)
    r.add_argument("--datasets", nargs="+", required=True)
    r.add_argument("--manifests", nargs="+", required=True)
    r.add_argument("--histories", nargs="+", required=True)
    s = sub.add_parser("summary", help="headline numbers and the dose study (no TensorFlow)")
    s.set_defaults(step=cmd_summary)
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
    """The command line: parse ``argv``, then :func:`run`."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """``interface4d evaluate classify|regress|summary`` on the parsed ``args``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        args.step(args)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"interface4d evaluate: {exc}") from None
    return 0


def cmd_summary(args: argparse.Namespace) -> None:
    """``interface4d evaluate summary``: :func:`summarise`."""
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
    log.info("headline: %s", json.dumps(jsonable(h)))


def _blocks(args: argparse.Namespace) -> tuple[dict, dict]:
    """TensorFlow's threads, then the campaign's training and evaluation blocks."""
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(int(args.threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    return json.loads(args.training_json), json.loads(args.evaluation_json)


def cmd_classify(args: argparse.Namespace) -> None:
    """``interface4d evaluate classify``: :func:`evaluate_classifier`."""
    training, evaluation = _blocks(args)
    paths = (args.model, args.dataset, args.manifest, args.history)
    res = evaluate_classifier(*paths, training, evaluation, args.metrics_dir, args.figures_dir)
    m = res.metrics
    log.info(
        "classifier: validation accuracy %.4f on %d examples, AUC %s",
        m["accuracy"],
        m["n_val_examples"],
        num(m["auc"]),
    )


def cmd_regress(args: argparse.Namespace) -> None:
    """``interface4d evaluate regress``: :func:`evaluate_regressors`."""
    training, evaluation = _blocks(args)
    paths = (args.thicknesses, args.models, args.datasets, args.manifests, args.histories)
    res = evaluate_regressors(*paths, training, evaluation, args.metrics_dir, args.figures_dir)
    for r in res.metrics["per_thickness"]:
        log.info(
            "regressor %s Å: validation MAE %s on %d examples",
            fmt(r["thickness"]),
            num(r["mae"]),
            r["n_val"],
        )


if __name__ == "__main__":
    sys.exit(main())
