"""Evaluation figures (Oxley et al. 2020, Figs. 3-5, and the dose study).

Object-oriented matplotlib only (``Figure``, no ``pyplot``, no global backend change). Every
figure is written twice, ``<stem>.png`` (150 dpi, for the report) and ``<stem>.svg``. Inputs are
the plain tables and dicts :mod:`interface4d.evaluate` computes; nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DPI = 150
CLASS_NAMES = ("step", "diffusion")
CLASS_LABELS = {"step": "buried step", "diffusion": "intermixing"}


def save(fig: Figure, stem: str | Path) -> Path:
    """Write ``stem.png`` and ``stem.svg``; returns the PNG path."""
    stem = Path(stem)
    if stem.suffix in (".png", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=DPI)
    fig.savefig(stem.with_suffix(".svg"))
    return png


def _empty(ax, text: str = "no validation examples") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _t(x: Any) -> str:
    return f"{float(x):g}"


def _confusion(ax, cm: np.ndarray):
    """A 2 x 2 confusion matrix (rows true, columns predicted) with counts and row fractions."""
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    for i in range(2):
        for j in range(2):
            frac = cm[i, j] / cm[i].sum() if cm[i].sum() else float("nan")
            ax.text(
                j, i, f"{int(cm[i, j])}\n({frac:.0%})", ha="center", va="center",
                color="w" if cm[i, j] > cm.max() / 2 else "k", fontsize=9,
            )  # fmt: skip
    labels = [CLASS_LABELS[c] for c in CLASS_NAMES]
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return im


# --------------------------------------------------------------------------- training


def training_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]], task: str, stem: str | Path
) -> Path:
    """Loss and accuracy (classify) or MAE (regress) per epoch, training vs the development
    cells that early stopping and model selection look at (Fig. 3b; the validation cells are
    not seen in training). One column per network in ``histories``."""
    metric = "accuracy" if task == "classify" else "mae"
    names = list(histories) or ["(none)"]
    fig = Figure(figsize=(4.2 * min(len(names), 4), 5.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, len(names), squeeze=False))
    for j, name in enumerate(names):
        hist = histories.get(name, [])
        ax_l, ax_m = axes[0, j], axes[1, j]
        if not hist:
            _empty(ax_l, "no history")
            _empty(ax_m, "no history")
            continue
        ep = [h["epoch"] for h in hist]
        ax_l.plot(ep, [h["loss"] for h in hist], label="training")
        ax_l.plot(ep, [h["dev_loss"] for h in hist], label="development")
        ax_l.set_ylabel("loss")
        title = name if task == "classify" else f"{name} Å model"
        ax_l.set_title(title, fontsize=9)
        ax_l.legend(fontsize=7)
        ax_m.plot(ep, [h[metric] for h in hist], label="training")
        ax_m.plot(ep, [h[f"dev_{metric}"] for h in hist], label="development")
        ax_m.set_xlabel("epoch")
        ax_m.set_ylabel("accuracy" if metric == "accuracy" else "MAE (step fraction)")
        if metric == "accuracy":
            ax_m.set_ylim(0, 1.02)
            ax_m.axhline(0.95, color="0.6", ls=":", lw=0.8)
        dev = [h["dev_loss"] for h in hist]
        if any(math.isfinite(v) for v in dev):
            best = int(np.nanargmin(dev))
            for ax in (ax_l, ax_m):
                ax.axvline(ep[best], color="r", ls=":", lw=0.8)
            ax_m.set_title(
                f"kept: epoch {ep[best]} (dev {metric} {hist[best][f'dev_{metric}']:.3f})",
                fontsize=8,
            )
    fig.suptitle(
        "Training curves (development cells carved from the training cells; dotted: kept epoch)",
        fontsize=10,
    )
    return save(fig, stem)


# --------------------------------------------------------------------------- classification


def classifier_performance(result: Mapping[str, Any], stem: str | Path) -> Path:
    """Confusion matrix, ROC curve with AUC, and reliability diagram with ECE."""
    fig = Figure(figsize=(12.5, 4.0), layout="constrained")
    ax_c, ax_r, ax_k = fig.subplots(1, 3)
    im = _confusion(ax_c, np.asarray(result["confusion_matrix"], dtype=float))
    per_cell = result.get("cell_accuracy")
    ax_c.set_title(
        f"accuracy {result['accuracy']:.3f} ({result['n_val_examples']} examples)\n"
        + (
            f"per cell (mean over lines) {per_cell:.3f} ({result['n_val_cells']} cells)"
            if per_cell is not None
            else f"{result['n_val_cells']} cells"
        ),
        fontsize=9,
    )
    fig.colorbar(im, ax=ax_c, shrink=0.8)
    fpr, tpr = result["roc"]["fpr"], result["roc"]["tpr"]
    if len(fpr):
        ax_r.plot(fpr, tpr, drawstyle="steps-post", label="classifier")
        ax_r.plot([0, 1], [0, 1], color="0.6", ls="--", lw=0.8, label="chance")
        ax_r.set_title(f"ROC (intermixing = positive): AUC {result['auc']:.3f}", fontsize=9)
        ax_r.legend(fontsize=7, loc="lower right")
    else:
        _empty(ax_r, "one class only: no ROC")
    ax_r.set_xlabel("false positive rate")
    ax_r.set_ylabel("true positive rate")
    ax_r.set_aspect("equal")
    rel = result["reliability"]
    edges = np.asarray(rel["bin_edges"], float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    acc = np.asarray([np.nan if a is None else a for a in rel["accuracy"]], float)
    count = np.asarray(rel["count"])
    ax_k.bar(centres, np.nan_to_num(acc), width=np.diff(edges), edgecolor="k", alpha=0.7)
    ax_k.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.8, label="perfect calibration")
    for c, a, n in zip(centres, acc, count, strict=True):
        if n:
            ax_k.text(c, min(np.nan_to_num(a) + 0.02, 0.97), str(int(n)), ha="center", fontsize=6)
    ax_k.set_xlim(0.45, 1.0)
    ax_k.set_ylim(0, 1.02)
    ax_k.set_xlabel("confidence (top-class softmax)")
    ax_k.set_ylabel("accuracy in bin")
    ax_k.set_title(f"reliability: ECE {result['ece']:.3f} (counts on bars)", fontsize=9)
    ax_k.legend(fontsize=7, loc="upper left")
    return save(fig, stem)


def accuracy_by_group(result: Mapping[str, Any], stem: str | Path) -> Path:
    """Where the classifier fails: accuracy per thickness, step fraction and Ti fraction."""
    fig = Figure(figsize=(12.5, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    specs = (
        ("by_thickness", "thickness", "thickness (Å)", "all validation examples"),
        ("by_step_fraction", "step_fraction", "step depth / thickness", "buried-step examples"),
        ("by_ti_fraction", "ti_fraction", "Ti fraction in the first AlO$_2$ layer", "intermixing"),
    )
    for ax, (key, col, xlabel, title) in zip(axes, specs, strict=True):
        groups = result.get(key) or []
        if not groups:
            _empty(ax)
        else:
            xs = [g[col] for g in groups]
            ys = [g["accuracy"] for g in groups]
            ax.plot(xs, ys, "o-")
            for x, y, g in zip(xs, ys, groups, strict=True):
                ax.annotate(
                    f"n={g['n']}", (x, y), xytext=(0, -11), textcoords="offset points",
                    ha="center", fontsize=6,
                )  # fmt: skip
        ax.axhline(result["accuracy"], color="0.5", ls=":", lw=0.8)
        ax.set_ylim(-0.05, 1.1)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("validation accuracy")
    return save(fig, stem)


def _montage(ax, stack: np.ndarray, n: int = 8, vmax: float | None = None) -> None:
    """``n`` patterns of a (nx, k, k) stack side by side, evenly spaced along the scan."""
    picks = np.unique(np.round(np.linspace(0, len(stack) - 1, min(n, len(stack)))).astype(int))
    row = np.concatenate([np.pad(stack[i].T, ((1, 1), (1, 1)), constant_values=np.nan)
                          for i in picks], axis=1)  # fmt: skip
    ax.imshow(row, origin="lower", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _example_rows(x: np.ndarray, titles: Sequence[str], suptitle: str, stem) -> Path:
    """One row per example: 8 of its patterns along the scan, titled."""
    n = max(len(titles), 1)
    fig = Figure(figsize=(11.0, 1.9 * n + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n, 1))
    if not len(titles):
        _empty(axes[0])
    for ax, xi, title in zip(axes, x, titles, strict=False):
        _montage(ax, xi, vmax=float(np.percentile(xi, 99.5)))
        ax.set_title(title, fontsize=8, loc="left")
    fig.suptitle(suptitle, fontsize=9)
    return save(fig, stem)


def classifier_examples(x: np.ndarray, rows: pd.DataFrame, stem: str | Path) -> Path:
    """Validation examples as the network sees them (augmented stacks along the scan) with the
    softmax confidence for each class (Fig. 3c)."""
    titles = []
    for _, r in rows.iterrows():
        detail = (
            f"step at {r['step_fraction']:.2f} of the thickness"
            if r["kind"] == "step"
            else f"Ti fraction {r['ti_fraction']:g}"
        )
        verdict = "correct" if bool(r["correct"]) else "WRONG"
        titles.append(
            f"{r['cell']} line {int(r['line'])}: true {CLASS_LABELS[r['kind']]} ({detail}), "
            f"P(step) = {r['p_step']:.3f}, P(intermixing) = {r['p_diffusion']:.3f}: {verdict}"
        )
    return _example_rows(
        x,
        titles,
        "Example validation inputs (8 of the patterns along the line, noise as seen by the "
        "network) and predictions",
        stem,
    )


def saliency_maps(
    x: np.ndarray,
    sal: np.ndarray,
    rows: pd.DataFrame,
    stem: str | Path,
    scan_x: Sequence[float] | None = None,
) -> Path:
    """Saliency: |d P(predicted class) / d input| integrated along the scan axis (a k x k map
    over the detector, Fig. 3d), its profile along the scan, and the mean input pattern.
    ``scan_x``: probe positions (Å from the interface) of the stack, for the profile's axis."""
    n = max(len(rows), 1)
    fig = Figure(figsize=(11.0, 3.2 * n), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 3, squeeze=False))
    if not len(rows):
        for ax in axes[0]:
            _empty(ax)
    for ax_row, xi, si, (_, r) in zip(axes, x, sal, rows.iterrows(), strict=False):
        a0, a1, a2 = ax_row
        im0 = a0.imshow(xi.mean(axis=0).T, origin="lower", cmap="viridis")
        a0.set_title(f"{r['cell']} line {int(r['line'])}: mean input pattern", fontsize=8)
        fig.colorbar(im0, ax=a0, shrink=0.8)
        im1 = a1.imshow(si.sum(axis=0).T, origin="lower", cmap="inferno")
        a1.set_title(
            f"saliency of P({CLASS_LABELS[r['predicted']]}) summed over the scan", fontsize=8
        )
        fig.colorbar(im1, ax=a1, shrink=0.8)
        for a in (a0, a1):
            a.set_xlabel("k$_x$ (px)")
            a.set_ylabel("k$_y$ (px)")
        xs = np.arange(len(si)) if scan_x is None else np.asarray(scan_x, float)
        a2.plot(xs, si.sum(axis=(1, 2)), "o-", ms=3)
        if scan_x is not None:
            a2.axvline(0.0, color="0.5", ls="--", lw=0.8)
        a2.set_xlabel("probe x from the interface (Å)" if scan_x is not None else "probe index")
        a2.set_ylabel("saliency (summed over the pattern)")
        a2.set_title("where along the scan the decision is made", fontsize=8)
    return save(fig, stem)


# --------------------------------------------------------------------------- regression


def _panels(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return -(-n // cols), cols


def regression_scatter(
    df: pd.DataFrame, panel_column: str, stem: str | Path, model_thickness: float | None = None
) -> Path:
    """Predicted vs true step fraction, one panel per thickness, the ideal line in red
    (Fig. 4a-d; with ``model_thickness``, one model on other thicknesses: Fig. 5a-c)."""
    values = sorted(df[panel_column].unique()) if len(df) else []
    rows, cols = _panels(max(len(values), 1))
    fig = Figure(figsize=(3.4 * cols, 3.4 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    if not values:
        _empty(axes[0], "no other thickness to transfer to" if model_thickness else None)
    for ax, v in zip(axes, values, strict=False):
        sub = df[df[panel_column] == v]
        ax.plot([0, 1], [0, 1], color="r", lw=1.0)
        ax.scatter(sub["true"], sub["predicted"], s=14, alpha=0.7, edgecolors="k", linewidths=0.3)
        mae = float(np.mean(sub["abs_error"])) if len(sub) else float("nan")
        label = f"{_t(v)} Å data" if model_thickness is not None else f"{_t(v)} Å"
        ax.set_title(f"{label}: MAE {mae:.3f} (n={len(sub)})", fontsize=9)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_aspect("equal")
        ax.set_xlabel("true step fraction")
        ax.set_ylabel("predicted step fraction")
    for ax in axes[len(values) :]:
        if values:
            ax.set_axis_off()
    if model_thickness is not None:
        fig.suptitle(
            f"Transferability: the {_t(model_thickness)} Å model on other thicknesses' "
            "validation data",
            fontsize=10,
        )
    else:
        fig.suptitle("Step position: each thickness's model on its validation data", fontsize=10)
    return save(fig, stem)


def error_vs_thickness(per_thickness: Sequence[Mapping[str, Any]], stem: str | Path) -> Path:
    """Mean absolute error of each thickness's own model vs thickness (Fig. 5d)."""
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ts = [r["thickness"] for r in per_thickness]
    maes = [np.nan if r["mae"] is None else r["mae"] for r in per_thickness]
    ax.plot(ts, maes, "o-")
    for t, m, r in zip(ts, maes, per_thickness, strict=True):
        ax.annotate(f"n={r['n_val']}", (t, m), xytext=(0, 6), textcoords="offset points",
                    ha="center", fontsize=7)  # fmt: skip
    ax.set_xlabel("thickness (Å)")
    ax.set_ylabel("MAE (step fraction)")
    ax.set_ylim(bottom=0)
    ax.set_title("Step-position error vs thickness (own model)", fontsize=9)
    return save(fig, stem)


def transfer_error(result: Mapping[str, Any], stem: str | Path) -> Path:
    """Error of the reference model vs the data's thickness, with each thickness's own model
    for comparison (Fig. 5e)."""
    ref = result["reference_thickness"]
    curve = result["transfer"]["curve"]
    own = {r["thickness"]: r["mae"] for r in result["per_thickness"]}
    fig = Figure(figsize=(5.4, 3.8), layout="constrained")
    ax = fig.subplots()
    ts = [r["data_thickness"] for r in curve]
    ax.plot(ts, [r["mae"] for r in curve], "o-", label=f"{_t(ref)} Å model")
    ax.plot(ts, [own.get(t) for t in ts], "s--", color="0.5", label="own-thickness model")
    ax.axvline(ref, color="r", lw=0.8, ls=":")
    ax.set_xlabel("thickness of the validation data (Å)")
    ax.set_ylabel("MAE (step fraction)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("Transferability: error vs thickness", fontsize=9)
    return save(fig, stem)


def regression_examples(
    x: np.ndarray, rows: pd.DataFrame, thickness: float, stem: str | Path
) -> Path:
    """Validation inputs (unit-cell averaged stacks) with the true and predicted step fraction
    (Fig. 4e)."""
    titles = [
        f"{r['cell']}: true step fraction {r['true']:.3f} ({r['true'] * thickness:.0f} Å deep), "
        f"predicted {r['predicted']:.3f} ({r['predicted'] * thickness:.0f} Å)"
        for _, r in rows.iterrows()
    ]
    return _example_rows(
        x,
        titles,
        f"Example step-position predictions, {_t(thickness)} Å (unit-cell averaged patterns "
        "along the scan)",
        stem,
    )


# --------------------------------------------------------------------------- dose


def dose_study(
    df: pd.DataFrame, stem: str | Path, training_doses: Sequence[float] | None = None
) -> Path:
    """Classification accuracy and step-position MAE vs electron dose per pattern, each network
    (solid) beside its baseline (dashed, the same colour); the noiseless value as a horizontal
    line; the doses the networks train on (``training_doses``) shaded. MAE on a log axis: below
    the training doses it can grow by orders of magnitude."""
    fig = Figure(figsize=(10.5, 3.8), layout="constrained")
    ax_a, ax_m = fig.subplots(1, 2)
    for ax, net, col, ylabel in (
        (ax_a, "classifier", "accuracy", "classification accuracy"),
        (ax_m, "regressor", "mae", "MAE (step fraction)"),
    ):
        sub = df[df["network"] == net] if len(df) else df
        if sub is None or not len(sub):
            _empty(ax, f"no {net}")
            continue
        if training_doses:
            ax.axvspan(*training_doses, color="0.92", zorder=0, label="training doses")
        for i, (label, grp) in enumerate(sub.groupby("thickness", sort=True)):
            name = "all thicknesses" if label == "all" else f"{label} Å"
            for model, style in (("network", "o-"), ("baseline", "s--")):
                rows = grp[grp["model"] == model] if "model" in grp else grp
                if not len(rows):  # no baseline in the study: no empty legend entry
                    continue
                d = rows["dose_e_per_pattern"].astype(float)
                finite = rows[np.isfinite(d)]
                tag = name if model == "network" else f"{name}, baseline"
                ax.plot(finite["dose_e_per_pattern"], finite[col], style, color=f"C{i}",
                        label=tag, ms=4 if model == "baseline" else 6, lw=1.0)  # fmt: skip
                clean = rows[~np.isfinite(d)]
                if len(clean) and not math.isnan(float(clean[col].iloc[0])):
                    ls = ":" if model == "network" else (0, (1, 4))
                    ax.axhline(float(clean[col].iloc[0]), color=f"C{i}", ls=ls, lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("dose (electrons per pattern)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6)
        if col == "accuracy":
            ax.set_ylim(0.4, 1.02)
            ax.axhline(0.95, color="0.6", ls="--", lw=0.7)
        else:
            ax.set_yscale("log")
    fig.suptitle(
        "Dose study: validation data at a fixed dose; networks solid, linear baselines dashed "
        "(dotted: noiseless; shaded: training doses)",
        fontsize=9,
    )
    return save(fig, stem)


# --------------------------------------------------------------------------- headline


def headline(h: Mapping[str, Any], stem: str | Path) -> Path:
    """The campaign's headline numbers at a glance: the classifier's accuracies (per line, per
    cell, per cell without the near-exit steps) and the step-position error per thickness, each
    with its 95 % interval and count, beside the linear baseline's."""
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    ax_c, ax_r = fig.subplots(1, 2, width_ratios=[1.2, 1.3])
    c = h.get("classification") or {}
    b = c.get("baseline") or {}
    keys = [
        ("accuracy", "per line"),
        ("cell_accuracy", "per cell"),
        ("cell_accuracy_detectable", "per cell,\nsteps <= 0.9"),
    ]
    xs = np.arange(len(keys))
    for off, src, label, color in ((-0.17, c, "network", "C0"), (0.17, b, "baseline", "C7")):
        vals = [src.get(k) for k, _ in keys]
        if all(v is None for v in vals):
            continue
        v = np.array([np.nan if x is None else x for x in vals], float)
        cis = [src.get(f"{k}_ci95") or [np.nan, np.nan] for k, _ in keys]
        lo = v - np.array([ci[0] for ci in cis], float)
        hi = np.array([ci[1] for ci in cis], float) - v
        ax_c.bar(xs + off, v, width=0.32, color=color, label=label)
        ax_c.errorbar(xs + off, v, yerr=[lo, hi], fmt="none", ecolor="k", capsize=3, lw=0.8)
    for x, (k, _) in zip(xs, keys, strict=True):
        n = c.get(f"{k}_n")
        if n is not None:
            ax_c.text(x, 0.03, f"n={n}", ha="center", fontsize=7, color="w")
    ax_c.set_xticks(xs, [lab for _, lab in keys], fontsize=8)
    ax_c.set_ylim(0, 1.05)
    ax_c.axhline(0.95, color="0.5", ls=":", lw=0.8)
    ax_c.set_ylabel("accuracy on held-out cells")
    ax_c.legend(fontsize=7, loc="lower right")
    ax_c.set_title("classification (bars: 95 % Wilson interval)", fontsize=9)
    r = h.get("regression") or {}
    if r:
        own = {float(t): m for t, m in r["mae_by_thickness"].items()}
        ts = sorted(own)
        for off, key, label, color in (
            (-1.5, "mae", "network", "C0"),
            (1.5, "baseline_mae", "ridge baseline", "C7"),
        ):
            vals = r.get(f"{key}_by_thickness") or {}
            cis = r.get(f"{key}_ci95_by_thickness") or {}
            v = np.array([np.nan if vals.get(_t(t)) is None else vals[_t(t)] for t in ts])
            if np.isnan(v).all():
                continue
            ci = [cis.get(_t(t)) or [np.nan, np.nan] for t in ts]
            ax_r.errorbar(
                np.array(ts) + off, v,
                yerr=[v - np.array([a[0] for a in ci]), np.array([a[1] for a in ci]) - v],
                fmt="o-", color=color, capsize=3, label=label,
            )  # fmt: skip
        tr = {float(t): m for t, m in r["transfer_mae_by_thickness"].items()}
        ts2 = sorted(tr)
        ref = r.get("reference_thickness")
        ax_r.plot(
            ts2, [tr[t] for t in ts2], "s--", color="C1", label=f"{_t(ref)} Å model (transfer)"
        )
        ncells = r.get("n_val_cells_by_thickness") or {}
        for t in ts:
            ax_r.annotate(f"n={ncells.get(_t(t), '?')}", (t, own[t]), xytext=(0, 7),
                          textcoords="offset points", ha="center", fontsize=7)  # fmt: skip
        if ref is not None:
            ax_r.axvline(float(ref), color="r", lw=0.8, ls=":")
        ax_r.axhline(0.08, color="0.5", ls=":", lw=0.8)
        ax_r.set_xlabel("thickness (Å)")
        ax_r.set_ylabel("MAE (step fraction)")
        ax_r.set_ylim(bottom=0)
        ax_r.legend(fontsize=7)
        ax_r.set_title("step position: held-out error (95 % bootstrap over cells)", fontsize=9)
    else:
        _empty(ax_r, "no step-position models")
    fig.suptitle(f"Headline numbers, campaign {h.get('campaign') or ''}", fontsize=10)
    return save(fig, stem)


def detectability(df: pd.DataFrame, stem: str | Path) -> Path:
    """Which buried steps are visible: for every held-out step cell, the classifier's accuracy
    over its lines and the step-position error against the step's distance from the exit
    surface (Å), one colour per thickness; open symbols: the linear baseline."""
    fig = Figure(figsize=(10.5, 3.8), layout="constrained")
    ax_a, ax_e = fig.subplots(1, 2)
    if df is None or not len(df):
        _empty(ax_a, "no held-out step cells")
        _empty(ax_e, "no held-out step cells")
        return save(fig, stem)
    for i, (t, grp) in enumerate(df.groupby("thickness", sort=True)):
        grp = grp.sort_values("distance_from_exit_A")
        d = grp["distance_from_exit_A"]
        ax_a.plot(d, grp["line_accuracy"], "o-", color=f"C{i}", label=f"{_t(t)} Å")
        ax_a.plot(d, grp["line_accuracy_baseline"], "o", mfc="none", color=f"C{i}")
        if "position_abs_error" in grp:
            ax_e.plot(d, grp["position_abs_error"], "o-", color=f"C{i}", label=f"{_t(t)} Å")
            if "position_abs_error_baseline" in grp:
                ax_e.plot(d, grp["position_abs_error_baseline"], "o", mfc="none", color=f"C{i}")
        near = grp[grp["near_exit"]]
        if len(near):
            ax_a.plot(near["distance_from_exit_A"], near["line_accuracy"], "x", color="r", ms=8)
    ax_a.set_ylim(-0.02, 1.05)
    ax_a.set_xlabel("step distance from the exit surface (Å)")
    ax_a.set_ylabel("classifier accuracy over the cell's lines")
    ax_a.legend(fontsize=7)
    ax_a.set_title("step vs intermixing (red x: last 10 % of the thickness)", fontsize=9)
    ax_e.set_xlabel("step distance from the exit surface (Å)")
    ax_e.set_ylabel("|error| of the step fraction")
    ax_e.set_ylim(bottom=0)
    ax_e.set_title("step position (open: ridge baseline)", fontsize=9)
    if ax_e.has_data():
        ax_e.legend(fontsize=7)
    fig.suptitle("Detectability of buried steps on held-out cells", fontsize=10)
    return save(fig, stem)
