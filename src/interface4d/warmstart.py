"""Closed-form ridge fits of the step-position networks' linear path: a start before training
(``skip_init: ridge``) and a refit after it (``skip_refit: ridge``).

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

With ``skip_refit: ridge`` the path is completed after training instead: SGD trains CNN and path
together as usual, and then the ridge regression of what the *trained network* still misses on
its training draws (``y - network(x)``, same features; the strength the folds choose for a
ridge of ``y``) is added to the path. A network with ``skip: linear`` is linear in the path's
weights, so this is the exact least-squares (ridge) solution for the path given the trained
CNN: SGD with mixup and weight decay leaves the network short of fitting its own training cells
(training MAE 0.013-0.016 against ridge's 0.009 on the demo), and the refit closes that gap
without touching the CNN.
Chosen by cross-validation over the training cells (``benchmarks/skip_refit_cv.py``).

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
    f, y = np.asarray(f, np.float64), np.asarray(y, np.float64)
    gram = f @ f.T  # once: each fold's centred kernels follow from it, each strength from eigh
    for j in range(k):
        fit, held = fold != j, fold == j
        g_fit, g_held = gram[np.ix_(fit, fit)], gram[np.ix_(held, fit)]
        r, r_held = g_fit.mean(1), g_held.mean(1)  # f_i . m, f_h . m (m: the fit rows' mean)
        k_fit = g_fit - r[:, None] - r[None, :] + r.mean()
        k_held = g_held - r_held[:, None] - r[None, :] + r.mean()
        lam, vec = np.linalg.eigh(k_fit)
        ym = y[fit].mean()
        vy = vec.T @ (y[fit] - ym)
        for i, alpha in enumerate(ALPHAS):  # ridge_dual's prediction, strength by strength
            pred = k_held @ (vec @ (vy / (lam + alpha))) + ym
            errors[i] += float(np.sum(np.abs(pred - y[held])))
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


def _ridge_onto_path(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    cells: Sequence[str],
    start: str,
    batch: int,
    strength_of_y: bool | None = None,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """The ridge fit of ``y - start(x)`` (``start``: the CNN's head ``cnn_out`` or the whole
    network) on the linear path's features (layer ``skip_scale``), standardised per column:
    ``(w, b, info)`` on the path's own features. The strength is chosen by grouped folds: for
    the fitted target itself when ``start`` is the fresh CNN; for ``y`` (the strength a ridge
    of the step fraction takes on these cells) when it is the trained network, whose misses
    on a cell held out of the folds are still misses on a cell it trained on (chosen on them,
    the folds took the grid's largest strength, a refit of nothing, where the strength of
    ``y`` helped across held-out training cells: ``benchmarks/skip_refit_cv.py``).
    ``strength_of_y`` overrides that choice (the refit that replaces the path fits ``y -
    CNN(x)`` of the trained CNN with the strength of ``y``)."""
    import keras

    out = model.get_layer("cnn_out").output if start == "cnn" else model.outputs[0]
    probe = keras.Model(model.inputs, [out, _path_layers(model, "skip_scale")[0].output])
    outs = [probe(x[i : i + batch], training=False) for i in range(0, len(x), batch)]
    c = np.concatenate([np.asarray(o[0]) for o in outs])[:, 0].astype(np.float64)
    f = np.concatenate([np.asarray(o[1]) for o in outs]).astype(np.float64)
    y = np.asarray(y, np.float64)
    fs, mean, scale = standardised(f)
    of_y = start != "cnn" if strength_of_y is None else strength_of_y
    alpha, scores = choose_alpha(fs, y if of_y else y - c, cells)
    beta, b0 = ridge_dual(fs, y - c, alpha)
    w = beta / scale  # back onto the path's own features
    b = b0 - float(mean @ w)
    info = {
        "examples": int(len(y)),
        "cells": int(len(set(np.asarray(cells).tolist()))),
        "alpha": float(alpha),
        "fold_scores": scores,
        "training_mae_after": float(np.mean(np.abs(c + f @ w + b - y))),
    }
    if start == "network":
        info["training_mae_before"] = float(np.mean(np.abs(c - y)))
    return w, b, info


def _path_layers(model: Any, name: str) -> list[Any]:
    """Layer ``name`` of a single network, or of every member of an ensemble (``m<k>_name``;
    the members' ``skip_scale`` layers see the same standardised input)."""
    found = [layer for layer in model.layers if layer.name == name]
    return found or [layer for layer in model.layers if layer.name.endswith(f"_{name}")]


def _set_path(model: Any, w: np.ndarray, b: float):
    """Set the linear path (layer ``linear_skip``) to weights ``w`` and bias ``b``; the layer."""
    skip = model.get_layer("linear_skip")
    kernel, bias = skip.get_weights()
    skip.set_weights([w.reshape(kernel.shape).astype(kernel.dtype), np.full_like(bias, b)])
    return skip


def warm_start_skip(
    model: Any, x: np.ndarray, y: np.ndarray, cells: Sequence[str], batch: int = 64
) -> dict[str, Any]:
    """Set ``model``'s linear path (layer ``linear_skip``) to the ridge fit of ``y - CNN(x)`` on
    the features it sees (layer ``skip_scale``), standardised per column, and freeze it; return
    what was chosen (for provenance). Call it before the optimiser is built."""
    w, b, info = _ridge_onto_path(model, x, y, cells, "cnn", batch)
    _set_path(model, w, b).trainable = False
    return {
        "method": "ridge on y - CNN(x), columns standardised, strength by grouped folds over "
        "the training cells; the path then frozen",
        **info,
    }


def refit_skip(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    cells: Sequence[str],
    batch: int = 64,
    mode: str = "ridge",
) -> dict[str, Any]:
    """``mode='ridge'``: add to ``model``'s trained linear path the ridge fit of ``y -
    network(x)`` on the features it sees, standardised per column (``skip_refit: ridge``);
    ``mode='replace'``: set the path to the ridge fit of ``y - CNN(x)`` instead, dropping what
    SGD left in it (``skip_refit: replace``; the same strength). Return what was chosen (for
    provenance). Call it after training, on the saved epoch's weights. An ensemble (``members >
    1``, ``mode='ridge'`` only): the fit of what the members' mean misses, added to every
    member's path, so the mean output moves by it."""
    if mode == "replace":
        w, b, info = _ridge_onto_path(model, x, y, cells, "cnn", batch, strength_of_y=True)
        _set_path(model, w, b)
        return {
            "method": "ridge on y - CNN(x) after training, columns standardised, strength by "
            "grouped folds over the training cells (of y), replacing the linear path",
            **info,
        }
    if mode != "ridge":
        raise ValueError(f"skip_refit mode must be 'ridge' or 'replace', not {mode!r}")
    w, b, info = _ridge_onto_path(model, x, y, cells, "network", batch)
    for skip in _path_layers(model, "linear_skip"):  # an ensemble's mean moves by (w, b)
        kernel, bias = skip.get_weights()
        skip.set_weights([
            (kernel.astype(np.float64) + w.reshape(kernel.shape)).astype(kernel.dtype),
            (bias.astype(np.float64) + b).astype(bias.dtype),
        ])  # fmt: skip
    return {
        "method": "ridge on y - network(x) after training, columns standardised, strength by "
        "grouped folds over the training cells, added to the linear path",
        **info,
    }
