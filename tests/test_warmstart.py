"""The ridge warm start of the regressors' linear path (``skip_init: ridge``)."""

from __future__ import annotations

import numpy as np
import pytest

from interface4d.warmstart import ALPHAS, choose_alpha, ridge_dual, standardised


def _problem(n=40, d=200, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d))
    y = f[:, :5] @ rng.normal(size=5) + 0.3 + 0.1 * rng.normal(size=n)
    return f, y


def test_dual_ridge_equals_scikit_learns_ridge():
    from sklearn.linear_model import Ridge

    f, y = _problem()
    for alpha in (1e-3, 1.0, 30.0):
        w, b = ridge_dual(f, y, alpha)
        ref = Ridge(alpha=alpha).fit(f, y)
        np.testing.assert_allclose(w, ref.coef_, rtol=1e-6, atol=1e-9)
        assert b == pytest.approx(ref.intercept_, rel=1e-6, abs=1e-9)


def test_the_strength_is_chosen_by_whole_groups_held_out():
    f, y = _problem(n=48)
    groups = [f"cell{i // 4}" for i in range(48)]  # 12 cells of 4 draws each
    alpha, scores = choose_alpha(f, y, groups, folds=4)
    assert len(scores) == len(ALPHAS)
    best = min(scores, key=lambda s: s["mae"])
    assert alpha == best["alpha"]
    # one strength by hand: cells dealt in sorted order to 4 folds, each fold fitted on the rest
    names = sorted(set(groups))
    fold = np.array([names.index(g) % 4 for g in groups])
    a = scores[5]["alpha"]
    err = 0.0
    for j in range(4):
        w, b = ridge_dual(f[fold != j], y[fold != j], a)
        err += np.abs(f[fold == j] @ w + b - y[fold == j]).sum()
    assert scores[5]["mae"] == pytest.approx(err / len(y), rel=1e-9)


def _tiny_skip_model(n: int, seed: int, members: int = 1):
    """A tiny sqrt regressor with the linear path, ``n`` examples, targets, their cells (6) and
    the random generator that drew them."""
    import keras

    from interface4d.model import build_model

    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 1e-3, size=(n, 4, 8, 8)).astype(np.float32)
    y = rng.uniform(0.1, 0.9, size=n).astype(np.float32)
    cells = [f"c{i % 6}" for i in range(n)]
    keras.utils.set_random_seed(0)
    model = build_model(
        (4, 8, 8), "regress", [2], 3, [4, 4], 0.0, input_mean=np.zeros((4, 8, 8)),
        input_std=np.full((4, 8, 8), 1e-3), input_transform="sqrt", skip="linear",
        members=members,
    )  # fmt: skip
    return model, x, y, cells, rng


def _head_and_features(model, x, head: str):
    """``head``'s output (``cnn``: the CNN's head; else the network) and the linear path's
    features, as float64."""
    import keras

    out = model.get_layer("cnn_out").output if head == "cnn" else model.outputs[0]
    probe = keras.Model(model.inputs, [out, model.get_layer("skip_scale").output])
    return (np.asarray(a, np.float64) for a in probe(x, training=False))


def test_warm_start_puts_the_network_at_the_ridge_fit_of_what_its_cnn_leaves():
    from interface4d.warmstart import warm_start_skip

    model, x, y, cells, _ = _tiny_skip_model(24, 1)
    cnn, feats = _head_and_features(model, x, "cnn")
    info = warm_start_skip(model, x, y, cells)
    # by hand: the baseline's geometry (columns standardised), ridge of what the CNN leaves
    fs, mean, scale = standardised(feats)
    beta, b0 = ridge_dual(fs, y - cnn[:, 0], info["alpha"])
    expected = cnn[:, 0] + fs @ beta + b0
    got = np.asarray(model.predict(x, verbose=0))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert not model.get_layer("linear_skip").trainable  # the CNN learns the residual
    assert info["cells"] == 6 and info["examples"] == 24


def test_a_warm_start_without_the_linear_path_is_a_config_error():
    from interface4d.config import ConfigError
    from interface4d.train import complete_training_config

    with pytest.raises(ConfigError, match=r"training.regressor.skip_init' = 'ridge'"):
        complete_training_config({"regressor": {"skip_init": "ridge"}})
    cfg = complete_training_config({"regressor": {"skip_init": "ridge", "skip": "linear"}})
    assert cfg["regressor"]["skip_init"] == "ridge"


def test_refit_adds_the_ridge_fit_of_what_the_trained_network_misses():
    from interface4d.warmstart import refit_skip

    model, x, y, cells, rng = _tiny_skip_model(30, 2)
    skip = model.get_layer("linear_skip")
    kernel, bias = skip.get_weights()  # a "trained" path: not zero
    skip.set_weights([rng.normal(0, 0.01, kernel.shape).astype(np.float32), bias + 0.2])
    net, feats = _head_and_features(model, x, "network")
    cnn_before = np.asarray(model.get_layer("cnn_out").get_weights()[0]).copy()
    info = refit_skip(model, x, y, cells)
    # by hand: ridge of what the network misses, on the path's features standardised per column
    fs, mean, scale = standardised(feats)
    beta, b0 = ridge_dual(fs, y - net[:, 0], info["alpha"])
    expected = net[:, 0] + fs @ beta + b0
    got = np.asarray(model.predict(x, verbose=0))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert info["training_mae_after"] < info["training_mae_before"]
    assert info["training_mae_before"] == pytest.approx(np.mean(np.abs(net[:, 0] - y)), rel=1e-6)
    np.testing.assert_array_equal(model.get_layer("cnn_out").get_weights()[0], cnn_before)
    assert skip.trainable and info["cells"] == 6 and info["examples"] == 30


def test_an_ensembles_refit_moves_the_members_mean_by_the_ridge_fit_of_its_miss():
    import keras

    from interface4d.config import ConfigError
    from interface4d.train import complete_training_config
    from interface4d.warmstart import refit_skip

    model, x, y, cells, rng = _tiny_skip_model(30, 4, members=3)
    paths = [model.get_layer(f"m{k}_linear_skip") for k in range(3)]
    for skip in paths:  # "trained" paths, each its own
        kernel, bias = skip.get_weights()
        skip.set_weights([rng.normal(0, 0.01, kernel.shape).astype(np.float32), bias + 0.1])
    before = [skip.get_weights()[0].copy() for skip in paths]
    probe = keras.Model(model.inputs, [model.outputs[0], model.get_layer("m0_skip_scale").output])
    net, feats = (np.asarray(a, np.float64) for a in probe(x, training=False))
    info = refit_skip(model, x, y, cells)
    fs, mean, scale = standardised(feats)
    beta, b0 = ridge_dual(fs, y - net[:, 0], info["alpha"])
    got = np.asarray(model.predict(x, verbose=0))[:, 0]
    np.testing.assert_allclose(got, net[:, 0] + fs @ beta + b0, rtol=1e-4, atol=1e-4)
    assert info["training_mae_after"] < info["training_mae_before"]
    # the same change on every member's path: the members stay as different as they were
    moved = [skip.get_weights()[0] - b for skip, b in zip(paths, before, strict=True)]
    np.testing.assert_allclose(moved[1], moved[0], atol=1e-7)
    np.testing.assert_allclose(moved[2], moved[0], atol=1e-7)
    assert np.abs(moved[0]).max() > 0
    cfg = {"skip": "linear", "members": 3}
    assert complete_training_config({"regressor": cfg | {"skip_refit": "ridge"}})
    for key, value in (("skip_refit", "replace"), ("skip_init", "ridge")):
        with pytest.raises(ConfigError, match=f"{key}' = '{value}'.*members: 1"):
            complete_training_config({"regressor": cfg | {key: value}})


def test_replace_sets_the_path_to_the_ridge_fit_of_what_the_trained_cnn_misses():
    from interface4d.warmstart import refit_skip

    model, x, y, cells, rng = _tiny_skip_model(30, 3)
    skip = model.get_layer("linear_skip")
    kernel, bias = skip.get_weights()
    skip.set_weights([rng.normal(0, 0.01, kernel.shape).astype(np.float32), bias + 0.2])
    cnn, feats = _head_and_features(model, x, "cnn")
    info = refit_skip(model, x, y, cells, mode="replace")
    # by hand: what SGD left in the path is gone; ridge of y - CNN(x), the strength of y
    fs, mean, scale = standardised(feats)
    alpha, _ = choose_alpha(fs, y.astype(np.float64), cells)
    assert info["alpha"] == alpha
    beta, b0 = ridge_dual(fs, y - cnn[:, 0], alpha)
    got = np.asarray(model.predict(x, verbose=0))[:, 0]
    np.testing.assert_allclose(got, cnn[:, 0] + fs @ beta + b0, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="'swap'"):
        refit_skip(model, x, y, cells, mode="swap")


def test_a_refit_without_the_linear_path_is_a_config_error():
    from interface4d.config import ConfigError
    from interface4d.train import complete_training_config

    with pytest.raises(ConfigError, match=r"training.regressor.skip_refit' = 'ridge'"):
        complete_training_config({"regressor": {"skip_refit": "ridge"}})
    cfg = complete_training_config({"regressor": {"skip_refit": "ridge", "skip": "linear"}})
    assert cfg["regressor"]["skip_refit"] == "ridge"
