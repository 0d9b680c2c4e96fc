"""The reference baseline that stands beside every network: a linear model on the same inputs.

For each network the evaluation fits, on the same training cells, a linear model to the inputs
the network sees (the same augmentation draws, :mod:`interface4d.augment`, and the same input
transform, :mod:`interface4d.inputs`), and predicts the same validation examples with the same
draws at every dose. A network that does not beat it has not learned what its data holds.

* classifier: transform -> standardise -> PCA -> logistic regression (classes balanced as in
  the network's loss);
* step-position regressor: (the regressor's input symmetry, ``symmetrise``) -> transform ->
  standardise -> ridge regression.

Hyperparameters (PCA components and the inverse regularisation ``C``; the ridge ``alpha``) are
chosen on the development cells that the network's training holds out
(:func:`interface4d.splits.dev_cells`, the same cells; a share of ``DEV_FRACTION`` when the
network carves none), then the model is refitted on all the training cells. The validation
cells are never seen before the prediction.

scikit-learn, NumPy and h5py only (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.augment import augment_batch
from interface4d.inputs import symmetrise, transform

REPLICAS = {"classify": 4, "regress": 16}  # augmented draws of each training example
PCA_COMPONENTS = (8, 16, 32, 64)
LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)
RIDGE_ALPHA = tuple(float(a) for a in np.logspace(-1, 5, 13))
DEV_FRACTION = 0.2  # development share when the network itself carves none
MAX_DRAWS = 8000  # augmented training examples at most (a seeded subset of larger campaigns)


@dataclass
class Baseline:
    """A fitted baseline: ``predict(x)`` takes raw (augmented) examples (B, nx, k, k) and gives
    (B, 2) class probabilities or (B,) step fractions, like the network."""

    task: str
    model: Any
    transform: str
    info: dict[str, Any] = field(default_factory=dict)
    symmetry: str = "none"

    def predict(self, x: np.ndarray) -> np.ndarray:
        f = features(x, self.transform, self.symmetry)
        if self.task == "classify":
            return self.model.predict_proba(f).astype(np.float32)
        return self.model.predict(f).astype(np.float32)


def features(x: np.ndarray, kind: str, symmetry: str = "none") -> np.ndarray:
    """The flattened transformed examples (B, nx * k * k), float64, after the network's input
    symmetry (:func:`interface4d.inputs.symmetrise`)."""
    x = np.asarray(x)
    return transform(symmetrise(x, symmetry), kind).reshape(len(x), -1).astype(np.float64)


def _make(task: str, param: tuple, weights: str):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classify":
        n, c = param
        return make_pipeline(
            StandardScaler(),
            PCA(n_components=n, svd_solver="arpack", random_state=0),
            LogisticRegression(
                C=c, max_iter=5000, class_weight="balanced" if weights == "weights" else None
            ),
        )
    return make_pipeline(StandardScaler(), Ridge(alpha=param[0]))


def _dev_predictions(task, grid, balance, f_fit, y_fit, f_dev):
    """(param, development predictions) for every grid point. The classifier's standardisation
    and PCA are fitted once, with the most components, and each grid point takes the leading
    ``n`` of them (what a PCA of ``n`` components gives: the leading singular vectors). ARPACK
    finds only the components kept, the same as a full SVD's to ~1e-14 and 3x faster on the
    demo's 1008 x 12500 draws (``benchmarks/RESULTS.md``); its start vector is seeded."""
    if task != "classify":
        for param in grid:
            yield param, _make(task, param, balance).fit(f_fit, y_fit).predict(f_dev)
        return
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(f_fit)
    pca = PCA(n_components=max(n for n, _ in grid), svd_solver="arpack", random_state=0).fit(
        scaler.transform(f_fit)
    )
    z_fit, z_dev = pca.transform(scaler.transform(f_fit)), pca.transform(scaler.transform(f_dev))
    for n, c in grid:
        m = LogisticRegression(
            C=c, max_iter=5000, class_weight="balanced" if balance == "weights" else None
        ).fit(z_fit[:, :n], y_fit)
        yield (n, c), m.predict_proba(z_dev[:, :n])[:, 1]


def _draws(
    data, rows: np.ndarray, replicas: int, augment: Mapping[str, Any], seed: int, dev: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented examples of ``rows``: ``replicas`` training draws (epochs 0, 1, ...) or, for
    development rows, the fixed draw of the network's development pass."""
    x, y = data.batch(rows)
    uids = data.uids(rows)
    kw = {"dose_range": augment["dose"], "rotation_deg": augment["rotation_deg"]}
    if dev:
        return augment_batch(x, uids, split="val", seed=int(augment["val_seed"]), epoch=0, **kw), y
    xs = [augment_batch(x, uids, split="train", seed=seed, epoch=e, **kw) for e in range(replicas)]
    return np.concatenate(xs), np.tile(y, replicas)


def fit(dataset_h5: str | Path, task: str, training_cfg: Mapping[str, Any]) -> Baseline:
    """Fit the baseline of ``task`` ('classify' or 'regress') on the training cells of
    ``dataset_h5``; ``training_cfg`` is the campaign's training block (defaults filled)."""
    from interface4d.datasets import H5Examples
    from interface4d.metrics import balanced_accuracy
    from interface4d.splits import cell_strata, dev_cells

    seed, aug = int(training_cfg["seed"]), training_cfg["augment"]
    kind = training_cfg["input"]
    balance = training_cfg.get("class_balance", "weights")
    replicas = REPLICAS[task]
    with H5Examples(dataset_h5, "train") as data:
        rows = data.indices
        cells = data.cells[rows]
        strata = cell_strata(cells, data.targets(rows) if task == "classify" else None)
        block = training_cfg["classifier" if task == "classify" else "regressor"]
        fraction = float(block["dev_fraction"]) or DEV_FRACTION
        dev = dev_cells(sorted(set(cells)), fraction, seed, strata) if fraction > 0 else set()
        on_dev = np.isin(cells, sorted(dev))
        n_all = len(rows)
        if len(rows) * replicas > MAX_DRAWS:  # a paper-scale campaign: a seeded subset
            keep = np.random.default_rng([seed, 6]).random(len(rows)) < MAX_DRAWS / (
                len(rows) * replicas
            )
            rows, cells, on_dev = rows[keep], cells[keep], on_dev[keep]
        x_all, y_all = _draws(data, rows, replicas, aug, seed, dev=False)
        x_dev, y_dev = _draws(data, rows[on_dev], 1, aug, seed, dev=True)
    symmetry = block.get("symmetrise", "none")
    f_all = features(x_all, kind, symmetry)
    fit_mask = np.tile(~on_dev, replicas)
    grid: Sequence[tuple] = (
        [(n, c) for n in PCA_COMPONENTS for c in LOGISTIC_C]
        if task == "classify"
        else [(a,) for a in RIDGE_ALPHA]
    )
    if task == "classify":
        y_all = y_all.astype(np.int64)
        grid = [g for g in grid if g[0] < min(int(fit_mask.sum()), f_all.shape[1])] or [(1, 1.0)]
    scores = []
    if len(y_dev) and fit_mask.any():
        f_dev = features(x_dev, kind, symmetry)
        for _param, dev_out in _dev_predictions(
            task, grid, balance, f_all[fit_mask], y_all[fit_mask], f_dev
        ):
            if task == "classify":
                p = dev_out
                score = balanced_accuracy(y_dev.astype(np.int64), (p > 0.5).astype(np.int64))
                loss = -np.mean(np.log(np.clip(np.where(y_dev == 1, p, 1 - p), 1e-7, 1)))
                scores.append((-score, loss))
            else:
                scores.append((float(np.mean(np.abs(dev_out - y_dev))),))
        best = grid[int(np.argmin([s[0] * 1e6 + (s[1] if len(s) > 1 else 0) for s in scores]))]
        chosen = "the best development score"
    else:
        best = grid[len(grid) // 2]
        chosen = "no development cells: the middle of the grid"
    model = _make(task, best, balance).fit(f_all, y_all)
    info = {
        "model": "standardise -> PCA -> logistic regression"
        if task == "classify"
        else "standardise -> ridge regression",
        "input": kind,
        "symmetrise": symmetry,
        "hyperparameters": dict(
            zip(("pca_components", "C") if task == "classify" else ("alpha",), best, strict=True)
        ),
        "selected_by": chosen,
        "dev_cells": sorted(dev),
        "development_scores": [
            {"param": list(g), "score": list(s)} for g, s in zip(grid, scores, strict=False)
        ],
        "training_cells": int(len(set(cells))),
        "training_examples": int(len(rows)),
        "training_examples_available": int(n_all),
        "augmented_draws_per_example": replicas,
    }
    return Baseline(task, model, kind, info, symmetry)
