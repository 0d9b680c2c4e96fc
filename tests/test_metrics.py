"""Tests for interface4d.metrics, with answers worked out by hand in comments."""

from __future__ import annotations

import numpy as np
import pytest

from interface4d import metrics as m


def _mann_whitney(y: np.ndarray, s: np.ndarray) -> float:
    """Brute-force pairwise AUC: P(s_pos > s_neg) + 1/2 P(s_pos == s_neg)."""
    pos = s[y == 1]
    neg = s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (wins + 0.5 * ties) / (len(pos) * len(neg))


# --------------------------------------------------------------------------- accuracy / confusion


def test_accuracy_three_of_four():
    # matches at positions 0, 1, 3; mismatch at 2 -> 3/4
    assert m.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75


def test_accuracy_accepts_integral_floats_and_bools():
    assert m.accuracy(np.array([0.0, 1.0]), np.array([False, True])) == 1.0


def test_confusion_matrix_by_hand():
    y_true = [0, 0, 0, 1, 1]
    y_pred = [0, 1, 0, 1, 0]
    # true 0 -> predicted 0 twice, 1 once; true 1 -> predicted 1 once, 0 once
    expected = np.array([[2, 1], [1, 1]])
    cm = m.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 5


def test_confusion_matrix_three_classes():
    # (t, p) pairs: (0,0) (1,2) (2,2) (2,1)
    cm = m.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], n_classes=3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])


# --------------------------------------------------------------------------- ROC / AUC


def test_auc_perfect_inverted_constant():
    y = [0, 0, 1, 1]
    assert m.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    # every (pos, neg) pair is a tie -> 1/2 each
    assert m.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_auc_hand_example():
    # pos scores {0.35, 0.8}, neg {0.1, 0.4}:
    # 0.35>0.1 win, 0.35<0.4 loss, 0.8>0.1 win, 0.8>0.4 win -> 3/4
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_hand_example_with_tie():
    # pos {0.5, 0.9}, neg {0.2, 0.5}:
    # 0.5>0.2 win, 0.5==0.5 tie (1/2), 0.9>0.2 win, 0.9>0.5 win -> 3.5/4
    y = [0, 1, 0, 1]
    s = [0.2, 0.5, 0.5, 0.9]
    assert m.roc_auc(y, s) == pytest.approx(0.875)
    # the tied pair is one diagonal step: (0,0) -> (0,1/2) -> (1/2,1) -> (1,1)
    fpr, tpr, thr = m.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.5, 0.2])


def test_auc_matches_mann_whitney_random():
    rng = np.random.default_rng(12345)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, size=n)
        y[0], y[1] = 0, 1  # both classes present
        # coarse scores so that ties are frequent
        s = rng.integers(0, 6, size=n) / 5.0
        assert m.roc_auc(y, s) == pytest.approx(_mann_whitney(y, s), abs=1e-12)
        fpr, tpr, _ = m.roc_curve(y, s)
        # trapezoid on the returned curve agrees too
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(_mann_whitney(y, s), abs=1e-12)


def test_roc_curve_endpoints_and_monotone():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=50)
    y[:2] = [0, 1]
    s = rng.random(50)
    fpr, tpr, thr = m.roc_curve(y, s)
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.isinf(thr[0]) and thr[-1] == s.min()
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thr) < 0)
    assert len(fpr) == len(tpr) == len(thr) == len(np.unique(s)) + 1


def test_roc_curve_all_equal_scores_is_diagonal():
    fpr, tpr, thr = m.roc_curve([0, 1, 1], [0.3, 0.3, 0.3])
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 1.0])
    np.testing.assert_array_equal(thr, [np.inf, 0.3])


# --------------------------------------------------------------------------- MAE


def test_mae_by_hand():
    # |0.0-0.1| + |0.5-0.5| + |1.0-0.7| = 0.1 + 0 + 0.3 = 0.4 -> /3
    assert m.mae([0.0, 0.5, 1.0], [0.1, 0.5, 0.7]) == pytest.approx(0.4 / 3)


# --------------------------------------------------------------------------- reliability


def test_reliability_1d_by_hand():
    # n_bins=2: [0, 0.5) holds 0.2, 0.4 (labels 0, 1) -> conf 0.3, pos frac 0.5, n 2
    #           [0.5, 1] holds 0.6, 0.8, 1.0 (labels 1,1,1) -> conf 0.8, pos frac 1, n 3
    # ECE = 2/5 * |0.5-0.3| + 3/5 * |1-0.8| = 0.08 + 0.12 = 0.2
    r = m.reliability([0, 1, 1, 1, 1], [0.2, 0.4, 0.6, 0.8, 1.0], n_bins=2)
    np.testing.assert_allclose(r["bin_edges"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(r["confidence"], [0.3, 0.8])
    np.testing.assert_allclose(r["accuracy"], [0.5, 1.0])
    np.testing.assert_array_equal(r["count"], [2, 3])
    assert r["ece"] == pytest.approx(0.2)


def test_reliability_2d_by_hand():
    # confidences (max prob) 0.9, 0.8, 0.6, 0.7; argmax 0, 1, 1, 1 vs y 0, 1, 0, 0
    # -> correct, correct, wrong, wrong. n_bins=5 (width 0.2):
    # bin 3 [0.6, 0.8): 0.6, 0.7 -> conf 0.65, acc 0, n 2
    # bin 4 [0.8, 1.0]: 0.9, 0.8 -> conf 0.85, acc 1, n 2; bins 0-2 empty
    # ECE = 2/4 * 0.65 + 2/4 * 0.15 = 0.4
    prob = [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]]
    r = m.reliability([0, 1, 0, 0], prob, n_bins=5)
    np.testing.assert_array_equal(r["count"], [0, 0, 0, 2, 2])
    assert np.all(np.isnan(r["confidence"][:3])) and np.all(np.isnan(r["accuracy"][:3]))
    np.testing.assert_allclose(r["confidence"][3:], [0.65, 0.85])
    np.testing.assert_allclose(r["accuracy"][3:], [0.0, 1.0])
    assert r["ece"] == pytest.approx(0.4)


def test_reliability_perfectly_calibrated_is_zero():
    # all predictions 1.0 and all labels 1 -> conf 1, acc 1 in the closed last bin
    r = m.reliability([1, 1, 1], [1.0, 1.0, 1.0])
    assert r["count"][-1] == 3 and r["count"].sum() == 3
    assert r["ece"] == 0.0


# --------------------------------------------------------------------------- grouped accuracy


def test_grouped_accuracy_by_hand():
    y_true = [0, 1, 1, 0, 1, 0]
    y_pred = [0, 1, 0, 0, 0, 1]
    thick = [10.0, 10.0, 10.0, 20.0, 20.0, 30.0]
    # t=10: 2 of 3 correct; t=20: 1 of 2; t=30: 0 of 1
    g = m.grouped_accuracy(y_true, y_pred, thick)
    assert list(g) == [10.0, 20.0, 30.0]
    assert all(type(k) is float for k in g)
    assert g[10.0] == (pytest.approx(2 / 3), 3)
    assert g[20.0] == (0.5, 2)
    assert g[30.0] == (0.0, 1)


def test_grouped_accuracy_string_groups():
    g = m.grouped_accuracy([0, 1], [0, 0], ["step", "diff"])
    assert g == {"diff": (0.0, 1), "step": (1.0, 1)}


# --------------------------------------------------------------------------- balanced accuracy


def test_balanced_accuracy_majority_predictor():
    y_true = [0, 0, 0, 0, 1]
    y_pred = [0, 0, 0, 0, 0]
    # plain accuracy 4/5; recall class 0 = 4/4, class 1 = 0/1 -> (1 + 0) / 2
    assert m.accuracy(y_true, y_pred) == pytest.approx(0.8)
    assert m.balanced_accuracy(y_true, y_pred) == pytest.approx(0.5)


def test_balanced_accuracy_perfect():
    assert m.balanced_accuracy([0, 1, 1, 0, 1], [0, 1, 1, 0, 1]) == 1.0


def test_balanced_accuracy_skips_absent_class():
    # n_classes=3 but class 2 never occurs in y_true:
    # recall 0 = 1/2 (one 0 predicted as 2), recall 1 = 2/2 -> (0.5 + 1) / 2
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    assert m.balanced_accuracy(y_true, y_pred, n_classes=3) == pytest.approx(0.75)


# --------------------------------------------------------------------------- Wilson interval


def test_wilson_textbook_8_of_10():
    # z = 1.959964, z^2 = 3.841459, p = 0.8, n = 10:
    # denom  = 1 + z^2/n = 1.384146
    # center = (0.8 + z^2/20) / denom = 0.992073 / 1.384146 = 0.716740
    # half   = z * sqrt(0.8*0.2/10 + z^2/400) / denom
    #        = 1.959964 * sqrt(0.016 + 0.009604) / 1.384146 = 0.226578
    # -> (0.4902, 0.9433)
    lo, hi = m.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)


def test_wilson_zero_successes():
    # k = 0: center = half = (z^2/20) / denom = 0.192073 / 1.384146 = 0.138766
    # -> lower exactly 0, upper 2 * 0.138766 = 0.2775
    lo, hi = m.wilson_interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.2775, abs=1e-4)


def test_wilson_all_successes_is_mirror_of_zero():
    # by symmetry k = n gives (1 - 0.2775, 1) with upper exactly 1
    lo, hi = m.wilson_interval(10, 10)
    assert hi == 1.0
    assert lo == pytest.approx(1 - 0.2775, abs=1e-4)


def test_wilson_wider_at_higher_confidence():
    lo95, hi95 = m.wilson_interval(8, 10, confidence=0.95)
    lo99, hi99 = m.wilson_interval(8, 10, confidence=0.99)
    assert lo99 < lo95 < 0.8 < hi95 < hi99


# --------------------------------------------------------------------------- bootstrap interval


def test_bootstrap_constant_values():
    v = [0.3] * 6
    assert m.bootstrap_interval(v, [0, 0, 1, 1, 2, 2]) == (0.3, 0.3)


def test_bootstrap_single_group_is_mean():
    v = [0.0, 1.0, 2.0, 5.0]
    lo, hi = m.bootstrap_interval(v, ["cell"] * 4)
    assert lo == hi == pytest.approx(2.0)


def test_bootstrap_contains_mean_and_is_deterministic():
    rng = np.random.default_rng(7)
    v = rng.random(300)
    g = np.repeat(np.arange(30), 10)
    lo, hi = m.bootstrap_interval(v, g, seed=3)
    assert lo < v.mean() < hi
    assert m.bootstrap_interval(v, g, seed=3) == (lo, hi)


def test_bootstrap_more_groups_narrower():
    # 50 zeros and 50 ones. As two groups, drawing 2 groups gives pooled means
    # 0 (p 1/4), 1/2 (p 1/2), 1 (p 1/4) -> the 95% interval is (0, 1).
    # As 100 singleton groups the mean is Binomial(100, 1/2) / 100 with sd 0.05,
    # so the interval is roughly 0.5 +/- 0.1.
    v = np.r_[np.zeros(50), np.ones(50)]
    two = np.r_[np.zeros(50, dtype=int), np.ones(50, dtype=int)]
    lo2, hi2 = m.bootstrap_interval(v, two)
    lo100, hi100 = m.bootstrap_interval(v, np.arange(100))
    assert (lo2, hi2) == (0.0, 1.0)
    assert 0.35 <= lo100 < 0.5 < hi100 <= 0.65
    assert hi100 - lo100 < 0.5 * (hi2 - lo2)


def test_bootstrap_resamples_whole_groups():
    # group a = four 0s, group b = one 1. Drawing 2 groups with replacement:
    # aa -> 0/8 = 0, ab/ba -> 1/5 = 0.2, bb -> 2/2 = 1, so every replicate mean
    # and hence both bounds lie in {0, 0.2, 1}. Resampling the 5 values
    # individually would give means k/5 with k ~ Binomial(5, 0.2), whose 97.5%
    # quantile is 0.6 (P(k >= 3) = 0.058, P(k >= 4) = 0.007).
    achievable = {0.0, 0.2, 1.0}
    for seed in range(5):
        lo, hi = m.bootstrap_interval([0, 0, 0, 0, 1], ["a", "a", "a", "a", "b"], seed=seed)
        assert lo in achievable and hi in achievable
        assert lo <= 0.2 <= hi


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call",
    [
        lambda: m.accuracy([], []),
        lambda: m.accuracy([0, 1], [0]),
        lambda: m.accuracy([0, -1], [0, 1]),
        lambda: m.accuracy([0, 0.5], [0, 1]),
        lambda: m.confusion_matrix([], []),
        lambda: m.confusion_matrix([0, 1], [0, 1, 1]),
        lambda: m.confusion_matrix([0, 2], [0, 1]),
        lambda: m.confusion_matrix([0, 1], [0, 1], n_classes=0),
        lambda: m.roc_curve([], []),
        lambda: m.roc_curve([0, 1], [0.5]),
        lambda: m.roc_curve([0, 2], [0.1, 0.2]),
        lambda: m.roc_curve([1, 1], [0.1, 0.2]),
        lambda: m.roc_auc([0, 1], [0.1, np.nan]),
        lambda: m.roc_auc([0, 0], [0.1, 0.2]),
        lambda: m.mae([], []),
        lambda: m.mae([0.1, 0.2], [0.1]),
        lambda: m.reliability([], []),
        lambda: m.reliability([0, 1], [0.5]),
        lambda: m.reliability([0, 2], [0.5, 0.5]),
        lambda: m.reliability([0, 2], [[0.5, 0.5], [0.5, 0.5]]),
        lambda: m.reliability([0, 1], [0.5, 1.5]),
        lambda: m.reliability([0, 1], [0.5, 0.5], n_bins=0),
        lambda: m.grouped_accuracy([], [], []),
        lambda: m.grouped_accuracy([0, 1], [0, 1], [1]),
        lambda: m.grouped_accuracy([0, 1], [0], [1, 2]),
        lambda: m.grouped_accuracy([0, -1], [0, 1], [1, 2]),
        lambda: m.balanced_accuracy([], []),
        lambda: m.balanced_accuracy([0, 1], [0]),
        lambda: m.balanced_accuracy([0, 2], [0, 1]),
        lambda: m.wilson_interval(0, 0),
        lambda: m.wilson_interval(-1, 10),
        lambda: m.wilson_interval(11, 10),
        lambda: m.wilson_interval(5, 10, confidence=0.0),
        lambda: m.wilson_interval(5, 10, confidence=1.0),
        lambda: m.bootstrap_interval([], []),
        lambda: m.bootstrap_interval([0.1, 0.2], [0]),
        lambda: m.bootstrap_interval([0.1, np.nan], [0, 1]),
        lambda: m.bootstrap_interval([0.1, 0.2], [0, 1], statistic="median"),
        lambda: m.bootstrap_interval([0.1, 0.2], [0, 1], n_boot=0),
        lambda: m.bootstrap_interval([0.1, 0.2], [0, 1], confidence=1.5),
    ],
)
def test_errors(call):
    with pytest.raises(ValueError):
        call()
