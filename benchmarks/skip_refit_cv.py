"""The linear path's ridge refit after training (``skip_refit: ridge``), scored by
cross-validation over the training cells with networks that are already trained.

``benchmarks/learning_recipe.py --task regress`` leaves, in its ``--work`` folder, one dataset
per fold (``fold<j>.h5``: the fold's held-out training cells as ``val``, the rest as ``train``)
and each recipe's network trained on it (``fold<j>-<recipe>/model.keras``). A refit needs no
new training: here every fold's network is refitted exactly as training would refit it
(:func:`interface4d.warmstart.refit_skip` on :func:`interface4d.warmstart.draw_examples` of the
fold's training cells) and scored, as trained, refitted, and against the ridge baseline fitted
on the same fold, over the same validation draws. The demo's validation cells are never read.

    .venv/bin/python benchmarks/skip_refit_cv.py --work /tmp/cv/t200-a --campaign config.yaml \
        [--recipe reg-skip] [--draws 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from _common import ROOT
from learning_recipe import draw_inputs


def fold_scores(ds: Path, model_path: Path, full: dict, draws: int) -> dict[str, dict]:
    """{cell: {network, refitted, ridge: mean abs error over draws}} for one fold."""
    from interface4d import baseline
    from interface4d.datasets import H5Examples
    from interface4d.saliency import load_model
    from interface4d.trainingdata import TrainingData
    from interface4d.validation import predict
    from interface4d.warmstart import draw_examples, refit_skip

    seed, aug = int(full["seed"]), full["augment"]
    net, refitted = load_model(model_path), load_model(model_path)
    data = TrainingData(ds, "regress", float(full["regressor"]["dev_fraction"]), seed)
    try:
        info = refit_skip(refitted, *draw_examples(data, seed, aug))
    finally:
        data.close()
    base = baseline.fit(ds, "regress", full)
    with H5Examples(ds, "val") as d:
        x, y = d.batch(d.indices)
        uids, cells = d.uids(d.indices), [str(c) for c in d.cells[d.indices]]
    models = {"network": lambda a: predict(net, a), "refitted": lambda a: predict(refitted, a),
              "ridge": base.predict}  # fmt: skip
    err = {k: np.zeros(len(y)) for k in models}
    for k in range(draws):
        xa = draw_inputs(x, uids, aug, k)
        for name, fn in models.items():
            err[name] += np.abs(np.asarray(fn(xa)) - y) / draws
    out = {c: {k: float(v[i]) for k, v in err.items()} for i, c in enumerate(cells)}
    for c in out:
        out[c]["alpha"] = info["alpha"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--campaign", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--recipe", default="reg-skip")
    ap.add_argument("--draws", type=int, default=8)
    args = ap.parse_args()
    from interface4d.train import complete_training_config

    full = complete_training_config(yaml.safe_load(args.campaign.read_text())["training"])
    scores: dict[str, dict] = {}
    folds = sorted(args.work.glob("fold*.h5"), key=lambda p: int(p.stem[4:]))
    for ds in folds:
        scores.update(fold_scores(ds, args.work / f"{ds.stem}-{args.recipe}" / "model.keras",
                                  full, args.draws))  # fmt: skip
        print(f"# {ds.name}: done", flush=True)
    (args.work / f"skip_refit_{args.recipe}.json").write_text(json.dumps(scores, indent=1))
    cells = sorted(scores, key=lambda c: int(c.rsplit("-d", 1)[1]))
    depth = np.array([int(c.rsplit("-d", 1)[1]) for c in cells])
    inner = (depth >= 0.15 * (depth.max() + 3)) & (depth <= 0.85 * (depth.max() + 3))
    print(f"| {args.work.name} ({len(cells)} cells) | all | interior ({inner.sum()}) "
          "| minus ridge [95 %], closer on |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    ridge = np.array([scores[c]["ridge"] for c in cells])
    rng = np.random.default_rng(0)
    for name in ("ridge", "network", "refitted"):
        e = np.array([scores[c][name] for c in cells])
        d = e - ridge
        boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(10000)]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        gap = (
            ""
            if name == "ridge"
            else f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}], {(d < 0).sum()}/{len(d)}"
        )
        print(f"| {name} | {e.mean():.4f} | {e[inner].mean():.4f} | {gap} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
