"""How many simulations are needed: the network and its linear baseline against the number of
training cells, on a campaign of ~200 cells, and what a leaky (per-example) split does to the
score (issue 12).

The campaign is ``benchmarks/learning_curve.yaml`` (the demo's physics and reduction, 206 cells:
every unit-cell step depth the demo's fractions reach and 7 intermixing seeds), run up to its
datasets::

    snakemake --cores 2 results/datasets/{classify,regress_t100,regress_t150,regress_t200}.h5 \\
        --configfile benchmarks/learning_curve.yaml          # in a copy of the workflow

    .venv/bin/python benchmarks/learning_curve.py --results <that folder>/results \\
        [--fractions 0.25,0.5,1] [--tasks classify,regress] [--threads 2] [--out DIR]

(``--tasks classify`` and ``--tasks regress`` may run at once, one thread each, into the same
``--out``: each writes its rows, the table and figure take all rows found there.)

For each share ``f`` of the training cells (nested: the cells of a smaller share are among those
of a larger one; per stratum, kind x thickness, at least one cell), the network is trained with
the demo's recipe (``config.yaml``'s ``training`` block, one rank, in a fresh process) and the
linear baseline is fitted on the same cells; both are scored on the campaign's validation cells
(the same for every share) with the evaluation's validation augmentation. The classifier is also
trained and scored on the same 206 cells under ``split: random`` (the paper's protocol: lines of
one cell on both sides), against the structure split on the same cells. The regressors see one
unit-cell average per cell, so a random split of them is a split by cell: nothing to compare.

Writes ``learning_curve.json``, ``learning_curve.md`` (the table) and ``learning_curve.png`` to
``--out`` (default ``benchmarks/figures``) and prints the table, with a power-law extrapolation
of each error to the paper campaign's training cells.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from interface4d import baseline, metrics  # noqa: E402
from interface4d.h5io import atomic_h5  # noqa: E402
from interface4d.splits import (  # noqa: E402
    assign_split,
    cell_strata,
    example_key,
    split_hash,
)

# Paper campaign (Oxley et al. 2020; profiles/paper.yaml): ~14,200 cells, 10 % held
# out; the 200 A regressor had 338 training simulations.
PAPER_TRAIN_CELLS = {"classify": 12_800, "regress": 338}


def write_rows(f: h5py.File, dst: Path, rows: np.ndarray, split: np.ndarray) -> None:
    """The ``rows`` of an open dataset file as a new dataset file with the given split."""
    with atomic_h5(dst) as g:
        g.create_dataset("x", data=f["x"][rows], chunks=(1, *f["x"].shape[1:]))
        g["y"], g["cell"], g["line"] = f["y"][()][rows], f["cell"][()][rows], f["line"][()][rows]
        g["split"] = split
        for k, v in f.attrs.items():
            if k != "complete":
                g.attrs[k] = v


def subset(src: Path, dst: Path, fraction: float, split: str = "structure", seed: int = 0):
    """A copy of ``src`` with a nested share of its training cells (all validation rows kept);
    ``split='random'``: every row, re-split at random per example with the campaign's share."""
    with h5py.File(src, "r") as f:
        cells = f["cell"].asstr()[()]
        lines = f["line"][()]
        side = f["split"][()]
        labels = f["y"][()]
        val_share = float(f.attrs.get("val_fraction", 0.25))
        if split == "random":
            keys = [example_key(c, int(ln)) for c, ln in zip(cells, lines, strict=True)]
            s = assign_split(keys, val_share, "random")
            rows = np.arange(len(cells))
            new_side = np.array([s[k] == "val" for k in keys], np.uint8)
        else:
            train_cells = sorted(set(cells[side == 0]))
            label = {c: int(y) for c, y in zip(cells, labels, strict=True)}
            strata = cell_strata(train_cells, [label[c] for c in train_cells])
            groups: dict[str, list[str]] = {}
            for c in train_cells:
                groups.setdefault(strata[c], []).append(c)
            keep = set()
            for members in groups.values():
                members.sort(key=lambda c: (split_hash(f"curve{seed}", c), c))
                keep.update(members[: max(1, round(fraction * len(members)))])
            rows = np.flatnonzero((side == 1) | np.isin(cells, sorted(keep)))
            new_side = side[rows]
        write_rows(f, dst, rows, new_side)
    tr = sorted(set(cells[rows][new_side == 0]))
    return {"train_cells": len(tr), "train_rows": int((new_side == 0).sum()),
            "val_rows": int((new_side == 1).sum())}  # fmt: skip


def train(data: Path, task: str, cfg: dict, out: Path, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "interface4d.train", "--dataset", str(data), "--task", task,
         "--training-json", json.dumps(cfg), "--out-dir", str(out),
         "--checkpoint-dir", str(out / "ckpt"), "--threads", str(threads)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"training {task} on {data} failed")
    prov = json.loads((out / "provenance.json").read_text())
    return {"wall_s": time.perf_counter() - t0, "final": prov["final"]}


def score(data: Path, task: str, cfg: dict, model_path: Path) -> dict:
    """Network and baseline on the validation rows of ``data``."""
    import pandas as pd

    from interface4d.celltables import cell_votes
    from interface4d.saliency import load_model
    from interface4d.train import complete_training_config
    from interface4d.validation import network_predictor, predict_split

    full = complete_training_config(cfg)
    fit = baseline.fit(data, task, full)
    preds = {"network": network_predictor(load_model(model_path)), "baseline": fit.predict}
    _, y, outs = predict_split(preds, data, full["augment"], ["val"], 64)
    with h5py.File(data, "r") as f:
        cells = f["cell"].asstr()[()][f["split"][()] == 1]
    res: dict = {"n_lines": int(len(y)), "n_cells": int(len(set(cells)))}
    for name, per in outs.items():
        p = per["val"]
        if task == "classify":
            pred = (p[:, 1] > 0.5).astype(int)
            yt = y.astype(int)
            df = pd.DataFrame({"cell": cells, "y_true": yt, "p_diffusion": p[:, 1],
                               "step_fraction": np.nan})  # fmt: skip
            cv = cell_votes(df)
            k, n = int((pred == yt).sum()), len(yt)
            kc, nc = int((cv["y_true"] == cv["y_pred"]).sum()), len(cv)
            res[name] = {
                "line_acc": k / n, "line_ci95": metrics.wilson_interval(k, n),
                "balanced": metrics.balanced_accuracy(yt, pred),
                "cell_acc": kc / nc, "cell_ci95": metrics.wilson_interval(kc, nc),
            }  # fmt: skip
        else:
            err = np.abs(np.asarray(p).reshape(-1) - y)
            res[name] = {"mae": float(err.mean()),
                         "mae_ci95": metrics.bootstrap_interval(err, cells)}  # fmt: skip
    return res


def paired_leak(results: Path, work: Path) -> dict | None:
    """The random-split and the structure-split classifiers (and their baselines) on the same
    lines: those held out by both splits. The random split's training saw other lines of these
    cells; the structure split's saw no line of them."""
    rnd, struct = work / "classify-random-1.h5", work / "classify-structure-1.h5"
    models = {"random": work / "classify-random-1" / "model.keras",
              "structure": work / "classify-structure-1" / "model.keras"}  # fmt: skip
    if not all(p.exists() for p in (rnd, struct, *models.values())):
        return None
    from interface4d.saliency import load_model
    from interface4d.train import complete_training_config
    from interface4d.validation import network_predictor, predict_split

    with h5py.File(rnd, "r") as f:
        keys_r = {(c, int(ln)) for c, ln, s in zip(f["cell"].asstr()[()], f["line"][()],
                                                    f["split"][()], strict=True) if s == 1}  # fmt: skip
    both = work / "classify-both-val.h5"
    with h5py.File(struct, "r") as f:
        cells, lines = f["cell"].asstr()[()], f["line"][()]
        rows = np.flatnonzero([(s == 1) and ((c, int(ln)) in keys_r) for c, ln, s in
                               zip(cells, lines, f["split"][()], strict=True)])  # fmt: skip
        write_rows(f, both, rows, np.ones(len(rows), np.uint8))
    training = yaml.safe_load((ROOT / "config.yaml").read_text())["training"]
    full = complete_training_config({k: v for k, v in training.items() if k != "regressor"})
    preds = {f"network, {k} split": network_predictor(load_model(m)) for k, m in models.items()}
    preds["baseline, random split"] = baseline.fit(rnd, "classify", full).predict
    preds["baseline, structure split"] = baseline.fit(struct, "classify", full).predict
    _, y, outs = predict_split(preds, both, full["augment"], ["val"], 64)
    res = {"lines": int(len(y)), "cells": int(len(set(cells[rows])))}
    for name, per in outs.items():
        k = int(((per["val"][:, 1] > 0.5).astype(int) == y.astype(int)).sum())
        res[name] = {"accuracy": k / len(y), "ci95": metrics.wilson_interval(k, len(y))}
    return res


def power_law(ns, errs, n_target):
    """err = a n^-b fitted in log-log to the points with err > 0; (b, err at n_target)."""
    pts = [(n, e) for n, e in zip(ns, errs, strict=True) if e > 0]
    if len(pts) < 2:
        return None
    x, z = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    b, a = np.polyfit(x, z, 1)
    return {"exponent": float(-b), "at_paper_scale": float(math.exp(a) * n_target**b)}


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["task"], r.get("thickness")) for r in rows if r["split"] == "structure"},
                    key=lambda g: (g[0], g[1] or 0))  # fmt: skip
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.2), squeeze=False)
    for ax, (task, t) in zip(axes[0], groups, strict=True):
        sel = [r for r in rows if r["task"] == task and r.get("thickness") == t
               and r["split"] == "structure"]  # fmt: skip
        sel.sort(key=lambda r: r["train_cells"])
        n = [r["train_cells"] for r in sel]
        key, ci = ("line_acc", "line_ci95") if task == "classify" else ("mae", "mae_ci95")
        for name, colour in (("network", "C0"), ("baseline", "C1")):
            v = np.array([r[name][key] for r in sel])
            lo = v - np.array([r[name][ci][0] for r in sel])
            hi = np.array([r[name][ci][1] for r in sel]) - v
            ax.errorbar(n, v, yerr=[lo, hi], marker="o", capsize=3, color=colour, label=name)
        if task == "classify":
            rnd = [r for r in rows if r["task"] == task and r["split"] == "random"]
            for r in rnd:
                ax.plot(r["train_cells"], r["network"]["line_acc"], "s", color="C3",
                        label="network, random split")  # fmt: skip
            ax.set_ylabel("accuracy per line (validation)")
            ax.set_title("step vs intermixing")
        else:
            ax.set_ylabel("step-position MAE (fraction)")
            ax.set_title(f"step position, {t:g} A")
        ax.set_xlabel("training cells")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(rows: list[dict], fits: list[dict]) -> str:
    out = ["| network | split | training cells | network | baseline | validation | wall (s) |",
           "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        if r["task"] == "classify":
            f = "{0[line_acc]:.3f} [{0[line_ci95][0]:.3f}, {0[line_ci95][1]:.3f}] / cell {0[cell_acc]:.3f}"  # noqa: E501
            what = "classifier"
            val = f"{r['n_lines']} lines, {r['n_cells']} cells"
        else:
            f = "{0[mae]:.3f} [{0[mae_ci95][0]:.3f}, {0[mae_ci95][1]:.3f}]"
            what = f"regressor {r['thickness']:g} A"
            val = f"{r['n_cells']} cells"
        out.append(f"| {what} | {r['split']} | {r['train_cells']} | {f.format(r['network'])} | "
                   f"{f.format(r['baseline'])} | {val} | {r['wall_s']:.0f} |")  # fmt: skip
    out += ["", "| network | model | error | exponent b (err ~ n^-b) | at paper scale (n) |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for fi in fits:
        out.append(f"| {fi['what']} | {fi['model']} | {fi['error']} | {fi['exponent']:.2f} | "
                   f"{fi['at_paper_scale']:.4f} ({fi['n']}) |")  # fmt: skip
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml",
                    help="the training recipe: this file's training block")  # fmt: skip
    ap.add_argument("--fractions", default="0.25,0.5,1")
    ap.add_argument("--tasks", default="classify,regress")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "figures")
    args = ap.parse_args()
    training = yaml.safe_load(args.config.read_text())["training"]
    work = args.work or Path(tempfile.mkdtemp(prefix="curve-"))
    work.mkdir(parents=True, exist_ok=True)
    fractions = [float(f) for f in args.fractions.split(",")]
    jobs = []
    tasks = args.tasks.split(",")
    if "classify" in tasks:
        jobs += [("classify", None, "structure", f) for f in fractions]
        jobs.append(("classify", None, "random", 1.0))
    if "regress" in tasks:
        for p in sorted((args.results / "datasets").glob("regress_t*.h5")):
            t = float(p.stem.split("_t")[1])
            jobs += [("regress", t, "structure", f) for f in fractions]
    rows = []
    for task, t, split, f in jobs:
        name = "classify" if task == "classify" else f"regress_t{t:g}"
        src = args.results / "datasets" / f"{name}.h5"
        tag = f"{name}-{split}-{f:g}"
        data = work / f"{tag}.h5"
        sizes = subset(src, data, f, split)
        block = "classifier" if task == "classify" else "regressor"
        other = "regressor" if block == "classifier" else "classifier"
        cfg = {k: v for k, v in training.items() if k != other}
        cfg[block] = {**cfg.get(block, {}), "ranks": None}
        cfg["ranks"] = 1
        r = train(data, task, cfg, work / tag, args.threads)
        s = score(data, task, cfg, work / tag / "model.keras")
        row = {"task": task, "thickness": t, "split": split, "fraction": f, **sizes, **s,
               "wall_s": r["wall_s"], "best_epoch": r["final"].get("best_epoch"),
               "epochs_run": r["final"].get("epochs_run")}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        (args.out).mkdir(parents=True, exist_ok=True)
        (args.out / f"learning_curve_rows_{args.tasks.replace(',', '_')}.json").write_text(
            json.dumps(rows, indent=1)
        )
    # the table and figure take every run's rows in --out (e.g. classify and regress run at once)
    rows = [r for p in sorted(args.out.glob("learning_curve_rows_*.json"))
            for r in json.loads(p.read_text())]  # fmt: skip
    fits = []
    for task, t in sorted({(r["task"], r["thickness"]) for r in rows}, key=str):
        sel = sorted((r for r in rows if r["task"] == task and r["thickness"] == t
                      and r["split"] == "structure"), key=lambda r: r["train_cells"])  # fmt: skip
        for model in ("network", "baseline"):
            if task == "classify":
                errs, label = [1 - r[model]["line_acc"] for r in sel], "1 - accuracy per line"
            else:
                errs, label = [r[model]["mae"] for r in sel], "MAE"
            n_paper = PAPER_TRAIN_CELLS[task]
            fit = power_law([r["train_cells"] for r in sel], errs, n_paper)
            if fit:
                what = "classifier" if task == "classify" else f"regressor {t:g} A"
                fits.append({"what": what, "model": model, "error": label, "n": n_paper, **fit})
    text = table(rows, fits)
    leak = paired_leak(args.results, work) if args.tasks in ("none", "classify") else None
    if leak:
        text += (f"\n\nThe same {leak['lines']} lines ({leak['cells']} cells) held out by both "
                 "splits:\n\n| model | accuracy per line |\n| --- | --- |\n")  # fmt: skip
        text += "\n".join(
            f"| {k} | {v['accuracy']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] |"
            for k, v in leak.items() if isinstance(v, dict)
        )  # fmt: skip
    print(text)
    (args.out / "learning_curve.md").write_text(text + "\n")
    (args.out / "learning_curve.json").write_text(json.dumps({"rows": rows, "fits": fits,
                                                              "paired_leak": leak}, indent=1))  # fmt: skip
    figure(rows, args.out / "learning_curve.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
