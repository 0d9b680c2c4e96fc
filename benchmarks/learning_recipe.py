"""Which training recipe learns: the paper's and each departure from it, side by side, measured
on the *training cells only* of a finished campaign (the validation cells are not read).

The training cells of ``results/datasets/classify.h5`` (and ``regress_t*.h5``) are split again by
structure into inner-training and inner-test cells (the campaign's split rule, seed
``--inner-seed``, share ``--inner-fraction``); each recipe is trained on the inner-training cells
(carving its own development cells from them, as in the campaign) in a fresh process, and scored
on the inner-test cells with the evaluation's validation augmentation; the linear baseline
(:mod:`interface4d.baseline`) is fitted and scored on the same cells.

    .venv/bin/python benchmarks/learning_recipe.py --results results [--task classify]
        [--recipes paper,linear-adam,sqrt-adam,...] [--threads 2]

Regressors, ``--folds K``: grouped K-fold over all training cells of one thickness instead (each
training cell predicted once by the fold model that did not see it; the network minus ridge,
paired, with a bootstrap over cells); ``--blocked`` makes each fold a run of adjacent step
depths, a gap in the training depths such as a structure split can leave; ``--interleaved``
gives fold j every K-th depth from the j-th, isolated cells as ``reduction.placement: even``
holds out. ``--draws K`` scores
each held cell by its mean absolute error over K validation draws of dose and rotation (one
draw's shot noise moves a 5-cell comparison by as much as the models differ); ``--reuse`` keeps
the fold datasets and models already in ``--work``. The folds' ridge sees the input symmetry of
the first recipe listed (``symmetrise``), i.e. the same inputs as that network. Each row also
gives the MAE of the interior cells (step fraction 0.15-0.85) and of the ends apart;
``--mean-of A,B`` adds a row for the mean prediction of recipes A and B (an ensemble of
separately trained networks; with ``--reuse``, of the models already trained). ``--doses
1e3,1e4`` adds rows ``<recipe>@<dose>``: the same cells and rotations with shot noise at that
fixed dose, each set against ridge at the same dose.

    .venv/bin/python benchmarks/learning_recipe.py --results results --task regress \
        --thickness 150 --recipes reg-skip --epochs 300 --threads 1 --folds 7 [--blocked] --jobs 2 \
        [--draws 8] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BASE = {"ranks": 1, "seed": 0, "model": {"filters": [8, 16], "kernel_size": 3,
        "dense": [64, 32], "dropout": 0.15},
        "augment": {"dose": [1e4, 1e6], "rotation_deg": 2.0, "val_seed": 1234}}  # fmt: skip
PAPER = {"optimizer": "sgd", "learning_rate": 0.04, "momentum": 0.0, "patience": 0}
# the demo's regressors (config.yaml), the ky mirror average included
KY = {**PAPER, "schedule": "cosine", "clip_norm": 5.0, "standardise": "scalar", "mixup": 1.0,
      "mixup_space": "transformed", "weight_decay": 0.01, "skip": "linear",
      "skip_refit": "ridge", "symmetrise": "ky"}  # fmt: skip
RECIPES = {
    # the paper: linear input (standardised), SGD 0.04, no development cells, last epoch
    "paper": {"input": "linear", "dev_fraction": 0.0, "class_balance": "none", "opt": PAPER},
    "sqrt-sgd": {"input": "sqrt", "dev_fraction": 0.2, "opt": PAPER},
    "linear-adam": {"input": "linear", "dev_fraction": 0.2, "opt": {}},
    "log-adam": {"input": "log", "dev_fraction": 0.2, "opt": {}},
    "sqrt-adam": {"input": "sqrt", "dev_fraction": 0.2, "opt": {}},
    "sqrt-adam-lr3e-4": {"input": "sqrt", "dev_fraction": 0.2, "opt": {"learning_rate": 3e-4}},
    "sqrt-adam-lr3e-3": {"input": "sqrt", "dev_fraction": 0.2, "opt": {"learning_rate": 3e-3}},
    "sqrt-sgd-all": {"input": "sqrt", "dev_fraction": 0.0, "opt": PAPER},
    "sqrt-adam-all": {"input": "sqrt", "dev_fraction": 0.0, "opt": {"patience": 0}},
    "linear-adam-all": {"input": "linear", "dev_fraction": 0.0, "opt": {"patience": 0}},
    "sqrt-adam-all-lr3e-4": {"input": "sqrt", "dev_fraction": 0.0,
                             "opt": {"patience": 0, "learning_rate": 3e-4}},  # fmt: skip
    "sqrt-sgd-m0.9-all": {"input": "sqrt", "dev_fraction": 0.0,
                          "opt": {**PAPER, "learning_rate": 0.01, "momentum": 0.9}},
    "sqrt-adamw2-all": {"input": "sqrt", "dev_fraction": 0.0,
                        "opt": {"patience": 0, "weight_decay": 2.0}},
    "sqrt-adamw20-all": {"input": "sqrt", "dev_fraction": 0.0,
                         "opt": {"patience": 0, "weight_decay": 20.0}},
    "sqrt-sgd-all-lr0.1": {"input": "sqrt", "dev_fraction": 0.0,
                           "opt": {**PAPER, "learning_rate": 0.1}},
    "sqrt-sgd-all-cosine": {"input": "sqrt", "dev_fraction": 0.0,
                            "opt": {**PAPER, "schedule": "cosine"}},
    "sqrt-sgd-all-cosine-lr0.1": {"input": "sqrt", "dev_fraction": 0.0,
                                  "opt": {**PAPER, "schedule": "cosine", "learning_rate": 0.1}},
    "sqrt-sgd-all-cosine-m4": {"input": "sqrt", "dev_fraction": 0.0,
                               "opt": {**PAPER, "schedule": "cosine", "members": 4}},
    "sqrt-sgd-all-cosine-m4-clip": {"input": "sqrt", "dev_fraction": 0.0,
                                    "opt": {**PAPER, "schedule": "cosine", "members": 4,
                                            "clip_norm": 1.0}},
    "reg-b8": {"input": "sqrt", "dev_fraction": 0.0,
               "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0}},
    "reg-b4": {"input": "sqrt", "dev_fraction": 0.0,
               "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0, "batch_size": 4}},
    # the demo's regressors since 2026-12-02: one scalar input std, mixup, weight decay
    "reg-scalar": {"input": "sqrt", "dev_fraction": 0.0,
                   "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                           "standardise": "scalar"}},  # fmt: skip
    "reg-mixup": {"input": "sqrt", "dev_fraction": 0.0,
                  "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                          "standardise": "scalar", "mixup": 1.0, "weight_decay": 0.01}},  # fmt: skip
    # a linear path from the standardised input to the output beside the CNN (skip: linear)
    "reg-skip": {"input": "sqrt", "dev_fraction": 0.0,
                 "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                         "standardise": "scalar", "mixup": 1.0, "weight_decay": 0.01,
                         "skip": "linear"}},  # fmt: skip
    # the same with another seed (its initial weights and training draws): a second member
    "reg-skip-s1": {"input": "sqrt", "dev_fraction": 0.0, "seed": 1,
                    "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                            "standardise": "scalar", "mixup": 1.0, "weight_decay": 0.01,
                            "skip": "linear"}},  # fmt: skip
    # the same, its linear path started at a ridge fit of what the initial CNN leaves
    "reg-skip-ridge": {"input": "sqrt", "dev_fraction": 0.0,
                       "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                               "standardise": "scalar", "mixup": 1.0, "weight_decay": 0.01,
                               "skip": "linear", "skip_init": "ridge"}},  # fmt: skip
    "reg-skip-nomix": {"input": "sqrt", "dev_fraction": 0.0,
                       "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                               "standardise": "scalar", "weight_decay": 0.01,
                               "skip": "linear"}},  # fmt: skip
    # the demo's regressors since 2026-12-04: the path refitted after training, mixup on the
    # square roots; and the same with the path replaced by a ridge of what the CNN misses
    "reg-refit": {"input": "sqrt", "dev_fraction": 0.0,
                  "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                          "standardise": "scalar", "mixup": 1.0, "mixup_space": "transformed",
                          "weight_decay": 0.01, "skip": "linear", "skip_refit": "ridge"}},  # fmt: skip
    "reg-replace": {"input": "sqrt", "dev_fraction": 0.0,
                    "opt": {**PAPER, "schedule": "cosine", "clip_norm": 5.0,
                            "standardise": "scalar", "mixup": 1.0, "mixup_space": "transformed",
                            "weight_decay": 0.01, "skip": "linear", "skip_refit": "replace"}},  # fmt: skip
    # the demo's regressors with the ky mirror average as their first layer (symmetrise: ky);
    # the same with another seed, or more weight decay (the CNN quieter between depths)
    "reg-refit-ky": {"input": "sqrt", "dev_fraction": 0.0, "opt": KY},
    "reg-refit-ky-s1": {"input": "sqrt", "dev_fraction": 0.0, "seed": 1, "opt": KY},
    "reg-refit-ky-s2": {"input": "sqrt", "dev_fraction": 0.0, "seed": 2, "opt": KY},
    "reg-refit-ky-s3": {"input": "sqrt", "dev_fraction": 0.0, "seed": 3, "opt": KY},
    # the same with the input standardised per voxel (the ridge baseline's geometry), or with
    # the linear path replaced after training by the ridge fit of what the CNN leaves; seeds 0, 1
    **{
        f"reg-{name}-ky{'-s1' if s else ''}": {
            "input": "sqrt", "dev_fraction": 0.0, "seed": s, "opt": {**KY, **change},
        }
        for name, change in (("voxel", {"standardise": "voxel"}),
                             ("replace", {"skip_refit": "replace"}))
        for s in (0, 1)
    },  # fmt: skip
    # an ensemble of 2 or 4 networks in one model, refitted together (skip_refit on the mean)
    "reg-refit-ky-m2": {"input": "sqrt", "dev_fraction": 0.0, "opt": {**KY, "members": 2}},
    "reg-refit-ky-m4": {"input": "sqrt", "dev_fraction": 0.0, "opt": {**KY, "members": 4}},
    # the pair with more weight decay (the CNN quieter between the depths it is shown)
    **{
        f"reg-refit-ky-m2-wd{wd:g}": {
            "input": "sqrt", "dev_fraction": 0.0,
            "opt": {**KY, "members": 2, "weight_decay": wd},
        }
        for wd in (0.03, 0.05, 0.1)
    },  # fmt: skip
    # the pair with its CNNs' input projected onto the k leading principal directions of
    # noiseless draws of the training examples (project: k), both members or the second only
    **{
        f"reg-refit-ky-m2-p{k}n": {
            "input": "sqrt", "dev_fraction": 0.0,
            "opt": {**KY, "members": 2, "project": k, "projected_members": 2},
        }
        for k in (8, 16, 32)
    },  # fmt: skip
    # the pair with seed 1; the pair with its second member projected (seeds 0 and 1)
    "reg-refit-ky-m2-s1": {"input": "sqrt", "dev_fraction": 0.0, "seed": 1,
                           "opt": {**KY, "members": 2}},
    **{
        f"reg-refit-ky-hyb8{'-s1' if s else ''}": {
            "input": "sqrt", "dev_fraction": 0.0, "seed": s,
            "opt": {**KY, "members": 2, "project": 8, "projected_members": 1},
        }
        for s in (0, 1)
    },  # fmt: skip
    "reg-refit-ky-wd0.05": {"input": "sqrt", "dev_fraction": 0.0,
                            "opt": {**KY, "weight_decay": 0.05}},  # fmt: skip
    # the demo's classifier with decoupled weight decay (it overfits its training cells on the
    # 206-cell learning-curve campaign: training accuracy 0.99, development 0.90-0.935)
    "cls-wd1": {"input": "sqrt", "dev_fraction": 0.2, "opt": {"weight_decay": 1.0}},
    "cls-wd4": {"input": "sqrt", "dev_fraction": 0.2, "opt": {"weight_decay": 4.0}},
    "sqrt-adam-all-cosine": {"input": "sqrt", "dev_fraction": 0.0,
                             "opt": {"patience": 0, "schedule": "cosine"}},
    "sqrt-adam-nobalance": {"input": "sqrt", "dev_fraction": 0.2, "class_balance": "none",
                            "opt": {}},  # fmt: skip
}


def inner_dataset(src: Path, dst: Path, fraction: float, seed: int) -> dict:
    """The training rows of ``src``, re-split by structure (inner-test = 'val')."""
    sys.path.insert(0, str(ROOT / "src"))
    from interface4d.h5io import atomic_h5
    from interface4d.splits import assign_split

    with h5py.File(src, "r") as f:
        rows = np.flatnonzero(f["split"][()] == 0)
        cells = f["cell"].asstr()[()][rows]
        side = assign_split(sorted(set(cells)), fraction, f"inner{seed}")
        with atomic_h5(dst) as g:
            g.create_dataset("x", data=f["x"][rows], chunks=(1, *f["x"].shape[1:]))
            g["y"] = f["y"][()][rows]
            g["split"] = np.array([side[c] == "val" for c in cells], np.uint8)
            g["cell"] = f["cell"][()][rows]
            g["line"] = f["line"][()][rows]
            for k, v in f.attrs.items():
                if k != "complete":
                    g.attrs[k] = v
    test = sorted(c for c, s in side.items() if s == "val")
    return {"train_cells": len(side) - len(test), "test_cells": len(test)}


def train(data: Path, task: str, recipe: dict, out: Path, epochs: int, threads: int) -> dict:
    block = "classifier" if task == "classify" else "regressor"
    opt = {"epochs": epochs, "batch_size": 32 if task == "classify" else 8,
           "patience": 20 if task == "classify" else 60, **recipe["opt"]}  # fmt: skip
    cfg = {**BASE, block: opt}
    if "dev_fraction" in recipe:
        opt["dev_fraction"] = recipe["dev_fraction"]
    for k in ("input", "class_balance", "seed"):
        if k in recipe:
            cfg[k] = recipe[k]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "interface4d.train", "--dataset", str(data), "--task", task,
         "--training-json", json.dumps(cfg), "--out-dir", str(out),
         "--checkpoint-dir", str(out / "ckpt"), "--threads", str(threads)],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    return {"cfg": cfg, "wall_s": wall, "prov": json.loads((out / "provenance.json").read_text())}


def fold_dataset(src: Path, dst: Path, held: set[str]) -> None:
    """The training rows of ``src``; the cells ``held`` marked 'val' (one fold's test cells)."""
    sys.path.insert(0, str(ROOT / "src"))
    from interface4d.h5io import atomic_h5

    with h5py.File(src, "r") as f:
        rows = np.flatnonzero(f["split"][()] == 0)
        cells = f["cell"].asstr()[()][rows]
        with atomic_h5(dst) as g:
            g.create_dataset("x", data=f["x"][rows], chunks=(1, *f["x"].shape[1:]))
            g["y"] = f["y"][()][rows]
            g["split"] = np.array([c in held for c in cells], np.uint8)
            g["cell"] = f["cell"][()][rows]
            g["line"] = f["line"][()][rows]
            for k, v in f.attrs.items():
                if k != "complete":
                    g.attrs[k] = v


def draw_inputs(x: np.ndarray, uids, augment: dict, k: int) -> np.ndarray:
    """Validation draw ``k`` of examples ``x``: k = 0 is the evaluation's own (training's
    development draw), k > 0 the evaluation's further draws ``"val:k"``
    (:func:`interface4d.validation.augment_for_eval`)."""
    sys.path.insert(0, str(ROOT / "src"))
    from interface4d.validation import augment_for_eval

    return augment_for_eval(x, uids, augment, "val" if k == 0 else f"val:{k}")


def fold_errors(
    data: Path, cfg: dict, model_path: Path | list[Path] | None, draws: int = 1,
    doses: list[float] | None = None,
) -> dict[str, dict[str, float]]:
    """{cell: absolute error} of the network (or, without a model, the baseline; with a list of
    models, the mean of their predictions) on the held cells of ``data``, with the evaluation's
    validation augmentation; ``draws`` > 1: the mean absolute error over that many validation
    draws of each example (the first the evaluation's own), which takes the shot noise of one
    draw out of a comparison on a few cells. Keyed ``""`` (the validation doses); with
    ``doses``, also ``"@<dose>"``: the same draws' rotations with shot noise at that fixed dose
    (the baseline fitted once, on its usual training draws)."""
    sys.path.insert(0, str(ROOT / "src"))
    from interface4d import baseline
    from interface4d.datasets import H5Examples
    from interface4d.saliency import load_model
    from interface4d.train import complete_training_config
    from interface4d.validation import network_predictor

    full = complete_training_config(cfg)
    if model_path is None:
        fns = [baseline.fit(data, "regress", full).predict]
    else:
        paths = model_path if isinstance(model_path, list) else [model_path]
        fns = [network_predictor(load_model(p)) for p in paths]
    with H5Examples(data, "val") as d:
        idx = d.indices
        x, y = d.batch(idx)
        uids = d.uids(idx)
        cells = d.cells[idx]
    out = {}
    for tag, aug in [("", full["augment"])] + [
        (f"@{d:g}", {**full["augment"], "dose": [d, d]}) for d in doses or []
    ]:
        xs = [draw_inputs(x, uids, aug, k) for k in range(draws)]
        e = np.mean(
            [np.abs(np.mean([np.asarray(fn(xk)).reshape(-1) for fn in fns], axis=0) - y)
             for xk in xs],
            axis=0,
        )  # fmt: skip
        err: dict[str, list[float]] = {}
        for c, v in zip(cells, e, strict=True):
            err.setdefault(str(c), []).append(float(v))
        out[tag] = {c: float(np.mean(v)) for c, v in err.items()}
    return out


def cross_validate(src: Path, work: Path, names: list[str], folds: int, epochs: int,
                   threads: int, jobs: int, blocked: bool = False, draws: int = 1,
                   reuse: bool = False, mean_of: list[str] | None = None,
                   doses: list[float] | None = None) -> dict[str, dict[str, float]]:
    """Grouped K-fold over the *training* cells of a regression dataset: each recipe and the
    ridge baseline predict every training cell once from the other folds; {recipe: {cell:
    error}}. ``blocked``: each fold is a run of adjacent step depths (a gap in the training
    depths, as a structure split can leave), else cells are dealt by hash. ``mean_of``
    (recipes among ``names``): one more row, the mean of their predictions (an ensemble of
    separately trained networks). ``doses``: rows ``<recipe>@<dose>`` too, every model scored
    on the same cells with shot noise at that fixed dose. The validation cells are not read."""
    from concurrent.futures import ThreadPoolExecutor

    sys.path.insert(0, str(ROOT / "src"))
    from interface4d.splits import split_hash

    with h5py.File(src, "r") as f:
        rows = f["split"][()] == 0
        depth = dict(zip(f["cell"].asstr()[()][rows], f["y"][()][rows], strict=True))
    by_depth = sorted(depth, key=lambda c: (float(depth[c]), c))
    if blocked == "interleaved":
        groups = [by_depth[j::folds] for j in range(folds)]
    elif blocked:
        groups = [list(g) for g in np.array_split(by_depth, folds)]
    else:
        order = sorted(depth, key=lambda c: (split_hash("cv", c), c))
        groups = [order[j::folds] for j in range(folds)]
    errors: dict[str, dict[str, float]] = {}

    def add(name: str, found: dict[str, dict[str, float]]) -> None:
        for tag, err in found.items():
            errors.setdefault(name + tag, {}).update(err)

    # ridge sees the input symmetry of the first recipe (the same inputs as that network)
    mirror = RECIPES[names[0]]["opt"].get("symmetrise", "none")
    ridge_cfg = BASE | {"input": "sqrt", "regressor": {"symmetrise": mirror}}
    tasks = []
    for j, group in enumerate(groups):
        held = set(group)
        data = work / f"fold{j}.h5"
        if not (reuse and data.exists()):
            fold_dataset(src, data, held)
        add("ridge", fold_errors(data, ridge_cfg, None, draws, doses))
        tasks += [(j, n, data) for n in names]

    def run(task):
        j, name, data = task
        out = work / f"fold{j}-{name}"
        if reuse and (out / "model.keras").exists() and (out / "provenance.json").exists():
            prov = json.loads((out / "provenance.json").read_text())
            r = {"cfg": prov["training"], "wall_s": prov["wall_time_s"]}
            print(f"  {name} fold {j}: reusing {out}", flush=True)
        else:
            r = train(data, "regress", RECIPES[name], out, epochs, threads)
        return name, fold_errors(data, r["cfg"], out / "model.keras", draws, doses), r["wall_s"]

    with ThreadPoolExecutor(jobs) as pool:
        for name, err, wall in pool.map(run, tasks):
            add(name, err)
            print(f"  {name}: {len(errors[name])}/{len(depth)} cells, {wall:.0f} s", flush=True)
    if mean_of:
        key = "mean(" + "+".join(mean_of) + ")"
        for j in range(len(groups)):
            cfg = json.loads((work / f"fold{j}-{mean_of[0]}" / "provenance.json").read_text())
            models = [work / f"fold{j}-{n}" / "model.keras" for n in mean_of]
            add(key, fold_errors(work / f"fold{j}.h5", cfg["training"], models, draws, doses))
    return errors


def depth_ranges(src: Path, cells: list[str], interior=(0.15, 0.85)) -> dict[str, list[str]]:
    """The cells whose step fraction lies in ``interior`` (between the ends, where both models
    interpolate) and the others (near the entrance or exit surface: both extrapolate)."""
    with h5py.File(src, "r") as f:
        y = dict(zip(f["cell"].asstr()[()], f["y"][()], strict=True))
    inner = [c for c in cells if interior[0] <= y[c] <= interior[1]]
    return {"interior": inner, "ends": [c for c in cells if c not in inner]}


def score(data: Path, task: str, cfg: dict, model_path: Path | None) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from interface4d import baseline, metrics
    from interface4d.celltables import cell_votes
    from interface4d.saliency import load_model
    from interface4d.train import complete_training_config
    from interface4d.validation import network_predictor, predict_split

    full = complete_training_config(cfg)
    preds = {}
    if model_path is not None:
        preds["network"] = network_predictor(load_model(model_path))
    else:
        preds["baseline"] = baseline.fit(data, task, full).predict
    idx, y, outs = predict_split(preds, data, full["augment"], ["val", 1e4], 64)
    with h5py.File(data, "r") as f:
        cells = f["cell"].asstr()[()][idx]
    res = {}
    for per in outs.values():
        for d, p in per.items():
            tag = "" if d == "val" else f"@{d:g}"
            if task == "classify":
                import pandas as pd

                pdiff = p[:, 1]
                pred = (pdiff > 0.5).astype(int)
                df = pd.DataFrame({"cell": cells, "y_true": y.astype(int), "p_diffusion": pdiff,
                                   "step_fraction": np.nan})  # fmt: skip
                cv = cell_votes(df)
                res[f"line_acc{tag}"] = metrics.accuracy(y.astype(int), pred)
                res[f"bal_acc{tag}"] = metrics.balanced_accuracy(y.astype(int), pred)
                res[f"cell_acc{tag}"] = metrics.accuracy(cv["y_true"], cv["y_pred"])
            else:
                res[f"mae{tag}"] = float(np.mean(np.abs(p - y)))
    res["n_test"] = len(y)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--task", choices=("classify", "regress"), default="classify")
    ap.add_argument("--thickness", default="100", help="regress: the thickness's dataset")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inner-fraction", type=float, default=0.25)
    ap.add_argument("--inner-seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=0,
                    help="regress: grouped K-fold over all training cells instead of one split")
    ap.add_argument("--jobs", type=int, default=1, help="--folds: trainings at once")
    ap.add_argument("--blocked", action="store_true",
                    help="--folds: each fold a run of adjacent step depths, not cells by hash")
    ap.add_argument("--interleaved", action="store_true",
                    help="--folds: fold j holds every K-th step depth from the j-th (isolated "
                    "held-out cells, as reduction.placement: even leaves them)")
    ap.add_argument("--draws", type=int, default=1,
                    help="--folds: validation draws (dose, rotation) each held cell is scored on")
    ap.add_argument("--mean-of", default="",
                    help="--folds: recipes (of --recipes) whose mean prediction is scored too")
    ap.add_argument("--doses", default="",
                    help="--folds: fixed doses (e/pattern, comma-separated) every model is also "
                    "scored at (rows <recipe>@<dose>, each against ridge at that dose)")
    ap.add_argument("--reuse", action="store_true",
                    help="--folds: keep the fold datasets and trained models found in --work")
    args = ap.parse_args()
    src = args.results / "datasets" / (
        "classify.h5" if args.task == "classify" else f"regress_t{args.thickness}.h5"
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="recipe-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.folds:
        names = args.recipes.split(",")
        mean_of = args.mean_of.split(",") if args.mean_of else None
        errs = cross_validate(src, work, names, args.folds, args.epochs, args.threads, args.jobs,
                              "interleaved" if args.interleaved else args.blocked, args.draws,
                              args.reuse, mean_of,
                              [float(d) for d in args.doses.split(",") if d])  # fmt: skip
        out = "cv_errors.json" if args.draws == 1 else f"cv_errors_{args.draws}draws.json"
        (work / out).write_text(json.dumps(errs, indent=1))
        cells = sorted(errs["ridge"])
        ranges = depth_ranges(src, cells)
        rng = np.random.default_rng(0)
        for name, e in errs.items():
            ridge = errs["ridge" + name[name.index("@"):] if "@" in name else "ridge"]
            a = np.array([e[c] for c in cells])
            d = a - np.array([ridge[c] for c in cells])
            boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
            lo, hi = np.percentile(boot, [2.5, 97.5])
            print(f"{src.name} {name}: MAE {a.mean():.4f} over {len(a)} cells; minus ridge "
                  f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]; closer on "
                  f"{int((d < 0).sum())}/{len(d)}; "
                  + "; ".join(f"{r} {np.mean([e[c] for c in cs]):.4f} ({len(cs)} cells)"
                              for r, cs in ranges.items() if cs), flush=True)  # fmt: skip
        return 0
    data = work / "inner.h5"
    sizes = inner_dataset(src, data, args.inner_fraction, args.inner_seed)
    print(f"# {src}: inner split {sizes} (validation cells not read)", flush=True)
    base = score(data, args.task, BASE | {"input": "sqrt"}, None)
    print(f"baseline(sqrt) {json.dumps(base)}", flush=True)
    for name in args.recipes.split(","):
        r = train(data, args.task, RECIPES[name], work / name, args.epochs, args.threads)
        s = score(data, args.task, r["cfg"], work / name / "model.keras")
        fin = r["prov"]["final"]
        print(f"{name} {json.dumps(s)} best_epoch={fin['best_epoch']} "
              f"epochs_run={fin['epochs_run']} wall={r['wall_s']:.0f}s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
