"""A ridge warm start for the step-position networks' linear path (``skip_init: ridge``).

With ``skip: linear`` a regressor is ``CNN(z) + w . (s z) + b`` (:mod:`interface4d.model`). By
default ``w`` starts at zero and SGD has to find the linear part of the answer while the CNN
learns the rest. With ``skip_init: ridge`` the linear path starts where a ridge regression puts
it instead: on augmented draws of the training examples (the training's own first epochs'
draws), ``w`` and ``b`` are fitted in closed form to what the freshly initialised CNN leaves,
``y - CNN(z)``, on exactly the features the path sees (``s z``, read off the model's own layers),
with the ridge strength chosen by grouped K-fold over the training cells. Training then starts
from the ridge answer and the CNN learns its residual. The validation cells are not read.

NumPy only, apart from the model passed in (the caller owns Keras).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DRAWS = 16  # augmented draws of each training example (as the ridge baseline takes)
MAX_EXAMPLES = 4000  # draws at most (a seeded subset of larger campaigns)
FOLDS = 7  # grouped folds over the training cells that choose the ridge strength
RELATIVE_ALPHA = tuple(float(a) for a in np.logspace(-8, 2, 21))  # x mean squared feature norm
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
    """The ridge strength with the smallest mean absolute error over grouped folds (whole
    groups, i.e. cells, held out together; dealt in sorted order); the scores of every
    strength tried. Strengths are relative to the mean squared norm of the centred features."""
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    k = min(int(folds), len(names))
    scale = float(np.mean(np.sum((f - f.mean(0)) ** 2, axis=1))) or 1.0
    alphas = [r * scale for r in RELATIVE_ALPHA]
    if k < 2:
        return alphas[len(alphas) // 2], []
    fold_of = {n: i % k for i, n in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups.tolist()])
    errors = np.zeros(len(alphas))
    for j in range(k):
        fit, held = fold != j, fold == j
        for i, alpha in enumerate(alphas):
            w, b = ridge_dual(f[fit], y[fit], alpha)
            errors[i] += float(np.sum(np.abs(f[held] @ w + b - y[held])))
    errors /= len(y)
    scores = [
        {"relative_alpha": r, "alpha": a, "mae": float(e)}
        for r, a, e in zip(RELATIVE_ALPHA, alphas, errors, strict=True)
    ]
    return alphas[int(np.argmin(errors))], scores


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
    the features it sees (layer ``skip_scale``); return what was chosen (for provenance)."""
    import keras

    cnn, scale, skip = (model.get_layer(n) for n in ("cnn_out", "skip_scale", "linear_skip"))
    probe = keras.Model(model.inputs, [cnn.output, scale.output])
    outs = [probe(x[i : i + batch], training=False) for i in range(0, len(x), batch)]
    c = np.concatenate([np.asarray(o[0]) for o in outs])[:, 0].astype(np.float64)
    f = np.concatenate([np.asarray(o[1]) for o in outs]).astype(np.float64)
    target = np.asarray(y, np.float64) - c
    alpha, scores = choose_alpha(f, target, cells)
    w, b = ridge_dual(f, target, alpha)
    kernel, bias = skip.get_weights()
    skip.set_weights([w.reshape(kernel.shape).astype(kernel.dtype), np.full_like(bias, b)])
    fitted = np.asarray(model.predict(x, batch_size=batch, verbose=0)).reshape(-1)
    return {
        "method": "ridge on y - CNN(x), grouped folds over the training cells",
        "examples": int(len(y)),
        "cells": int(len(set(np.asarray(cells).tolist()))),
        "alpha": float(alpha),
        "fold_scores": scores,
        "training_mae_after": float(np.mean(np.abs(fitted - np.asarray(y, np.float64)))),
    }
