"""The validation split as the evaluation sees it: a trained network, its inputs and its outputs.

Validation inputs are augmented as training's development pass augments its cells
(:mod:`interface4d.augment`: per example ``val_rng(val_seed, uid)`` draws a dose log-uniform in
``training.augment.dose`` and a rotation); the dose study keeps that rotation draw and puts shot
noise at a fixed dose instead (or none: :data:`NOISELESS`). :func:`predict_split` streams a split
through several predictors (a network, its linear baseline) so that they see the very same
inputs. Used by :mod:`interface4d.evaluate` and the benchmarks.

TensorFlow/Keras are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interface4d.augment import (
    VAL_STREAM,
    draw_angle,
    draw_dose,
    poisson_noise,
    rotate_patterns,
    val_rng,
)
from interface4d.datasets import H5Examples

NOISELESS = "noiseless"
VAL = "val"  # training's development draw; "val:k" (k >= 1) further draws from their own stream


def val_draw_keys(draws: int) -> list[str]:
    """The keys of ``draws`` validation draws: ``"val"``, ``"val:1"``, ..."""
    return [VAL, *(f"{VAL}:{k}" for k in range(1, int(draws)))]


def _draw_number(dose: Any) -> int | None:
    """k of a validation draw key (0 for ``"val"``), None for a study dose or noiseless."""
    if dose == VAL:
        return 0
    if isinstance(dose, str) and dose.startswith(f"{VAL}:"):
        return int(dose.split(":", 1)[1])
    return None


Predictor = Callable[[np.ndarray], np.ndarray]


def augment_for_eval(
    x: np.ndarray,
    indices: Sequence[int],
    augment_cfg: Mapping[str, Any],
    dose: float | str | None = "val",
) -> np.ndarray:
    """Validation inputs (B, nx, k, k) for dataset rows ``indices``.

    ``dose="val"``: exactly training's validation augmentation (dose and angle drawn from
    ``val_rng(val_seed, index)``); ``"val:k"``: the k-th further draw of both, from
    ``default_rng([val_seed, VAL_STREAM, index, k])``; a number: the ``"val"`` rotation draw,
    shot noise at that dose; ``None`` or ``"noiseless"``: the same rotation, no noise.
    """
    out = np.empty(x.shape, dtype=np.float32)
    k = _draw_number(dose)
    for j, idx in enumerate(indices):
        if k:
            rng = np.random.default_rng([int(augment_cfg["val_seed"]), VAL_STREAM, int(idx), k])
        else:
            rng = val_rng(int(augment_cfg["val_seed"]), int(idx))
        drawn = draw_dose(rng, augment_cfg["dose"])
        angle = draw_angle(rng, float(augment_cfg["rotation_deg"]))
        rotated = rotate_patterns(x[j], angle)
        if k is not None:
            out[j] = poisson_noise(rotated, drawn, rng)
        elif dose is None or dose == NOISELESS:
            out[j] = rotated
        else:
            out[j] = poisson_noise(rotated, float(dose), rng)
    return out


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Network outputs for inputs ``x`` (B, nx, k, k): (B, 2) probabilities or (B,) fractions."""
    import tensorflow as tf

    outs = []
    for i in range(0, len(x), batch_size):
        xb = tf.constant(np.asarray(x[i : i + batch_size], np.float32)[..., None])
        outs.append(np.asarray(model(xb, training=False)))
    if not outs:
        n_out = int(model.outputs[0].shape[-1])
        return np.empty((0, n_out) if n_out > 1 else (0,), np.float32)
    out = np.concatenate(outs)
    return out[:, 0] if out.shape[-1] == 1 else out


def predict_split(
    predictors: Mapping[str, Predictor],
    dataset_h5: str | Path,
    augment_cfg: Mapping[str, Any],
    doses: Sequence[float | str | None],
    batch_size: int = 64,
    split: str = "val",
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[Any, np.ndarray]]]:
    """Predict one split of a dataset at several doses with several predictors (the network and
    its baseline see the very same inputs), streaming (never the whole split in memory).

    ``predictors`` maps a name to a function of raw augmented examples (B, nx, k, k). Returns
    (row indices, targets, {name: {dose: outputs}}). The augmentation draws are keyed by each
    example's :func:`interface4d.splits.example_uid`, as in training's development pass.
    """
    with H5Examples(dataset_h5, split) as data:
        idx = data.indices
        targets = []
        outs: dict[str, dict[Any, list[np.ndarray]]] = {
            n: {d: [] for d in doses} for n in predictors
        }
        for i in range(0, len(idx), batch_size):
            rows = idx[i : i + batch_size]
            x, y = data.batch(rows)
            uids = data.uids(rows)
            targets.append(y)
            for d in doses:
                xa = augment_for_eval(x, uids, augment_cfg, d)
                for name, fn in predictors.items():
                    outs[name][d].append(np.asarray(fn(xa)))
    y_all = np.concatenate(targets) if targets else np.empty((0,))
    joined = {
        n: {d: np.concatenate(v) if v else np.empty((0,)) for d, v in per.items()}
        for n, per in outs.items()
    }
    return idx, y_all, joined


def network_predictor(model, batch_size: int = 64) -> Predictor:
    return lambda x: predict(model, x, batch_size)


def validation_examples(
    dataset_h5: str | Path, rows, augment_cfg: Mapping[str, Any]
) -> tuple[np.ndarray, Any]:
    """The validation inputs of dataset rows ``rows`` (the figures' examples), augmented as in
    training's development pass, and the dataset's ``scan_x_relative_A`` attribute (or None)."""
    with H5Examples(dataset_h5, "val") as data:
        x, _ = data.batch(rows)
        uids = data.uids(rows)
        scan_x = data.attrs.get("scan_x_relative_A")
    return augment_for_eval(x, uids, augment_cfg, "val"), scan_x


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A dataset's manifest CSV, indexed by dataset row."""
    df = pd.read_csv(path)
    return df.set_index("index", drop=False)
