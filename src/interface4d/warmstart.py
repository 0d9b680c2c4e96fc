"""A ridge start for the step-position networks' linear path (``skip_init: ridge``).

With ``skip: linear`` a regressor is ``CNN(z) + w . (s z) + b`` (:mod:`interface4d.model`). By
default ``w`` starts at zero and SGD finds the linear part of the answer while the CNN learns
the rest. With ``skip_init: ridge`` the linear path *is* a ridge regression, fitted in closed
form before training and then held fixed, and the CNN learns what it leaves:

* on augmented draws of the training examples (the training's own first epochs' draws) the
  features the path sees (``s z``, read off the model's own layers) are standardised per column,
  as the ridge baseline standardises its inputs (:mod:`interface4d.baseline`; a per-column
  affine map, so this is the baseline's geometry whatever the network's input scaling);
* ridge regression of ``y - CNN(x)`` (what the freshly initialised CNN leaves) on them, its
  strength chosen by grouped K-fold over the training cells from the baseline's grid;
* the coefficients mapped back onto the path's own features, the path frozen.

The validation cells are not read. NumPy only, apart from the model passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DRAWS = 16  # augmented draws of each training example (as the ridge baseline takes)
MAX_EXAMPLES = 4000  # draws at most (a seeded subset of larger campaigns)
FOLDS = 7  # grouped folds over the training cells that choose the ridge strength
ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))  # on standardised columns (baseline's)
WARM_STREAM = 7


def ridge_dual(f: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression ``min |y - f w - b|^2 + alpha |w|^2`` (intercept not penalised) through
    its dual (``f`` has far more columns than rows): ``(w, b)``."""
    f = np.asarray(f, np.float64)
    y = np.asarray(y, np.float64)
    fm, ym = f.mean(0), y.mean()
    fc = f - fm
    a = np.linalg.solve(fc @ fc.T + alpha * np.eye(len(f)), y - ym)
    w = fc.T @ a
    return w, float(ym - fm @ w)


def choose_alpha(
    f: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int = FOLDS
) -> tuple[float, list[dict[str, float]]]:
    """The ridge strength of :data:`ALPHAS` with the smallest mean absolute error over grouped
    folds (whole groups, i.e. cells, held out together; dealt in sorted order); the scores of
    every strength tried."""
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    k = min(int(folds), len(names))
    if k < 2:
        return ALPHAS[len(ALPHAS) // 2], []
    fold_of = {n: i % k for i, n in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups.tolist()])
    errors = np.zeros(len(ALPHAS))
    for j in range(k):
        fit, held = fold != j, fold == j
        for i, alpha in enumerate(ALPHAS):
            w, b = ridge_dual(f[fit], y[fit], alpha)
            errors[i] += float(np.sum(np.abs(f[held] @ w + b - y[held])))
    errors /= len(y)
    scores = [{"alpha": a, "mae": float(e)} for a, e in zip(ALPHAS, errors, strict=True)]
    return ALPHAS[int(np.argmin(errors))], scores


def standardised(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of ``f`` standardised (a column that never varies keeps unit scale): the
    standardised features, the column means and the column scales."""
    mean = f.mean(0)
    scale = f.std(0)
    scale = np.where(scale > 1e-12 * (scale.max() or 1.0), scale, 1.0)
    return (f - mean) / scale, mean, scale


def draw_examples(
    data: Any, seed: int, augment: Mapping[str, Any], draws: int = DRAWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``draws`` augmented draws (training epochs 0 .. draws-1) of every fit example of ``data``
    (:class:`interface4d.trainingdata.TrainingData`): raw examples, targets, cells."""
    from interface4d.augment import augment_batch

    idx = data.fit_indices
    per = max(1, min(int(draws), MAX_EXAMPLES // max(len(idx), 1)))
    if len(idx) > MAX_EXAMPLES:
        rng = np.random.default_rng([int(seed), WARM_STREAM])
        idx = idx[np.sort(rng.choice(len(idx), MAX_EXAMPLES, replace=False))]
    x, y = data.read(idx)
    uids, cells = data.train.uids(idx), data.train.cells[idx]
    kw = {"dose_range": augment["dose"], "rotation_deg": augment["rotation_deg"]}
    xs = [augment_batch(x, uids, split="train", seed=seed, epoch=e, **kw) for e in range(per)]
    return np.concatenate(xs), np.tile(y, per), np.tile(cells, per)


def warm_start_skip(
    model: Any, x: np.ndarray, y: np.ndarray, cells: Sequence[str], batch: int = 64
) -> dict[str, Any]:
    """Set ``model``'s linear path (layer ``linear_skip``) to the ridge fit of ``y - CNN(x)`` on
    the features it sees (layer ``skip_scale``), standardised per column, and freeze it; return
    what was chosen (for provenance). Call it before the optimiser is built."""
    import keras

    cnn, feat, skip = (model.get_layer(n) for n in ("cnn_out", "skip_scale", "linear_skip"))
    probe = keras.Model(model.inputs, [cnn.output, feat.output])
    outs = [probe(x[i : i + batch], training=False) for i in range(0, len(x), batch)]
    c = np.concatenate([np.asarray(o[0]) for o in outs])[:, 0].astype(np.float64)
    f = np.concatenate([np.asarray(o[1]) for o in outs]).astype(np.float64)
    target = np.asarray(y, np.float64) - c
    fs, mean, scale = standardised(f)
    alpha, scores = choose_alpha(fs, target, cells)
    beta, b0 = ridge_dual(fs, target, alpha)
    w = beta / scale  # back onto the path's own features
    b = b0 - float(mean @ w)
    kernel, bias = skip.get_weights()
    skip.set_weights([w.reshape(kernel.shape).astype(kernel.dtype), np.full_like(bias, b)])
    skip.trainable = False
    fitted = c + f @ w + b  # the model's output now (no dropout at inference)
    return {
        "method": "ridge on y - CNN(x), columns standardised, strength by grouped folds over "
        "the training cells; the path then frozen",
        "examples": int(len(y)),
        "cells": int(len(set(np.asarray(cells).tolist()))),
        "alpha": float(alpha),
        "fold_scores": scores,
        "training_mae_after": float(np.mean(np.abs(fitted - np.asarray(y, np.float64)))),
    }
