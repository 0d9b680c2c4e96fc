"""Evaluation metrics for the step/diffusion classifier and step-fraction regressors.

Pure NumPy (no TensorFlow or scikit-learn), so the metrics can be used in
analysis scripts, plots and tests without the training stack.

Label conventions follow the classifier: class ``0`` = step, class ``1`` =
diffusion, and a "score" is the softmax probability of class ``1``.

Every function raises :class:`ValueError` on empty input, on length
mismatches, and on labels outside the allowed range.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "bootstrap_interval",
    "confusion_matrix",
    "grouped_accuracy",
    "mae",
    "reliability",
    "roc_auc",
    "roc_curve",
    "wilson_interval",
]


# --------------------------------------------------------------------------- helpers


def _as_1d(a: ArrayLike, name: str) -> NDArray[Any]:
    """Return ``a`` as a non-empty 1-D array, or raise ValueError."""
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _check_same_length(a: NDArray[Any], b: NDArray[Any], name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {name_a} has {len(a)} entries, {name_b} has {len(b)}")


def _as_labels(a: ArrayLike, name: str, n_classes: int | None = None) -> NDArray[np.int64]:
    """Return ``a`` as a 1-D int64 array of class labels in ``[0, n_classes)``.

    Integer and boolean arrays are accepted, as are float arrays whose values
    are all integral (e.g. labels read back from HDF5 as floats).
    """
    arr = _as_1d(a, name)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must contain integer class labels")
        arr = arr.astype(np.int64)
    else:
        raise ValueError(f"{name} must contain integer class labels, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{name} contains negative label {int(arr.min())}")
    if n_classes is not None and arr.max() >= n_classes:
        raise ValueError(
            f"{name} contains label {int(arr.max())} outside range [0, {n_classes - 1}]"
        )
    return arr


def _as_finite_float(a: ArrayLike, name: str) -> NDArray[np.float64]:
    """Return ``a`` as a non-empty float64 array with only finite values."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric") from exc
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_confidence(confidence: float) -> float:
    """Return ``confidence`` as a float in the open interval ``(0, 1)``, or raise ValueError."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float | np.number):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    return c


def _check_int(value: Any, name: str) -> int:
    """Return ``value`` as a Python int (bools rejected), or raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _binary_inputs(
    y_true: ArrayLike, score: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate binary labels + scores for ROC metrics; both classes must be present."""
    y = _as_labels(y_true, "y_true", n_classes=2)
    s = _as_finite_float(score, "score")
    if s.ndim != 1:
        raise ValueError(f"score must be 1-D, got shape {s.shape}")
    _check_same_length(y, s, "y_true", "score")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError("ROC is undefined: y_true must contain both classes 0 and 1")
    return y, s


def _roc_counts(
    y: NDArray[np.int64], s: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Cumulative (false positive, true positive) counts at each distinct threshold.

    Scores are sorted in decreasing order and equal scores are grouped, so a
    tie group moves the curve diagonally in one step. The first point is
    (0, 0) with threshold ``+inf``.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # index of the last element of each group of equal scores
    last = np.flatnonzero(np.diff(s_sorted) != 0)
    last = np.r_[last, len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tps = np.r_[0, tps].astype(np.int64)
    fps = np.r_[0, fps].astype(np.int64)
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fps, tps, thresholds


# --------------------------------------------------------------------------- classification


def accuracy(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> float:
    """Fraction of predictions equal to the true label.

    Args:
        y_true: 1-D integer class labels.
        y_pred: 1-D integer predicted labels, same length.
        n_classes: if given, labels must lie in ``[0, n_classes)``; otherwise
            they only have to be non-negative integers.

    Returns:
        Accuracy in ``[0, 1]``.
    """
    t = _as_labels(y_true, "y_true", n_classes)
    p = _as_labels(y_pred, "y_pred", n_classes)
    _check_same_length(t, p, "y_true", "y_pred")
    return float(np.mean(t == p))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int = 2) -> NDArray[np.int64]:
    """Confusion matrix of counts.

    Args:
        y_true: 1-D integer class labels in ``[0, n_classes)``.
        y_pred: 1-D integer predicted labels in ``[0, n_classes)``, same length.
        n_classes: number of classes (2 for step vs diffusion).

    Returns:
        ``(n_classes, n_classes)`` int64 array ``C`` where ``C[i, j]`` is the
        number of samples with true class ``i`` predicted as class ``j``
        (rows = true, columns = predicted).
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"n_classes must be an integer, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    n = int(n_classes)
    t = _as_labels(y_true, "y_true", n)
    p = _as_labels(y_pred, "y_pred", n)
    _check_same_length(t, p, "y_true", "y_pred")
    return np.bincount(n * t + p, minlength=n * n).reshape(n, n).astype(np.int64)


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int = 2) -> float:
    """Mean per-class recall over the classes present in ``y_true``.

    Classes that never occur in ``y_true`` have undefined recall and are
    skipped (as in scikit-learn's ``balanced_accuracy_score``); predictions of
    such a class still count as errors for the true class of that sample.

    Args:
        y_true: 1-D integer class labels in ``[0, n_classes)``.
        y_pred: 1-D integer predicted labels in ``[0, n_classes)``, same length.
        n_classes: number of classes (2 for step vs diffusion).

    Returns:
        Balanced accuracy in ``[0, 1]``; equals :func:`accuracy` when all
        present classes have the same number of samples.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    present = support > 0
    recall = np.diag(cm)[present] / support[present]
    return float(np.mean(recall))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    With ``p = k / n`` and ``z`` the standard normal quantile of
    ``(1 + confidence) / 2``, the interval is

    ``(p + z^2 / (2n) -/+ z * sqrt(p (1 - p) / n + z^2 / (4 n^2))) / (1 + z^2 / n)``.

    Unlike the normal (Wald) interval it stays inside ``[0, 1]`` and is not
    degenerate at ``k = 0`` or ``k = n``.

    Args:
        k: number of successes (e.g. correct predictions), ``0 <= k <= n``.
        n: number of trials, ``n >= 1``.
        confidence: coverage level in ``(0, 1)``.

    Returns:
        ``(lower, upper)`` clipped to ``[0, 1]``; ``lower`` is exactly 0 for
        ``k = 0`` and ``upper`` exactly 1 for ``k = n``.
    """
    k = _check_int(k, "k")
    n = _check_int(n, "n")
    c = _check_confidence(confidence)
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if k < 0 or k > n:
        raise ValueError(f"k must lie in [0, n] = [0, {n}], got {k}")
    z = NormalDist().inv_cdf((1.0 + c) / 2.0)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denom
    lower = 0.0 if k == 0 else min(max(center - half, 0.0), 1.0)
    upper = 1.0 if k == n else min(max(center + half, 0.0), 1.0)
    return float(lower), float(upper)


def roc_curve(
    y_true: ArrayLike, score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Receiver operating characteristic for binary labels.

    Samples are predicted positive when ``score >= threshold``. Equal scores
    are grouped into a single point, so ties produce a diagonal segment.

    Args:
        y_true: 1-D labels in ``{0, 1}``; both classes must be present.
        score: 1-D finite scores, the probability (or any monotone score) of class 1.

    Returns:
        ``(fpr, tpr, thresholds)``: arrays of equal length, one entry per
        distinct score plus a leading point. ``fpr`` and ``tpr`` are
        non-decreasing, start at ``(0, 0)`` (threshold ``+inf``) and end at
        ``(1, 1)`` (threshold = minimum score). ``thresholds`` is strictly
        decreasing.
    """
    y, s = _binary_inputs(y_true, score)
    fps, tps, thresholds = _roc_counts(y, s)
    n_pos = int(tps[-1])
    n_neg = int(fps[-1])
    return fps / n_neg, tps / n_pos, thresholds


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (trapezoid rule over :func:`roc_curve`).

    Because ties are grouped into diagonal segments, the trapezoid area equals
    the Mann-Whitney statistic ``U / (n_pos * n_neg)``: the fraction of
    (positive, negative) pairs where the positive scores higher, with tied
    pairs counted 1/2. The area is accumulated in integer counts and divided
    once, so both formulations agree exactly up to a single rounding.

    Args:
        y_true: 1-D labels in ``{0, 1}``; both classes must be present.
        score: 1-D finite scores for class 1.

    Returns:
        AUC in ``[0, 1]``: 1 for perfect separation, 0 for inverted, 0.5 for
        constant scores.
    """
    y, s = _binary_inputs(y_true, score)
    fps, tps, _ = _roc_counts(y, s)
    n_pos = int(tps[-1])
    n_neg = int(fps[-1])
    # trapezoid: sum dfp * (tp_prev + tp) / 2, in integer arithmetic
    twice_area = int(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])))
    return twice_area / (2 * n_pos * n_neg)


# --------------------------------------------------------------------------- regression


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error, e.g. of a predicted step fraction.

    Args:
        y_true: finite numeric targets (any shape).
        y_pred: finite numeric predictions with the same shape.

    Returns:
        ``mean(|y_true - y_pred|)``.
    """
    t = _as_finite_float(y_true, "y_true")
    p = _as_finite_float(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: y_true has shape {t.shape}, y_pred has {p.shape}")
    return float(np.mean(np.abs(t - p)))


# --------------------------------------------------------------------------- calibration


def reliability(y_true: ArrayLike, prob: ArrayLike, n_bins: int = 10) -> dict[str, Any]:
    """Binned reliability (calibration) statistics and expected calibration error.

    Two input forms are supported, and they measure different things:

    * ``prob`` of shape ``(n, k)`` (softmax output, rows summing to 1): the
      *confidence* is the top-class probability ``max(prob, axis=1)`` and the
      per-bin *accuracy* is the fraction where ``argmax(prob) == y_true``
      (top-label calibration, as in Guo et al. 2017). Confidences lie in
      ``[1/k, 1]``, so low bins stay empty.
    * ``prob`` of shape ``(n,)``: the probability of class 1. The
      *confidence* is that probability and the per-bin *accuracy* is the
      observed fraction of ``y_true == 1`` (binary calibration curve). Labels
      must be in ``{0, 1}``.

    Bins are ``[i/n_bins, (i+1)/n_bins)`` for ``i < n_bins - 1`` and the last
    bin is closed, ``[1 - 1/n_bins, 1]``.

    Args:
        y_true: 1-D integer labels (``< k`` for 2-D ``prob``, ``{0, 1}`` for 1-D).
        prob: probabilities in ``[0, 1]``, shape ``(n,)`` or ``(n, k)``.
        n_bins: number of equal-width bins on ``[0, 1]``.

    Returns:
        dict with

        * ``"bin_edges"``: ``(n_bins + 1,)`` float array;
        * ``"confidence"``: ``(n_bins,)`` mean confidence per bin (NaN if empty);
        * ``"accuracy"``: ``(n_bins,)`` accuracy / positive fraction per bin (NaN if empty);
        * ``"count"``: ``(n_bins,)`` int64 number of samples per bin;
        * ``"ece"``: float, ``sum_b count_b / n * |accuracy_b - confidence_b|``
          over non-empty bins.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n_bins = int(n_bins)
    p = _as_finite_float(prob, "prob")
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("prob must lie in [0, 1]")
    if p.ndim == 1:
        y = _as_labels(y_true, "y_true", n_classes=2)
        _check_same_length(y, p, "y_true", "prob")
        conf = p
        hit = y.astype(np.float64)
    elif p.ndim == 2:
        if p.shape[1] < 2:
            raise ValueError(f"2-D prob needs at least 2 columns, got shape {p.shape}")
        y = _as_labels(y_true, "y_true", n_classes=p.shape[1])
        _check_same_length(y, p, "y_true", "prob")
        conf = p.max(axis=1)
        hit = (p.argmax(axis=1) == y).astype(np.float64)
    else:
        raise ValueError(f"prob must be 1-D or 2-D, got shape {p.shape}")

    idx = np.minimum(np.floor(conf * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(idx, weights=hit, minlength=n_bins)
    nonempty = count > 0
    mean_conf = np.full(n_bins, np.nan)
    mean_acc = np.full(n_bins, np.nan)
    mean_conf[nonempty] = conf_sum[nonempty] / count[nonempty]
    mean_acc[nonempty] = hit_sum[nonempty] / count[nonempty]
    ece = float(np.sum(count[nonempty] / len(y) * np.abs(mean_acc[nonempty] - mean_conf[nonempty])))
    return {
        "bin_edges": np.linspace(0.0, 1.0, n_bins + 1),
        "confidence": mean_conf,
        "accuracy": mean_acc,
        "count": count,
        "ece": ece,
    }


# --------------------------------------------------------------------------- grouping


def grouped_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | Sequence[Hashable]
) -> dict[Hashable, tuple[float, int]]:
    """Accuracy within each group (e.g. per thickness, step fraction or Ti fraction).

    Args:
        y_true: 1-D integer class labels.
        y_pred: 1-D integer predicted labels, same length.
        groups: 1-D group key per sample (numbers or strings), same length.

    Returns:
        ``{group: (accuracy, count)}`` in sorted group order. NumPy scalar keys
        are converted to plain Python values (``float``, ``int``, ``str``).
    """
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    g = _as_1d(groups, "groups")
    _check_same_length(t, p, "y_true", "y_pred")
    _check_same_length(t, g, "y_true", "groups")
    if g.dtype.kind == "f" and np.any(np.isnan(g)):
        raise ValueError("groups contains NaN")
    keys, inverse = np.unique(g, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=len(keys))
    hits = np.bincount(inverse, weights=(t == p).astype(np.float64), minlength=len(keys))
    out: dict[Hashable, tuple[float, int]] = {}
    for k, key in enumerate(keys):
        py_key = key.item() if isinstance(key, np.generic) else key
        out[py_key] = (float(hits[k] / counts[k]), int(counts[k]))
    return out


def bootstrap_interval(
    values: ArrayLike,
    groups: ArrayLike | Sequence[Hashable],
    statistic: str = "mean",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval that resamples whole groups (e.g. cells).

    Samples within a group are usually correlated (several patterns from one
    simulated cell), so resampling individual values would understate the
    uncertainty. Each replicate instead draws ``G`` (= number of distinct
    groups) groups with replacement and pools all values of the drawn groups,
    i.e. the replicate mean is ``sum of drawn group sums / sum of drawn group
    sizes`` (a group drawn twice counts twice).

    The bounds are order statistics of the replicate means: the lower bound is
    the ``(1 - confidence) / 2`` quantile rounded down, the upper bound the
    ``(1 + confidence) / 2`` quantile rounded up (NumPy ``method="lower"`` /
    ``"higher"``), so both are achievable replicate values.

    Args:
        values: 1-D finite per-sample values (absolute errors, 0/1 correctness, ...).
        groups: 1-D group key per sample (numbers or strings), same length.
        statistic: only ``"mean"`` is supported.
        n_boot: number of bootstrap replicates, ``>= 1``.
        confidence: coverage level in ``(0, 1)``.
        seed: seed for :func:`numpy.random.default_rng`; the result is
            deterministic for a given seed.

    Returns:
        ``(lower, upper)``. With a single group, or when all values are equal,
        both bounds equal the sample mean.
    """
    if statistic != "mean":
        raise ValueError(f"unsupported statistic {statistic!r}; only 'mean' is supported")
    n_boot = _check_int(n_boot, "n_boot")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    c = _check_confidence(confidence)
    seed = _check_int(seed, "seed")
    v = _as_finite_float(values, "values")
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    g = _as_1d(groups, "groups")
    _check_same_length(v, g, "values", "groups")
    if g.dtype.kind == "f" and np.any(np.isnan(g)):
        raise ValueError("groups contains NaN")

    keys, inverse = np.unique(g, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_groups = len(keys)
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    if n_groups == 1:
        mean = float(np.mean(v))
        return mean, mean

    group_sum = np.bincount(inverse, weights=v, minlength=n_groups)
    group_count = np.bincount(inverse, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    # replicates are processed in chunks so the (chunk, n_groups) index array stays small
    chunk = max(1, min(n_boot, 2_000_000 // n_groups))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, n_groups, size=(stop - start, n_groups))
        stats[start:stop] = group_sum[idx].sum(axis=1) / group_count[idx].sum(axis=1)

    alpha = 1.0 - c
    lower = float(np.quantile(stats, alpha / 2, method="lower"))
    upper = float(np.quantile(stats, 1.0 - alpha / 2, method="higher"))
    return lower, upper
