"""The evaluation's tables: one row per validation example, per held-out cell, per step cell.

* :func:`classifier_table` and :func:`regression_rows` -- the predictions on each validation
  example beside its manifest entry (``classifier_predictions.csv``,
  ``regression_predictions.csv``);
* :func:`cell_votes` -- a held-out cell classified by the mean of its lines' probabilities;
* :func:`detectability` -- each held-out step cell against its depth below the exit surface
  (``detectability.csv``), read back from the prediction tables (no TensorFlow);
* :func:`example_rows` -- the validation examples the figures show.

Steps beyond :data:`NEAR_EXIT` of the thickness lie in its last 10 %; they are reported apart,
never dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interface4d.datasets import CLASSES

CLASS_NAMES = tuple(sorted(CLASSES, key=CLASSES.get))  # ("step", "diffusion")
NEAR_EXIT = 0.9  # step fraction beyond which a step lies in the last 10 % of the thickness


def classifier_table(
    idx: np.ndarray, y: np.ndarray, prob: np.ndarray, prob_base: np.ndarray, meta: pd.DataFrame
) -> pd.DataFrame:
    """One row per validation example: its manifest entry (``meta``, rows ``idx``), true class,
    the network's class probabilities ``prob`` and class, and the baseline's (``prob_base``)."""
    pred = prob.argmax(axis=1)
    df = pd.DataFrame(
        {
            "index": idx,
            "cell": meta["cell"].to_numpy(),
            "line": meta["line"].to_numpy(),
            "kind": meta["kind"].to_numpy(),
            "thickness": meta["thickness"].to_numpy(),
            "step_fraction": meta["step_fraction"].to_numpy(),
            "ti_fraction": meta["ti_fraction"].to_numpy(),
            "seed": meta["seed"].to_numpy(),
            "y_true": y,
            "p_step": prob[:, CLASSES["step"]],
            "p_diffusion": prob[:, CLASSES["diffusion"]],
            "y_pred": pred,
            "p_diffusion_baseline": prob_base[:, CLASSES["diffusion"]],
            "y_pred_baseline": prob_base.argmax(axis=1),
        }
    )
    df["predicted"] = [CLASS_NAMES[int(p)] for p in df["y_pred"]]
    df["correct"] = df["y_true"] == df["y_pred"]
    df["correct_baseline"] = df["y_true"] == df["y_pred_baseline"]
    df["confidence"] = prob.max(axis=1)
    return df


def regression_rows(
    model_t: float, data_t: float, idx, y, pred, man: pd.DataFrame, baseline=None
) -> pd.DataFrame:
    """One row per validation example of the ``data_t`` dataset predicted by the ``model_t``
    model: cell, true and predicted step fraction, absolute error (and the baseline's).

    ``pred`` (and ``baseline``) of shape (K, B) are K validation draws of each example: the
    ``predicted`` columns are the first draw's (training's development draw) and the absolute
    errors the mean over the K draws, as the scores take them; ``val_draws`` says K."""
    true = y.astype(np.float64)
    draws = np.atleast_2d(np.asarray(pred, np.float64))
    out = pd.DataFrame(
        {
            "model_thickness": model_t,
            "data_thickness": data_t,
            "index": idx,
            "cell": man["cell"].to_numpy(),
            "true": true,
            "predicted": draws[0],
            "abs_error": np.abs(draws - true).mean(axis=0),
            "val_draws": draws.shape[0],
        }
    )
    if baseline is not None:
        base = np.atleast_2d(np.asarray(baseline, np.float64))
        out["predicted_baseline"] = base[0]
        out["abs_error_baseline"] = np.abs(base - true).mean(axis=0)
    return out


def cell_votes(df: pd.DataFrame) -> pd.DataFrame:
    """One row per validation cell: the mean class probability over its lines and the class
    it gives (``y_pred``), beside the cell's true class."""
    g = df.groupby("cell", sort=True)
    out = pd.DataFrame(
        {
            "y_true": g["y_true"].first(),
            "p_diffusion": g["p_diffusion"].mean(),
            "lines": g.size(),
            "near_exit": g["step_fraction"].first().fillna(0).astype(float) > NEAR_EXIT,
        }
    )
    out["y_pred"] = (out["p_diffusion"] > 0.5).astype(np.int64)
    return out.reset_index()


def example_rows(df: pd.DataFrame, per_class: int, seed: int) -> np.ndarray:
    """Dataset rows shown as examples: ``per_class`` validation examples of each class, drawn
    with a fixed seed (not chosen by correctness)."""
    rng = np.random.default_rng([seed, 7])
    picks: list[int] = []
    for c in range(len(CLASS_NAMES)):
        rows = df.loc[df["y_true"] == c, "index"].to_numpy()
        if len(rows):
            picks += sorted(rng.choice(rows, min(per_class, len(rows)), replace=False).tolist())
    return np.asarray(picks, dtype=np.int64)


def detectability(
    classifier_predictions: str | Path, regression_predictions: str | Path | None
) -> pd.DataFrame:
    """One row per held-out step cell: its thickness, step fraction and the step's distance from
    the exit surface (Å), the classifier's accuracy over its lines and its cell vote, and the
    step-position error of its thickness's model, each for the network and the baseline."""
    cls = pd.read_csv(classifier_predictions)
    steps = cls[cls["kind"] == "step"]
    if steps.empty:
        return pd.DataFrame()
    g = steps.groupby("cell", sort=True)
    out = pd.DataFrame(
        {
            "thickness": g["thickness"].first(),
            "step_fraction": g["step_fraction"].first(),
            "lines": g.size(),
            "line_accuracy": g["correct"].mean(),
            "cell_correct": g["p_diffusion"].mean() < 0.5,
            "line_accuracy_baseline": g["correct_baseline"].mean(),
            "cell_correct_baseline": g["p_diffusion_baseline"].mean() < 0.5,
        }
    ).reset_index()
    out["distance_from_exit_A"] = out["thickness"] * (1.0 - out["step_fraction"])
    out["near_exit"] = out["step_fraction"] > NEAR_EXIT
    if regression_predictions is not None:
        reg = pd.read_csv(regression_predictions)
        own = reg[reg["model_thickness"] == reg["data_thickness"]].set_index("cell")
        out["position_abs_error"] = out["cell"].map(own["abs_error"])
        if "abs_error_baseline" in own:
            out["position_abs_error_baseline"] = out["cell"].map(own["abs_error_baseline"])
    return out.sort_values(["thickness", "distance_from_exit_A"]).reset_index(drop=True)
