"""Evaluation: validation inputs as in training, saliency, the classifier and regressor
evaluations on real (small) Keras models, the summary and the report's headline text."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from interface4d import headline
from interface4d.augment import (
    VAL_STREAM,
    augment_batch,
    draw_angle,
    draw_dose,
    poisson_noise,
    rotate_patterns,
    val_rng,
)
from interface4d.config import ConfigError, check_physics, load_config
from interface4d.evaluate import (
    complete_evaluation_config,
    evaluate_classifier,
    evaluate_regressors,
    reference_thickness,
    summarise,
)
from interface4d.validation import NOISELESS, augment_for_eval
from support.cnn_synthetic import write_dataset
from support.workflow import ROOT

AUG = {"dose": [1e4, 1e6], "rotation_deg": 2.0, "val_seed": 1234}


def _x(n=5, nx=4, k=12, seed=0):
    return np.random.default_rng(seed).uniform(0, 0.01, (n, nx, k, k)).astype(np.float32)


# --------------------------------------------------------------------------- inputs


def test_validation_inputs_equal_trainings_validation_pass():
    x, idx = _x(), np.array([3, 8, 9, 20, 41])
    ours = augment_for_eval(x, idx, AUG, "val")
    training = augment_batch(
        x, idx, split="val", seed=1234, epoch=0, dose_range=AUG["dose"], rotation_deg=2.0
    )
    np.testing.assert_array_equal(ours, training)


def test_further_validation_draws_are_their_own_and_repeatable():
    x, idx = _x(n=3), np.array([5, 6, 7])
    first = augment_for_eval(x, idx, AUG, "val")
    again = augment_for_eval(x, idx, AUG, "val:1")
    np.testing.assert_array_equal(again, augment_for_eval(x, idx, AUG, "val:1"))
    assert not np.array_equal(first, again)
    assert not np.array_equal(again, augment_for_eval(x, idx, AUG, "val:2"))
    # each draw is a dose log-uniform in the training range and a rotation, as the first
    clean = augment_for_eval(x, idx, AUG, NOISELESS)
    for j, i in enumerate(idx):
        rng = np.random.default_rng([1234, VAL_STREAM, int(i), 1])
        dose = draw_dose(rng, AUG["dose"])
        rotated = rotate_patterns(x[j], draw_angle(rng, 2.0))
        np.testing.assert_array_equal(again[j], poisson_noise(rotated, dose, rng))
        assert 1e4 <= dose <= 1e6 and not np.array_equal(rotated, clean[j])


def test_fixed_dose_keeps_the_rotation_draw_and_noiseless_has_no_noise():
    x, idx = _x(n=2), np.array([5, 6])
    clean = augment_for_eval(x, idx, AUG, NOISELESS)
    for j, i in enumerate(idx):
        rng = val_rng(1234, int(i))
        draw_dose(rng, AUG["dose"])
        np.testing.assert_array_equal(clean[j], rotate_patterns(x[j], draw_angle(rng, 2.0)))
    low = augment_for_eval(x, idx, AUG, 1e3)
    high = augment_for_eval(x, idx, AUG, 1e8)
    err_low, err_high = np.abs(low - clean).mean(), np.abs(high - clean).mean()
    assert err_high < err_low / 30  # shot noise falls as 1/sqrt(dose): 1e2.5 ~ 316x


def test_reference_thickness_default_and_errors():
    assert reference_thickness(None, [100, 150, 200, 250]) == 200
    assert reference_thickness(None, [40, 60]) == 60
    assert reference_thickness(None, [150, 250]) == 150  # tie: the thinner
    assert reference_thickness(150, [100, 150]) == 150
    with pytest.raises(ValueError, match=r"evaluation.reference_thickness = 175.*\[.100., .150.\]"):
        reference_thickness(175, [100, 150])


def test_config_rejects_a_reference_thickness_without_a_model():
    cfg = load_config(ROOT / "tests/configs/tiny.yaml")
    cfg["evaluation"] = {"reference_thickness": 50}
    with pytest.raises(ConfigError, match="evaluation.reference_thickness' = 50"):
        check_physics(cfg)
    cfg["evaluation"] = {"reference_thickness": 60}
    check_physics(cfg)


def test_evaluation_block_defaults_and_unknown_keys():
    cfg = complete_evaluation_config({"doses": [1e5, 1e3]})
    assert cfg["doses"] == [1e3, 1e5] and cfg["reference_thickness"] is None
    assert cfg["examples_per_class"] == 1 and cfg["batch_size"] == 64  # the schema's defaults
    assert cfg["val_draws"] == 8
    with pytest.raises(ConfigError, match=r"^config: unknown key 'evaluation\.dose' \("):
        complete_evaluation_config({"dose": [1]})
    with pytest.raises(ConfigError, match=r"^config key 'evaluation\.doses\.0' = 0: must be > 0$"):
        complete_evaluation_config({"doses": [0]})


# --------------------------------------------------------------------------- real models


def _model(path, task, nx=4, k=12, seed=0):
    import keras

    from interface4d.model import build_model

    keras.utils.set_random_seed(seed)
    mean = np.full((nx, k, k), 1.0 / (k * k), np.float32)
    model = build_model((nx, k, k), task, (4,), 3, (8, 8), 0.15, input_mean=mean, input_std=0.003)
    model.save(path)
    return path


def _manifest(h5_path, csv_path, kind_of, thickness=100.0):
    with h5py.File(h5_path) as f:
        y, split, cells = f["y"][()], f["split"][()], f["cell"].asstr()[()]
    rows = []
    for i, (t, s, c) in enumerate(zip(y, split, cells, strict=True)):
        kind = kind_of(t)
        rows.append(
            {
                "index": i,
                "cell": c,
                "class": 0 if kind == "step" else 1,
                "kind": kind,
                "thickness": thickness,
                "step_fraction": float(t) if kind == "step" else None,
                "ti_fraction": None if kind == "step" else 0.1 * (1 + i % 3),
                "seed": 1,
                "line": i % 2,
                "split": "val" if s else "train",
                "target": float(t),
                "source": "synthetic",
            }
        )
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    return csv_path


def _history(path, metric):
    path.write_text(
        f"epoch,loss,{metric},dev_loss,dev_{metric}\n1,0.7,0.5,0.69,0.5\n2,0.6,0.6,0.65,0.55\n"
    )
    return path


def _uids(cells, lines=None):
    """Each example's id by hand: sha256 of 'cell#line' (line -1 without a line dataset)."""
    import hashlib

    lines = [-1] * len(cells) if lines is None else lines
    return np.array(
        [
            int.from_bytes(hashlib.sha256(f"{c}#{int(ln)}".encode()).digest()[:8], "big") >> 1
            for c, ln in zip(cells, lines, strict=True)
        ],
        dtype=np.int64,
    )


def _by_hand(model_path, data_path, dose="val"):
    """Predictions recomputed without the evaluation module: keras predict on the val rows."""
    import keras

    model = keras.models.load_model(model_path, compile=False)
    with h5py.File(data_path) as f:
        split = f["split"][()]
        idx = np.flatnonzero(split == 1)
        x, y = f["x"][()][idx], f["y"][()][idx]
        cells = f["cell"].asstr()[()][idx]
    xv = augment_for_eval(x, _uids(cells), AUG, dose)
    return idx, y, model.predict(xv[..., None], verbose=0)


def test_classifier_evaluation_matches_a_hand_computation(tmp_path):
    data = write_dataset(tmp_path / "c.h5", n=40, nx=4, k=12, seed=3)
    man = _manifest(data, tmp_path / "c.csv", lambda t: "diffusion" if t else "step")
    model = _model(tmp_path / "c.keras", "classify")
    res = evaluate_classifier(
        model,
        data,
        man,
        _history(tmp_path / "h.csv", "accuracy"),
        {"augment": AUG},
        {"doses": [1e3, 1e6], "examples_per_class": 1},
        tmp_path / "metrics",
        tmp_path / "figures",
    )
    idx, y, prob = _by_hand(model, data)
    pred = prob.argmax(axis=1)
    m = res.metrics
    assert m["n_val_examples"] == len(idx) == len(res.predictions)
    assert m["accuracy"] == pytest.approx((pred == y).mean())
    np.testing.assert_array_equal(res.predictions["index"], idx)
    np.testing.assert_allclose(res.predictions["p_diffusion"], prob[:, 1], rtol=1e-5)
    cm = np.zeros((2, 2), int)
    for t, p in zip(y, pred, strict=True):
        cm[t, p] += 1
    np.testing.assert_array_equal(m["confusion_matrix"], cm)
    assert [r["dose"] for r in m["dose"]] == ["1000", "1e+06", NOISELESS]
    _, _, clean = _by_hand(model, data, NOISELESS)
    assert m["dose"][-1]["accuracy"] == pytest.approx((clean.argmax(axis=1) == y).mean())
    assert sum(g["n"] for g in m["by_thickness"]) == len(idx)
    with h5py.File(data) as f:
        cell_of = f["cell"].asstr()[()][idx]
    votes = {}
    for c, t, p in zip(cell_of, y, prob[:, 1], strict=True):
        votes.setdefault(c, (t, []))[1].append(p)
    hits = [(np.mean(ps) > 0.5) == t for t, ps in votes.values()]
    assert m["cell_accuracy"] == pytest.approx(np.mean(hits))
    from interface4d.metrics import wilson_interval

    assert m["accuracy_ci95"] == pytest.approx(
        list(wilson_interval(int((pred == y).sum()), len(y)))
    )
    assert m["accuracy_n"] == len(idx) and m["cell_accuracy_n"] == len(votes)
    # the baseline stands beside the network, on the same examples and draws
    b = m["baseline"]
    base_pred = res.predictions["y_pred_baseline"].to_numpy()
    assert b["accuracy"] == pytest.approx((base_pred == y).mean())
    assert m["comparison"]["accuracy"]["network_at_or_above_baseline"] == (
        m["accuracy"] >= b["accuracy"]
    )
    assert b["training_cells"] > 0 and "pca_components" in b["hyperparameters"]
    saved = json.loads((tmp_path / "metrics/classifier.json").read_text())
    assert saved["accuracy"] == pytest.approx(m["accuracy"])
    assert saved["provenance"]["inputs"]["model"]["sha256"]
    assert len(pd.read_csv(tmp_path / "metrics/classifier_predictions.csv")) == len(idx)
    for name in ("training", "performance", "accuracy_by_group", "examples", "saliency"):
        for ext in ("png", "svg"):
            assert (tmp_path / f"figures/{name}.{ext}").stat().st_size > 5000, name


def test_regression_evaluation_and_transferability(tmp_path):
    ts, models, datas, mans, hists = [100.0, 200.0], [], [], [], []
    for j, t in enumerate(ts):
        d = write_dataset(tmp_path / f"r{j}.h5", n=24, nx=4, k=12, task="regress", seed=10 + j)
        datas.append(d)
        mans.append(_manifest(d, tmp_path / f"r{j}.csv", lambda _: "step", thickness=t))
        models.append(_model(tmp_path / f"r{j}.keras", "regress", seed=j))
        hists.append(_history(tmp_path / f"h{j}.csv", "mae"))
    res = evaluate_regressors(
        ts,
        models,
        datas,
        mans,
        hists,
        {"augment": AUG},
        {"doses": [1e4], "val_draws": 3},
        tmp_path / "metrics",
        tmp_path / "figures",
    )
    m = res.metrics
    assert m["reference_thickness"] == 200.0
    for j, t in enumerate(ts):
        # each example's error is its mean over 3 validation draws: "val" (training's
        # development draw), "val:1", "val:2"
        errs = []
        for key in ("val", "val:1", "val:2"):
            _, y, pred = _by_hand(models[j], datas[j], key)
            errs.append(np.abs(pred[:, 0] - y))
        own = next(r for r in m["per_thickness"] if r["thickness"] == t)
        assert own["val_draws"] == 3
        assert own["mae"] == pytest.approx(np.mean(errs), rel=1e-5)
        assert own["mae"] != pytest.approx(errs[0].mean(), rel=1e-5)  # not the one draw's
        rows = res.predictions.query("model_thickness == @t and data_thickness == @t")
        np.testing.assert_allclose(rows["abs_error"], np.mean(errs, axis=0), rtol=1e-5)
    # the 200 A model on the 100 A data
    _, y, pred = _by_hand(models[1], datas[0])
    curve = {r["data_thickness"]: r["mae"] for r in m["transfer"]["curve"]}
    assert curve[100.0] == pytest.approx(np.abs(pred[:, 0] - y).mean(), rel=1e-5)
    assert curve[200.0] == pytest.approx(m["per_thickness"][1]["mae"])
    df = res.predictions
    assert set(zip(df["model_thickness"], df["data_thickness"], strict=True)) == {
        (100.0, 100.0),
        (200.0, 200.0),
        (200.0, 100.0),
    }
    assert len(res.dose) == 2 * 2 * 2  # 1e4 and noiseless per thickness, network and baseline
    for r in m["per_thickness"]:  # each beside its baseline, with a bootstrap interval
        lo, hi = r["mae_ci95"]
        assert lo <= r["mae"] <= hi and r["baseline_mae"] >= 0
        assert r["network_at_or_below_baseline"] == (r["mae"] <= r["baseline_mae"])
        # paired over the same examples: the mean difference is the difference of the means
        assert r["mae_minus_baseline"] == pytest.approx(r["mae"] - r["baseline_mae"], abs=1e-9)
        lo, hi = r["mae_minus_baseline_ci95"]
        assert lo <= r["mae_minus_baseline"] <= hi
    for name in ("predicted_vs_true", "error_vs_thickness", "transfer_error", "examples"):
        assert (tmp_path / f"figures/{name}.png").stat().st_size > 5000, name


def test_saliency_is_the_input_gradient(tmp_path):
    import keras

    from interface4d.saliency import saliency

    model = keras.models.load_model(_model(tmp_path / "m.keras", "classify"), compile=False)
    x = _x(n=1, seed=4) + 1.0 / 144
    sal = saliency(model, x, output_index=1)[0]
    i = np.unravel_index(np.argmax(sal), sal.shape)
    eps = 1e-4
    xp, xm = x.astype(np.float64).copy(), x.astype(np.float64).copy()
    xp[(0, *i)] += eps
    xm[(0, *i)] -= eps
    fp = float(model(xp[..., None].astype(np.float32), training=False)[0, 1])
    fm = float(model(xm[..., None].astype(np.float32), training=False)[0, 1])
    assert sal[i] == pytest.approx(abs(fp - fm) / (2 * eps), rel=0.05)
    assert sal.shape == x.shape[1:] and (sal >= 0).all()


# --------------------------------------------------------------------------- summary


def test_summary_and_the_report_headline(tmp_path):
    cls = {
        "accuracy": 0.875,
        "accuracy_ci95": [0.739, 0.945],
        "accuracy_n": 40,
        "balanced_accuracy": 0.87,
        "cell_accuracy": 0.9,
        "cell_accuracy_ci95": [0.596, 0.982],
        "cell_accuracy_n": 10,
        "cell_accuracy_detectable": 1.0,
        "cell_accuracy_detectable_ci95": [0.664, 1.0],
        "cell_accuracy_detectable_n": 8,
        "near_exit_cells": {"t100/step-d25": False, "t150/step-d37": True},
        "auc": 0.9,
        "ece": 0.05,
        "n_val_examples": 40,
        "n_val_cells": 10,
        "confusion_matrix": [[18, 2], [3, 17]],
        "baseline": {"accuracy": 0.9, "cell_accuracy": 0.9, "cell_accuracy_detectable": 0.875},
        "comparison": {
            "accuracy": {"network": 0.875, "baseline": 0.9, "network_at_or_above_baseline": False}
        },
        "paired": {
            "accuracy_minus_baseline": -0.025,
            "accuracy_minus_baseline_ci95": [-0.1, 0.05],
            "network_only_right": 2,
            "baseline_only_right": 3,
            "n": 40,
            "n_cells": 10,
        },
        "dose": [
            {"dose": "1000", "dose_e_per_pattern": 1e3, "accuracy": 0.6},
            {"dose": NOISELESS, "dose_e_per_pattern": None, "accuracy": 0.9},
        ],
    }
    reg = {
        "reference_thickness": 200.0,
        "per_thickness": [
            {"thickness": 100.0, "mae": 0.05, "mae_ci95": [0.03, 0.08], "n_val": 4,
             "n_val_cells": 4, "baseline_mae": 0.07, "network_at_or_below_baseline": True,
             "mae_minus_baseline": -0.02, "mae_minus_baseline_ci95": [-0.05, 0.01]},
            {"thickness": 200.0, "mae": 0.125, "n_val": 3, "n_val_cells": 3,
             "baseline_mae": 0.1, "network_at_or_below_baseline": False},
        ],
        "transfer": {
            "curve": [
                {"data_thickness": 100.0, "mae": 0.25, "n": 4},
                {"data_thickness": 200.0, "mae": 0.125, "n": 3},
            ]
        },
        "dose": [{"thickness": 100.0, "dose": "1000", "dose_e_per_pattern": 1e3, "mae": 0.2}],
    }  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(cls))
    (tmp_path / "r.json").write_text(json.dumps(reg))
    preds = pd.DataFrame(
        {
            "cell": ["t100/step-d5"] * 2 + ["t100/step-d25"] * 2 + ["t100/diffusion-ti0.1-s1"] * 2,
            "kind": ["step"] * 4 + ["diffusion"] * 2,
            "thickness": [100.0] * 6,
            "step_fraction": [0.2, 0.2, 25 / 26, 25 / 26, None, None],
            "correct": [True, True, False, True, True, True],
            "correct_baseline": [True, False, False, False, True, True],
            "p_diffusion": [0.1, 0.2, 0.9, 0.3, 0.8, 0.9],
            "p_diffusion_baseline": [0.1, 0.7, 0.9, 0.8, 0.8, 0.9],
        }
    )
    preds.to_csv(tmp_path / "cp.csv", index=False)
    pd.DataFrame(
        {"model_thickness": [100.0, 100.0], "data_thickness": [100.0, 100.0],
         "cell": ["t100/step-d5", "t100/step-d25"], "abs_error": [0.02, 0.3],
         "abs_error_baseline": [0.04, 0.2]}
    ).to_csv(tmp_path / "rp.csv", index=False)  # fmt: skip
    h = summarise(
        tmp_path / "c.json", tmp_path / "r.json", tmp_path / "m", tmp_path / "d.png", "x",
        tmp_path / "head.png", tmp_path / "cp.csv", tmp_path / "rp.csv", tmp_path / "det.png",
    )  # fmt: skip
    assert (tmp_path / "head.png").stat().st_size > 10_000 and (tmp_path / "head.svg").exists()
    assert h["classification"]["accuracy"] == 0.875
    assert h["classification"]["accuracy_ci95"] == [0.739, 0.945]
    assert h["classification"]["baseline"]["accuracy"] == 0.9
    assert h["regression"]["mae_by_thickness"] == {"100": 0.05, "200": 0.125}
    assert h["regression"]["baseline_mae_by_thickness"] == {"100": 0.07, "200": 0.1}
    assert h["regression"]["transfer_mae_by_thickness"]["100"] == 0.25
    assert any("does not beat its linear baseline on accuracy" in v for v in h["verdict"])
    assert any("worse than its ridge baseline at 200 Å" in v for v in h["verdict"])
    assert any("100 Å -0.020 [-0.050, +0.010]" in v for v in h["verdict"])
    assert any(
        "same 40 held-out lines of 10 cells (95 % bootstrap over cells): -0.025 [-0.100, +0.050]; "
        "only the network is right on 2 lines, only the baseline on 3" in v
        for v in h["verdict"]
    )
    table = pd.read_csv(tmp_path / "m/headline.csv")
    assert table["value"].tolist()[:5] == [0.875, 0.9, 1.0, 0.05, 0.125]
    assert table["n"].tolist()[:5] == [40, 10, 8, 4, 3]
    assert table["baseline"].tolist()[:4] == [0.9, 0.9, 0.875, 0.07]
    dose = pd.read_csv(tmp_path / "m/dose_study.csv")
    assert len(dose) == 3 and (tmp_path / "d.png").exists() and (tmp_path / "d.svg").exists()
    det = pd.read_csv(tmp_path / "m/detectability.csv")
    assert det["cell"].tolist() == ["t100/step-d25", "t100/step-d5"]  # nearest the exit first
    assert det["distance_from_exit_A"].tolist() == pytest.approx([100 / 26, 80.0])
    assert det["line_accuracy"].tolist() == [0.5, 1.0]
    assert det["line_accuracy_baseline"].tolist() == [0.0, 0.5]
    assert det["cell_correct"].tolist() == [False, True]  # mean p_diffusion 0.6 vs 0.15
    assert det["near_exit"].tolist() == [True, False]
    assert det["position_abs_error"].tolist() == [0.3, 0.02]
    assert (tmp_path / "det.png").stat().st_size > 10_000
    text = "\n".join(headline.lines(headline.load(tmp_path / "m/headline.json")))
    assert "**0.875** [0.739, 0.945] on 40 lines (linear baseline 0.900" in text
    assert "**0.900** [0.596, 0.982] on 10 cells" in text
    assert "**1.000** [0.664, 1.000] on 8 cells" in text and "1 of 2 right" in text
    assert "100 Å: **0.050** [0.030, 0.080] on 4 cells (ridge baseline 0.070)" in text
    assert "the 200 Å model" in text and "100 Å: 0.250" in text
    assert "does not beat its linear baseline" in text
    assert "No headline numbers yet" in headline.lines(headline.load(tmp_path / "missing.json"))[0]
    # classification only (a campaign without step cells)
    h = summarise(tmp_path / "c.json", None, tmp_path / "m2", tmp_path / "d2.png")
    assert "regression" not in h


def test_the_dose_study_names_each_dose_where_a_network_loses_to_its_baseline(tmp_path):
    """The doses at which a network scores worse than its baseline on the same inputs, each
    placed against the training doses, in headline.json and in one sentence; a tie is not a
    loss; none lost: said so."""
    from interface4d.dosestudy import dose_losses, dose_study_rows, dose_verdict

    def row(model, dose, value, key, **kw):
        e = None if dose == NOISELESS else float(dose)  # as the JSON files hold noiseless
        return {"model": model, "dose": dose, "dose_e_per_pattern": e, key: value, **kw}

    cls = {
        "dose": [row("network", "1000", 0.6, "accuracy"), row("network", "100000", 0.95, "accuracy")],
        "dose_baseline": [row("baseline", "1000", 0.7, "accuracy"),
                          row("baseline", "100000", 0.9, "accuracy")],
        "validation_augmentation": {"dose": [1e4, 1e6]},
    }  # fmt: skip
    reg_values = {"1000": (0.3, 0.05), "100000": (0.02, 0.03), "1e+06": (0.025, 0.025),
                  "1e+07": (0.03, 0.02), NOISELESS: (0.03, 0.02)}  # fmt: skip
    reg = {"dose": [row(m, d, v[i], "mae", thickness=100.0)
                    for d, v in reg_values.items() for i, m in enumerate(("network", "baseline"))]}  # fmt: skip
    losses = dose_losses(dose_study_rows(cls, reg), [1e4, 1e6])
    assert [(r["network"], r["thickness"], r["dose"], r["relative_to_training_doses"])
            for r in losses] == [("classifier", "all", "1000", "below"),
                                 ("regressor", "100", "1000", "below"),
                                 ("regressor", "100", "1e+07", "above"),
                                 ("regressor", "100", NOISELESS, "noiseless")]  # fmt: skip
    assert losses[1]["mae"] == 0.3 and losses[1]["baseline_mae"] == 0.05
    assert not losses[1]["inside_training_doses"]
    text = dose_verdict(losses, [1e4, 1e6])
    assert "the classifier at 1e3 (below the training doses)" in text
    assert (
        "the 100 Å step-position network at 1e3 (below the training doses) and 1e7 (above them)"
        " and noiseless" in text
    )
    assert "train on 1e4-1e6" in text
    assert "every network is at or above its baseline" in dose_verdict([], [1e4, 1e6])
    # in the summary: headline.json and its verdict, the figure with the baselines
    summary = {**cls, "accuracy": 0.9, "balanced_accuracy": 0.9, "auc": 0.95}
    (tmp_path / "c.json").write_text(json.dumps(summary))
    h = summarise(tmp_path / "c.json", None, tmp_path / "m", tmp_path / "d.png")
    assert h["dose_study"]["training_doses"] == [1e4, 1e6]
    assert [r["dose"] for r in h["dose_study"]["network_worse"]] == ["1000"]
    assert h["verdict"][-1].startswith("Dose study") and "the classifier at 1e3" in h["verdict"][-1]
    saved = json.loads((tmp_path / "m" / "headline.json").read_text())
    assert saved["dose_study"] == h["dose_study"] and (tmp_path / "d.svg").exists()


def _baseline_by_hand_inputs(data, task: str):
    """What the baseline fits on, computed by hand for a small real dataset: the training
    rows' augmented draws (the baseline's replicas), transformed (sqrt) and standardised per
    column, their targets, and the validation rows' evaluation draw in the same geometry."""
    from interface4d import baseline
    from interface4d.augment import augment_batch
    from interface4d.inputs import transform

    with h5py.File(data) as f:
        split, x, y = f["split"][()], f["x"][()], f["y"][()]
        cells = f["cell"].asstr()[()]
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    draws = [
        augment_batch(
            x[tr],
            _uids(cells[tr]),
            split="train",
            seed=0,
            epoch=e,
            dose_range=AUG["dose"],
            rotation_deg=2.0,
        )  # fmt: skip
        for e in range(baseline.REPLICAS[task])
    ]
    f_tr = transform(np.concatenate(draws), "sqrt").reshape(len(tr) * len(draws), -1)
    f_tr = f_tr.astype(np.float64)
    mu, sd = f_tr.mean(axis=0), f_tr.std(axis=0)
    sd[sd == 0] = 1.0
    xv = augment_for_eval(x[va], _uids(cells[va]), AUG, "val")
    f_va = transform(xv, "sqrt").reshape(len(va), -1).astype(np.float64)
    return (f_tr - mu) / sd, np.tile(y[tr], len(draws)), xv, (f_va - mu) / sd


def test_ridge_baseline_matches_the_closed_form(tmp_path):
    """The step-position baseline on a small real case equals ridge regression by hand:
    standardised transformed features, w = (X'X + alpha I)^-1 X'(y - mean y)."""
    from interface4d import baseline
    from interface4d.train import complete_training_config

    data = write_dataset(tmp_path / "r.h5", n=20, nx=3, k=8, task="regress", seed=4)
    cfg = complete_training_config({"regressor": {"dev_fraction": 0.25}, "augment": AUG})
    fitted = baseline.fit(data, "regress", cfg)
    alpha = fitted.info["hyperparameters"]["alpha"]
    assert fitted.info["dev_cells"] and fitted.info["training_cells"] == 15
    z, y_tr, xv, z_va = _baseline_by_hand_inputs(data, "regress")
    y_tr = y_tr.astype(np.float64)
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y_tr - y_tr.mean()))
    by_hand = z_va @ w + y_tr.mean()
    np.testing.assert_allclose(fitted.predict(xv), by_hand, rtol=1e-4, atol=1e-5)


def test_classifier_baseline_matches_a_full_svd_pca_by_hand(tmp_path):
    """The classifier baseline on a small real case equals, by hand: standardised transformed
    features, their leading principal components from NumPy's full SVD (the baseline's ARPACK
    finds only those), and a logistic regression with the chosen C and balanced classes."""
    from sklearn.linear_model import LogisticRegression

    from interface4d import baseline
    from interface4d.train import complete_training_config

    data = write_dataset(tmp_path / "c.h5", n=48, nx=3, k=8, task="classify", seed=7)
    cfg = complete_training_config({"classifier": {"dev_fraction": 0.25}, "augment": AUG})
    fitted = baseline.fit(data, "classify", cfg)
    n, c = (fitted.info["hyperparameters"][k] for k in ("pca_components", "C"))
    z, y_tr, xv, z_va = _baseline_by_hand_inputs(data, "classify")
    zm = z.mean(axis=0)
    vt = np.linalg.svd(z - zm, full_matrices=False)[2][:n]
    logit = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    logit.fit((z - zm) @ vt.T, y_tr.astype(np.int64))
    by_hand = logit.predict_proba((z_va - zm) @ vt.T)
    # the signs of the components are a convention; the probabilities do not depend on them
    np.testing.assert_allclose(fitted.predict(xv), by_hand, rtol=1e-4, atol=1e-5)


def test_paired_accuracy_counts_the_lines_only_one_model_gets_right():
    from interface4d.metrics import bootstrap_interval
    from interface4d.scores import paired_accuracy

    df = pd.DataFrame(
        {
            "cell": ["a", "a", "b", "b", "c", "c", "c"],
            "correct": [True, True, False, True, True, False, True],
            "correct_baseline": [True, False, True, False, False, False, True],
        }
    )
    p = paired_accuracy(df, seed=3)
    # by hand: the network alone on lines 1, 3, 4; the baseline alone on line 2
    assert (p["network_only_right"], p["baseline_only_right"]) == (3, 1)
    assert p["accuracy_minus_baseline"] == pytest.approx((5 - 3) / 7)
    diff = np.array([0, 1, -1, 1, 1, 0, 0], float)
    assert p["accuracy_minus_baseline_ci95"] == list(bootstrap_interval(diff, df["cell"], seed=3))
    assert (p["n"], p["n_cells"]) == (7, 3)
    # one cell: the interval collapses onto the difference itself
    one = paired_accuracy(df[df["cell"] == "b"])
    assert one["accuracy_minus_baseline_ci95"] == [0.0, 0.0]


def test_ridge_baseline_sees_the_regressors_mirror_average(tmp_path):
    """With ``symmetrise: ky`` the ridge baseline fits and predicts on the ky-mirror average of
    every draw, as the network's first layer gives it: the closed form on averaged draws, and
    one prediction for a stack and its mirror image."""
    from interface4d import baseline
    from interface4d.inputs import symmetrise, transform
    from interface4d.train import complete_training_config

    data = write_dataset(tmp_path / "r.h5", n=20, nx=3, k=8, task="regress", seed=4)
    cfg = complete_training_config(
        {"regressor": {"dev_fraction": 0.25, "symmetrise": "ky"}, "augment": AUG}
    )
    fitted = baseline.fit(data, "regress", cfg)
    assert fitted.info["symmetrise"] == "ky"
    alpha = fitted.info["hyperparameters"]["alpha"]
    with h5py.File(data) as f:
        split, x, y = f["split"][()], f["x"][()], f["y"][()]
        cells = f["cell"].asstr()[()]
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    draws = np.concatenate([
        augment_batch(x[tr], _uids(cells[tr]), split="train", seed=0, epoch=e,
                      dose_range=AUG["dose"], rotation_deg=2.0)
        for e in range(baseline.REPLICAS["regress"])
    ])  # fmt: skip
    f_tr = transform(symmetrise(draws, "ky"), "sqrt").reshape(len(draws), -1).astype(np.float64)
    mu, sd = f_tr.mean(axis=0), f_tr.std(axis=0)
    sd[sd == 0] = 1.0
    z = (f_tr - mu) / sd
    y_tr = np.tile(y[tr], baseline.REPLICAS["regress"]).astype(np.float64)
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y_tr - y_tr.mean()))
    xv = augment_for_eval(x[va], _uids(cells[va]), AUG, "val")
    f_va = transform(symmetrise(xv, "ky"), "sqrt").reshape(len(va), -1).astype(np.float64)
    by_hand = ((f_va - mu) / sd) @ w + y_tr.mean()
    np.testing.assert_allclose(fitted.predict(xv), by_hand, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fitted.predict(xv[..., ::-1]), fitted.predict(xv), atol=1e-6)
    plain = baseline.fit(data, "regress", complete_training_config(
        {"regressor": {"dev_fraction": 0.25}, "augment": AUG}))  # fmt: skip
    assert not np.allclose(plain.predict(xv[..., ::-1]), plain.predict(xv), atol=1e-6)
