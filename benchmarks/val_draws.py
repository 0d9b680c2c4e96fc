"""The step-position networks and their ridge baselines on the validation cells, scored over
several validation draws instead of one.

The evaluation predicts each validation cell from one draw of dose (log-uniform in the training
range) and rotation (training's development draw). On 5 cells a thickness that draw's shot
noise moves the network-minus-ridge difference by as much as the two models differ, so a
comparison can pass or fail by chance. Here each held-out cell is scored by its mean absolute
error over K draws (draw 0 the evaluation's own; the others from their own streams,
``learning_recipe.draw_inputs``), with the campaign's trained networks and the baseline refitted
on the training cells exactly as the evaluation fits it. Nothing is trained.

    .venv/bin/python benchmarks/val_draws.py --results results [--campaign config.yaml] \
        [--draws 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml
from _common import ROOT
from learning_recipe import draw_inputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--campaign", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--draws", type=int, default=16)
    args = ap.parse_args()

    from interface4d import baseline
    from interface4d.datasets import H5Examples
    from interface4d.saliency import load_model
    from interface4d.train import complete_training_config
    from interface4d.validation import predict

    cfg = yaml.safe_load(args.campaign.read_text())
    full = complete_training_config(cfg["training"])
    print(f"# {args.results}: validation cells, {args.draws} draws each (draw 0 = evaluation's)")
    print("| thickness | cells | draw 0: network / ridge | all draws: network / ridge "
          "| network - ridge, per draw (min .. max) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for t in cfg["grid"]["thickness"]:
        ds = args.results / "datasets" / f"regress_t{t:g}.h5"
        model = load_model(args.results / "models" / f"regressor_t{t:g}.keras")
        base = baseline.fit(ds, "regress", full)
        with H5Examples(ds, "val") as d:
            x, y = d.batch(d.indices)
            uids = d.uids(d.indices)
            cells = [str(c) for c in d.cells[d.indices]]
        err = np.zeros((2, args.draws, len(y)))
        for k in range(args.draws):
            xa = draw_inputs(x, uids, full["augment"], k)
            err[0, k] = np.abs(predict(model, xa) - y)
            err[1, k] = np.abs(base.predict(xa) - y)
        gap = err[0].mean(1) - err[1].mean(1)
        print(f"| {t:g} A | {len(set(cells))} | {err[0, 0].mean():.4f} / {err[1, 0].mean():.4f} "
              f"| {err[0].mean():.4f} / {err[1].mean():.4f} "
              f"| {gap.min():+.4f} .. {gap.max():+.4f} |")  # fmt: skip
        for c, a, b in zip(cells, err[0].mean(0), err[1].mean(0), strict=True):
            print(f"#   {c}: network {a:.4f}, ridge {b:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
