"""The 3D CNN, its augmentation and its Horovod training (real horovodrun, real TensorFlow).

Training runs are subprocesses (``python -m interface4d.train`` or ``horovodrun -np 2 -H
localhost:2 --gloo ...``) on tiny synthetic datasets in the real file format
(``support/cnn_synthetic.py``), one TF thread per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from interface4d.augment import augment_batch, augment_example, draw_dose, rotate_patterns
from support.cnn_synthetic import write_dataset
from support.workflow import BIN, ROOT

SMALL_MODEL = {"filters": [4, 8], "kernel_size": 3, "dense": [16, 8], "dropout": 0.15}


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e.update({"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def _run(args: list[str], cwd: Path, check: bool = True, timeout: float = 300):
    proc = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    return proc


def _train_args(dataset: Path, out: Path, training: dict, *extra: str) -> list[str]:
    return ["-m", "interface4d.train", *_train_options(dataset, out, training, *extra)]


def _train_options(dataset: Path, out: Path, training: dict, *extra: str) -> list[str]:
    return [
        "--dataset",
        str(dataset),
        "--task",
        "classify",
        "--training-json",
        json.dumps(training),
        "--model-out",
        str(out / "model.keras"),
        "--history-out",
        str(out / "history.csv"),
        "--provenance-out",
        str(out / "provenance.json"),
        "--checkpoint-dir",
        str(out / "ckpt"),
        "--threads",
        "1",
        *extra,
    ]


def _horovodrun(*args: str) -> list[str]:
    return [str(BIN / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo", *args]


# --------------------------------------------------------------------------- augmentation


def _disc_patterns(nx: int = 3, k: int = 16) -> np.ndarray:
    c = (k - 1) / 2
    yy, xx = np.mgrid[:k, :k]
    p = 1.0 / (1.0 + np.exp(np.hypot(yy - c, xx - c) - k / 4)) + 0.01
    p = np.broadcast_to(p, (nx, k, k)).astype(np.float64)
    return (p / p.sum(axis=(1, 2), keepdims=True) * 0.98).astype(np.float32)


def test_poisson_noise_keeps_the_mean_at_the_dose():
    x = _disc_patterns()
    for dose in (1e2, 1e4, 1e6):
        rng = np.random.default_rng(1)
        draws = np.stack(
            [augment_example(x, rng, (dose, dose), rotation_deg=0.0)[0] for _ in range(300)]
        )
        counts = draws.astype(np.float64) * dose
        assert np.allclose(counts, np.round(counts), atol=1e-3 * max(1.0, dose / 1e4))
        total = counts.sum(axis=(2, 3)).mean()  # mean electrons per pattern
        assert abs(total / (0.98 * dose) - 1) < 0.01, (dose, total)
        assert abs(draws.mean() / x.mean() - 1) < 0.01
        assert draws.std() > 0  # it is noise, not a copy
    # log-uniform doses inside the configured range
    rng = np.random.default_rng(2)
    doses = np.array([draw_dose(rng, (1e4, 1e6)) for _ in range(4000)])
    assert doses.min() >= 1e4 and doses.max() <= 1e6
    assert abs(np.log10(doses).mean() - 5.0) < 0.05
    assert abs((np.log10(doses) < 4.5).mean() - 0.25) < 0.03


def _spot_angle(pattern: np.ndarray) -> float:
    k = pattern.shape[-1]
    c = (k - 1) / 2
    yy, xx = np.mgrid[:k, :k]
    w = np.clip(pattern, 0, None)
    return float(np.degrees(np.arctan2((w * yy).sum() - c * w.sum(), (w * xx).sum() - c * w.sum())))


def test_rotations_stay_within_the_configured_angle():
    k, c = 33, 16.0
    yy, xx = np.mgrid[:k, :k]
    spot = np.exp(-0.5 * (np.hypot(yy - (c + 4), xx - (c + 11)) / 1.0) ** 2)  # off centre
    x = np.stack([spot, spot]).astype(np.float32) / spot.sum()
    phi0 = _spot_angle(x[0])
    assert abs(_spot_angle(rotate_patterns(x, 7.0)[1]) - phi0 - 7.0) < 0.1  # sign convention
    limit = 3.0
    measured = []
    for i in range(60):
        rng = np.random.default_rng([5, i])
        out, dose, angle = augment_example(x, rng, (1e12, 1e12), limit)
        assert abs(angle) <= limit
        for pattern in out:  # every pattern of the example by the same angle
            turn = _spot_angle(pattern) - phi0
            assert abs(turn - angle) < 0.1, (turn, angle)
            measured.append(turn)
    measured = np.array(measured)
    assert np.abs(measured).max() <= limit + 0.1
    assert np.abs(measured).max() > 0.8 * limit and measured.min() < 0 < measured.max()


def test_validation_draw_is_reproducible_and_differs_from_training():
    x = np.stack([_disc_patterns()] * 6)
    idx = np.arange(10, 16)
    kw = {"dose_range": (1e3, 1e5), "rotation_deg": 2.0}
    v1 = augment_batch(x, idx, split="val", seed=1234, epoch=0, **kw)
    v2 = augment_batch(x, idx, split="val", seed=1234, epoch=7, **kw)  # epoch is ignored
    np.testing.assert_array_equal(v1, v2)
    # per example, so independent of the batch it sits in (batch size, shard, rank count)
    np.testing.assert_array_equal(
        augment_batch(x[[1, 4]], idx[[1, 4]], split="val", seed=1234, epoch=0, **kw), v1[[1, 4]]
    )
    t0 = augment_batch(x, idx, split="train", seed=1234, epoch=0, **kw)
    t1 = augment_batch(x, idx, split="train", seed=1234, epoch=1, **kw)
    for a, b in ((v1, t0), (t0, t1)):
        assert all(not np.array_equal(a[j], b[j]) for j in range(len(idx)))
    np.testing.assert_array_equal(
        t1, augment_batch(x, idx, split="train", seed=1234, epoch=1, **kw)
    )


# --------------------------------------------------------------------------- the model


def test_model_layers_and_outputs():
    import keras

    from interface4d.model import build_model

    mean = np.full((5, 12, 12), 1 / 144, np.float32)
    for task, out_shape in (("classify", (2, 2)), ("regress", (2, 1))):
        m = build_model((5, 12, 12), task, [4, 8, 8], 3, [16, 8], 0.15, input_mean=mean)
        kinds = [type(layer).__name__ for layer in m.layers]
        assert kinds == [
            "InputLayer",
            "Normalization",
            "Conv3D",
            "Dropout",
            "Conv3D",
            "Dropout",
            "Conv3D",
            "Dropout",
            "AveragePooling3D",
            "Flatten",
            "Dense",
            "Dense",
            "Dense",
        ]
        convs = [la for la in m.layers if isinstance(la, keras.layers.Conv3D)]
        assert all(c.padding == "same" and c.activation.__name__ == "relu" for c in convs)
        assert all(la.rate == 0.15 for la in m.layers if isinstance(la, keras.layers.Dropout))
        head = m.layers[-1]
        assert head.activation.__name__ == ("softmax" if task == "classify" else "linear")
        y = m(np.random.default_rng(0).random((2, 5, 12, 12, 1), np.float32) / 144)
        assert tuple(y.shape) == out_shape
    with pytest.raises(ValueError, match="task"):
        build_model((5, 12, 12), "segment")


def test_input_transform_is_part_of_the_saved_model(tmp_path):
    from interface4d.inputs import transform
    from interface4d.model import build_model, load

    x = np.random.default_rng(1).uniform(0, 0.01, (3, 5, 12, 12)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # a zero count
    for kind in ("sqrt", "log"):
        t = transform(x, kind)
        mean, std = t.mean(axis=0), t.std(axis=0) + 0.1
        m = build_model((5, 12, 12), "regress", [4], 3, [8, 8], 0.0, input_mean=mean,
                        input_std=std, input_transform=kind)  # fmt: skip
        assert [type(la).__name__ for la in m.layers][1:3] == ["InputTransform", "Normalization"]
        m.save(tmp_path / f"{kind}.keras")
        again = load(tmp_path / f"{kind}.keras")
        np.testing.assert_allclose(
            np.asarray(again(x[..., None])), np.asarray(m(x[..., None])), rtol=1e-6
        )
        # the layers see standardised transformed intensities
        inner = type(m)(m.inputs, m.get_layer("standardise").output)
        np.testing.assert_allclose(
            np.asarray(inner(x[..., None]))[..., 0], (t - mean) / std, rtol=1e-4, atol=1e-4
        )


# --------------------------------------------------------------------------- Horovod


@pytest.mark.slow
@pytest.mark.parametrize("average", [True, False], ids=["averaged", "averaging-off"])
def test_two_horovod_ranks_end_with_identical_weights(tmp_path, average):
    data = write_dataset(tmp_path / "d.h5", n=48, nx=4, k=12, seed=3)
    training = {"ranks": 2, "model": SMALL_MODEL, "classifier": {"epochs": 2, "batch_size": 6}}
    # tests/train_hooked.py: each rank writes its final weights' digest (on_train_end)
    mode = "digest" if average else "digest-unaveraged"
    hooked = [str(ROOT / "tests" / "train_hooked.py"), mode, str(tmp_path / "digest")]
    proc = _run(
        _horovodrun(sys.executable, *hooked, *_train_options(data, tmp_path / "out", training)),
        tmp_path,
    )
    digests = [json.loads((tmp_path / "digest" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [d["size"] for d in digests] == [2, 2]
    if average:
        assert digests[0]["sha256"] == digests[1]["sha256"], digests
        prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
        assert prov["ranks"] == 2 and prov["average_gradients"] is True
        # the batch and the learning rate are global: the ranks share the batch of 6
        assert prov["optimiser"]["global_batch_size"] == 6
        assert prov["optimiser"]["batch_size_per_rank"] == 3
        assert prov["optimiser"]["learning_rate"] == pytest.approx(1e-3)
        assert "epoch 2/2" in proc.stdout + proc.stderr
        assert (tmp_path / "out" / "model.keras").stat().st_size > 0
    else:  # the check above detects a run whose gradients are not averaged
        assert digests[0]["sha256"] != digests[1]["sha256"], digests


@pytest.mark.slow
def test_two_rank_gradient_equals_single_process_gradient_of_the_union(tmp_path):
    _run(
        _horovodrun(sys.executable, str(ROOT / "tests" / "hvd_gradient_check.py"), str(tmp_path)),
        tmp_path,
    )
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for task in ("classify", "regress"):
        on = [rep[f"{task}/average"] for rep in reports]
        off = [rep[f"{task}/no_average"] for rep in reports]
        for r in on:
            assert r["update_scale"] > 1e-3  # a real step, not a vanishing one
            assert r["max_rel_error"] < 1e-4, (task, r)
        assert on[0]["weights_sha256"] == on[1]["weights_sha256"]
        # the control: with the averaging off, each rank applies its own half-batch gradient
        for r in off:
            assert r["max_rel_error"] > 1e-2, (task, r)
        assert off[0]["weights_sha256"] != off[1]["weights_sha256"]


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.slow
def test_run_killed_after_an_epoch_resumes_at_the_next(tmp_path):
    from interface4d.checkpoints import list_checkpoints, read_history_csv

    data = write_dataset(tmp_path / "d.h5", n=48, nx=4, k=12, seed=4)
    training = {"ranks": 1, "model": SMALL_MODEL, "classifier": {"epochs": 4, "batch_size": 8}}
    py = sys.executable
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _run([py, *_train_args(data, whole, training)], tmp_path)

    # the same command line, with an on_epoch_end hook that SIGKILLs the run after epoch 2
    hooked = [py, str(ROOT / "tests" / "train_hooked.py"), "kill", "2"]
    killed = _run([*hooked, *_train_options(data, cut, training)], tmp_path, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [e for e, _ in list_checkpoints(cut / "ckpt")] == [1, 2]
    assert not (cut / "model.keras").exists() and not (cut / "history.csv").exists()
    assert not list((cut / "ckpt").glob("*.part-*"))

    resumed = _run([py, *_train_args(data, cut, training)], tmp_path)
    log = resumed.stderr
    assert "resuming from checkpoint" in log and "epoch 2 done" in log
    assert "epoch 1/4" not in log and "epoch 2/4" not in log and "epoch 3/4" in log
    prov = json.loads((cut / "provenance.json").read_text())
    assert prov["resumed_from_epoch"] == 2
    a, b = read_history_csv(whole / "history.csv"), read_history_csv(cut / "history.csv")
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert a[:2] == b[:2]  # the history so far, from the checkpoint
    for ra, rb in zip(a[2:], b[2:], strict=True):  # and the same continuation
        assert ra == pytest.approx(rb, rel=1e-5, abs=1e-7)
    assert [e for e, _ in list_checkpoints(cut / "ckpt")] == [3, 4]

    # another seed (fingerprint) and fewer epochs: the old checkpoints are not resumed from
    other = dict(training, seed=1, classifier={"epochs": 1, "batch_size": 8})
    fresh = _run([py, *_train_args(data, cut, other)], tmp_path)
    assert "removing checkpoint" in fresh.stderr and "resuming" not in fresh.stderr
    assert json.loads((cut / "provenance.json").read_text())["resumed_from_epoch"] == 0
    assert [r["epoch"] for r in read_history_csv(cut / "history.csv")] == [1]
    assert [e for e, _ in list_checkpoints(cut / "ckpt")] == [1]


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_separable_data_reaches_95_percent_validation_accuracy(tmp_path):
    from interface4d.checkpoints import read_history_csv
    from interface4d.saliency import load_model
    from interface4d.validation import network_predictor, predict_split

    data = write_dataset(tmp_path / "d.h5", n=160, nx=4, k=12, seed=1)
    training = {"ranks": 1, "seed": 0, "classifier": {"epochs": 10, "batch_size": 8}}
    out = tmp_path / "out"
    _run([sys.executable, *_train_args(data, out, training)], tmp_path)
    history = read_history_csv(out / "history.csv")
    prov = json.loads((out / "provenance.json").read_text())
    best = prov["final"]["best_epoch"]
    assert 1 <= best <= len(history) <= 10
    assert history[best - 1]["dev_accuracy"] >= 0.95, history
    assert history[best - 1]["dev_loss"] == min(h["dev_loss"] for h in history)
    assert prov["dataset"]["n_dev"] > 0 and prov["dataset"]["validation_rows_read"] == 0
    # the held-out validation rows, never seen in training, augmented as the evaluation does
    aug = {"dose": [1e4, 1e6], "rotation_deg": 2.0, "val_seed": 1234}
    _, y, outs = predict_split(
        {"net": network_predictor(load_model(out / "model.keras"))}, data, aug, ["val"]
    )
    assert (outs["net"]["val"].argmax(axis=1) == y).mean() >= 0.95


@pytest.mark.slow
def test_validation_rows_cannot_change_the_trained_weights(tmp_path):
    """Training reads only its training cells: corrupting the validation rows, or removing
    them, leaves the trained weights bit-identical (model selection included)."""
    import h5py

    from interface4d.h5io import atomic_h5

    data = write_dataset(tmp_path / "d.h5", n=60, nx=4, k=12, seed=5)
    corrupt, dropped = tmp_path / "corrupt.h5", tmp_path / "dropped.h5"
    with h5py.File(data) as f:
        x, y, split, cell = f["x"][()], f["y"][()], f["split"][()], f["cell"][()]
    val = split == 1
    rng = np.random.default_rng(0)
    for path, keep in ((corrupt, np.ones(len(y), bool)), (dropped, ~val)):
        xx, yy = x.copy(), y.copy()
        if path == corrupt:
            xx[val] = rng.uniform(0, 1, xx[val].shape)
            yy[val] = 1 - yy[val]
        with atomic_h5(path) as g:
            g.create_dataset("x", data=xx[keep], chunks=(1, *x.shape[1:]))
            g["y"], g["split"], g["cell"] = yy[keep], split[keep], cell[keep]
    training = {"ranks": 1, "model": SMALL_MODEL, "classifier": {"epochs": 4, "batch_size": 8}}
    digests = []
    for name, path in (("a", data), ("b", corrupt), ("c", dropped)):
        _run([sys.executable, *_train_args(path, tmp_path / name, training)], tmp_path)
        prov = json.loads((tmp_path / name / "provenance.json").read_text())
        digests.append((prov["weights"]["sha256"], prov["final"]["best_epoch"]))
        assert prov["dataset"]["n_dev"] > 0  # selection ran, on development cells
    assert digests[0] == digests[1] == digests[2], digests


def test_class_weights_balance_the_classes():
    from interface4d.trainingdata import class_weights

    w = class_weights(np.array([0, 0, 0, 1]), "weights")
    np.testing.assert_allclose(w, [4 / 6, 4 / 2])
    assert np.isclose((w[np.array([0, 0, 0, 1])]).sum(axis=0), 4)  # the same total weight
    np.testing.assert_array_equal(class_weights(np.array([0, 0, 0, 1]), "none"), [1, 1])
    np.testing.assert_array_equal(class_weights(np.array([1, 1]), "weights"), [1, 1])


@pytest.mark.slow
def test_the_papers_recipe_trains_every_epoch_and_keeps_the_last(tmp_path):
    from interface4d.checkpoints import read_history_csv

    data = write_dataset(tmp_path / "d.h5", n=48, nx=4, k=12, seed=2)
    paper = {"optimizer": "sgd", "learning_rate": 0.04, "momentum": 0.0, "patience": 0}
    training = {
        "ranks": 1,
        "input": "linear",
        "class_balance": "none",
        "model": SMALL_MODEL,
        "classifier": {"epochs": 3, "batch_size": 8, "dev_fraction": 0.0, **paper},
    }
    out = tmp_path / "out"
    _run([sys.executable, *_train_args(data, out, training)], tmp_path)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["optimiser"]["name"] == "sgd" and prov["dataset"]["n_dev"] == 0
    assert prov["final"]["best_epoch"] == 3 and prov["class_weights"] == [1.0, 1.0]
    assert len(read_history_csv(out / "history.csv")) == 3


def test_each_member_of_an_ensemble_gets_the_gradient_of_its_own_loss():
    import keras
    import tensorflow as tf

    from interface4d.model import build_model, members_view
    from interface4d.optimisation import loss_and_metric_fns

    keras.utils.set_random_seed(0)
    model = build_model((3, 8, 8), "regress", [2], 3, [4, 4], 0.0, members=2)
    net, k = members_view(model)
    x = tf.constant(np.random.default_rng(0).random((5, 3, 8, 8, 1), np.float32))
    y = tf.constant(np.linspace(0.1, 0.9, 5, dtype=np.float32))
    loss_fn, metric_sum = loss_and_metric_fns("regress", members=k)
    m0 = [v for v in model.trainable_variables if v.path.startswith("m0_")]
    with tf.GradientTape() as tape:
        both = loss_fn(y, net(x)) * k  # what a training step differentiates
    g_both = tape.gradient(both, [v.value for v in m0])
    alone = keras.Model(model.input, model.get_layer("m0_step_fraction").output)
    with tf.GradientTape() as tape:
        own = tf.reduce_mean(tf.square(alone(x)[:, 0] - y))
    g_own = tape.gradient(own, [v.value for v in m0])
    assert k == 2 and len(m0) == len(model.trainable_variables) // 2
    for a, b in zip(g_both, g_own, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-8)
    # the saved model answers with the members' mean; the metric scores that mean
    members = net(x).numpy()
    np.testing.assert_allclose(model(x).numpy()[:, 0], members.mean(axis=1), rtol=1e-6)
    assert not np.allclose(members[:, 0], members[:, 1])
    mae = float(metric_sum(y, net(x))) / 5
    assert mae == pytest.approx(float(np.mean(np.abs(members.mean(axis=1) - y.numpy()))))


@pytest.mark.slow
def test_an_ensemble_trains_and_saves_as_one_model(tmp_path):
    from interface4d.model import load, members_view

    data = write_dataset(tmp_path / "d.h5", n=32, nx=4, k=12, seed=3)
    training = {"ranks": 1, "model": SMALL_MODEL,
                "classifier": {"epochs": 2, "batch_size": 8, "members": 3}}  # fmt: skip
    out = tmp_path / "out"
    _run([sys.executable, *_train_args(data, out, training)], tmp_path)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["optimiser"]["members"] == 3
    model = load(out / "model.keras")
    net, k = members_view(model)
    x = np.random.default_rng(1).random((4, 4, 12, 12, 1)).astype(np.float32) * 0.01
    probs = net(x).numpy().reshape(4, 3, 2)
    assert k == 3
    np.testing.assert_allclose(model(x).numpy(), probs.mean(axis=1), rtol=1e-5)


@pytest.mark.slow
def test_gradient_clipping_keeps_a_large_sgd_rate_from_diverging(tmp_path):
    data = write_dataset(tmp_path / "d.h5", n=24, nx=4, k=12, task="regress", seed=4)
    sgd = {"optimizer": "sgd", "learning_rate": 50.0, "epochs": 3, "batch_size": 4,
           "dev_fraction": 0.0, "patience": 0}  # fmt: skip
    outs = {}
    for clip in (0.0, 0.5):
        training = {"ranks": 1, "model": SMALL_MODEL, "regressor": {**sgd, "clip_norm": clip}}
        out = tmp_path / f"clip{clip}"
        args = _train_args(data, out, training)
        args[args.index("classify")] = "regress"
        outs[clip] = _run([sys.executable, *args], tmp_path, check=False)
    assert outs[0.0].returncode != 0 and "diverged" in outs[0.0].stderr
    assert outs[0.5].returncode == 0, outs[0.5].stderr[-2000:]
    prov = json.loads((tmp_path / "clip0.5" / "provenance.json").read_text())
    assert np.isfinite(prov["final"]["loss"])


def test_input_statistics_of_a_few_examples_rest_on_many_augmentation_draws(tmp_path):
    from interface4d.trainingdata import STATS_MIN_DRAWS, TrainingData, input_statistics

    data = write_dataset(tmp_path / "d.h5", n=12, nx=3, k=10, task="regress", seed=5)
    aug = {"dose": [1e4, 1e6], "rotation_deg": 2.0}
    d = TrainingData(data, "regress", 0.0, 0)
    try:
        rows = d.fit_indices
        mean, std, draws = input_statistics(d, 0, "sqrt", aug)
        _, _, one = input_statistics(d, 0, "sqrt", aug, min_draws=1)
        x, _ = d.read(rows)
        uids = d.train.uids(rows)
    finally:
        d.close()
    n_fit = len(rows)
    assert one == n_fit and draws >= STATS_MIN_DRAWS and draws % n_fit == 0
    # by hand: the first draws // n_fit epochs' augmentation of every training example
    epochs = [
        augment_batch(x, uids, split="train", seed=0, epoch=e, dose_range=aug["dose"],
                      rotation_deg=2.0)
        for e in range(draws // n_fit)
    ]  # fmt: skip
    t = np.sqrt(np.clip(np.concatenate(epochs), 0, None)).astype(np.float64)
    np.testing.assert_allclose(mean, t.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(std, np.maximum(t.std(axis=0), 1e-3 * t.std(axis=0).mean()),
                               rtol=1e-4, atol=1e-7)  # fmt: skip
    # one scalar std: the root of the per-voxel variance averaged over the voxels
    d = TrainingData(data, "regress", 0.0, 0)
    try:
        _, sstd, _ = input_statistics(d, 0, "sqrt", aug, scale="scalar")
    finally:
        d.close()
    np.testing.assert_allclose(sstd, np.full(std.shape, np.sqrt(t.var(axis=0).mean())), rtol=1e-4)


def test_mixup_batches_mix_patterns_and_step_fractions_with_their_own_draws(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from interface4d.augment import mixup_draws
    from interface4d.trainingdata import TrainingData, augmented_batches

    data = write_dataset(tmp_path / "d.h5", n=12, nx=3, k=10, task="regress", seed=5)
    kw = {"split": "train", "seed": 3, "epoch": 2, "dose_range": [1e12, 1e12], "rotation_deg": 0.0}
    d = TrainingData(data, "regress", 0.0, 0)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        rows = d.fit_indices[::-1]
        (xb, yb), *_ = augmented_batches(d, rows, len(rows), kw, pool, mixup=1.0)
        (xs, ys), *_ = augmented_batches(d, rows, len(rows), kw, pool, 1.0, mix_space="sqrt")
        halves = [
            b for part in (rows[:5], rows[5:]) for b in augmented_batches(d, part, 8, kw, pool, 1.0)
        ]
        x, y = d.read(rows)
        pos, lam = mixup_draws(d.train.uids(rows), seed=3, epoch=2, pool_size=len(rows), alpha=1.0)
        xp, yp = d.read(d.fit_indices[pos])
    finally:
        pool.shutdown()
        d.close()
    assert np.all((lam > 0) & (lam < 1)) and len(set(pos.tolist())) > 1
    np.testing.assert_allclose(yb, lam * y + (1 - lam) * yp, rtol=1e-6)
    mixed = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * xp
    np.testing.assert_allclose(xb[..., 0], mixed, rtol=1e-4, atol=1e-6)  # dose 1e12: no noise
    # mixup_space: transformed (sqrt input): the same partners and weights, the mean taken on
    # the square roots of the patterns
    root = lam[:, None, None, None] * np.sqrt(x) + (1 - lam[:, None, None, None]) * np.sqrt(xp)
    np.testing.assert_allclose(np.sqrt(np.maximum(xs[..., 0], 0)), root, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(ys, yb)
    # an example's partner and weight do not depend on the batch it is in
    np.testing.assert_array_equal(np.concatenate([b[1] for b in halves]), yb)
    other = mixup_draws(d.train.uids(rows), seed=3, epoch=3, pool_size=len(rows), alpha=1.0)
    assert not np.array_equal(other[1], lam)  # a new draw every epoch


def test_mixup_is_refused_for_the_classifier():
    from interface4d.config import ConfigError
    from interface4d.train import complete_training_config

    with pytest.raises(ConfigError, match=r"training\.classifier\.mixup.*regressors only"):
        complete_training_config({"classifier": {"mixup": 0.4}})
    assert complete_training_config({"regressor": {"mixup": 0.4}})["regressor"]["mixup"] == 0.4


def test_linear_skip_adds_a_linear_map_of_the_standardised_input(tmp_path):
    """``skip: linear``: the regressor's output is the CNN's head plus ``w . (s z)`` on the
    standardised input ``z``; with the CNN's head at zero the saved network is exactly a
    linear regression on ``(sqrt(x) - mean) / std`` (what the ridge baseline fits)."""
    from interface4d.model import SKIP_GAIN, build_model, load

    rng = np.random.default_rng(0)
    shape = (3, 6, 6)
    mean = rng.random(shape).astype(np.float32) * 0.1
    m = build_model(shape, "regress", [2], 3, [4, 4], 0.15, input_mean=mean, input_std=0.05,
                    input_transform="sqrt", skip="linear")  # fmt: skip
    names = [layer.name for layer in m.layers]
    assert {"cnn_out", "skip_flatten", "skip_scale", "linear_skip", "step_fraction"} <= set(names)
    assert not np.any(m.get_layer("linear_skip").get_weights()[0])  # starts at zero
    v, b = rng.normal(size=np.prod(shape)).astype(np.float32), np.float32(0.3)
    s = np.sqrt(SKIP_GAIN / np.prod(shape))
    m.get_layer("linear_skip").set_weights([(v / s)[:, None], np.array([b])])
    head = m.get_layer("cnn_out")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    m.save(tmp_path / "skip.keras")
    x = rng.random((4, *shape, 1)).astype(np.float32) * 0.02
    z = ((np.sqrt(x[..., 0]) - mean) / 0.05).reshape(4, -1)
    want = z.astype(np.float64) @ v + b
    np.testing.assert_allclose(load(tmp_path / "skip.keras")(x).numpy()[:, 0], want, rtol=2e-4,
                               atol=2e-4)  # fmt: skip
    # the CNN's head adds to it
    head.set_weights([np.zeros_like(head.get_weights()[0]), np.array([0.25], np.float32)])
    np.testing.assert_allclose(m(x).numpy()[:, 0], want + 0.25, rtol=2e-4, atol=2e-4)
    # an ensemble: every member has its own path; the classifier has none
    two = build_model(shape, "regress", [2], 3, [4, 4], 0.0, members=2, skip="linear")
    assert {"m0_linear_skip", "m1_linear_skip"} <= {layer.name for layer in two.layers}
    with pytest.raises(ValueError, match="skip"):
        build_model(shape, "classify", [2], 3, [4, 4], 0.0, skip="linear")


def test_the_linear_skip_is_refused_for_the_classifier():
    from interface4d.config import ConfigError
    from interface4d.train import complete_training_config

    with pytest.raises(ConfigError, match=r"training\.classifier\.skip.*regressors only"):
        complete_training_config({"classifier": {"skip": "linear"}})
    assert complete_training_config({"regressor": {"skip": "linear"}})["regressor"]["skip"] == (
        "linear"
    )
    with pytest.raises(ConfigError, match=r"training\.regressor\.skip"):
        complete_training_config({"regressor": {"skip": "quadratic"}})


@pytest.mark.slow
def test_a_refitted_regressor_fits_its_training_cells_and_reads_no_validation_rows(tmp_path):
    """``skip_refit: ridge`` through the training CLI: the saved network is the trained one with
    the ridge fit of what it misses added to its linear path (its training draws now fitted far
    closer), recorded in the provenance; corrupting the validation rows changes no weight."""
    import h5py

    from interface4d.h5io import atomic_h5
    from interface4d.model import load
    from interface4d.trainingdata import TrainingData
    from interface4d.validation import predict
    from interface4d.warmstart import draw_examples

    data = write_dataset(tmp_path / "d.h5", n=32, nx=3, k=10, task="regress", seed=6)
    corrupt = tmp_path / "corrupt.h5"
    with h5py.File(data) as f:
        x, y, split, cell = f["x"][()], f["y"][()], f["split"][()], f["cell"][()]
    val = split == 1
    x[val] = np.random.default_rng(0).uniform(0, 1, x[val].shape)
    y[val] = 1 - y[val]
    with atomic_h5(corrupt) as g:
        g.create_dataset("x", data=x, chunks=(1, *x.shape[1:]))
        g["y"], g["split"], g["cell"] = y, split, cell
    reg = {"optimizer": "sgd", "epochs": 2, "batch_size": 8, "learning_rate": 0.04,
           "momentum": 0.0, "dev_fraction": 0.0, "patience": 0, "clip_norm": 5.0,
           "standardise": "scalar", "skip": "linear", "skip_refit": "ridge"}  # fmt: skip
    training = {"ranks": 1, "model": SMALL_MODEL, "regressor": reg}
    provs = []
    for name, path in (("a", data), ("b", corrupt)):
        args = _train_args(path, tmp_path / name, training)
        args[args.index("classify")] = "regress"
        _run([sys.executable, *args], tmp_path)
        provs.append(json.loads((tmp_path / name / "provenance.json").read_text()))
    assert provs[0]["weights"]["sha256"] == provs[1]["weights"]["sha256"]
    refit = provs[0]["skip_refit"]
    assert refit["cells"] == int((~val).sum()) and refit["examples"] == 16 * refit["cells"]
    assert refit["training_mae_after"] < 0.5 * refit["training_mae_before"]
    # the saved network gives what the refit recorded, on the same training draws
    d = TrainingData(data, "regress", 0.0, 0)
    try:
        xd, yd, _ = draw_examples(d, 0, provs[0]["training"]["augment"])
    finally:
        d.close()
    got = np.mean(np.abs(predict(load(tmp_path / "a" / "model.keras"), xd) - yd))
    assert got == pytest.approx(refit["training_mae_after"], rel=1e-3, abs=1e-4)


def test_mixup_takes_the_mean_in_the_space_the_input_transform_gives():
    from interface4d.inputs import mix, transform

    rng = np.random.default_rng(5)
    a = rng.gamma(2.0, 1e-3, size=(4, 3, 6, 6)).astype(np.float32)
    b = rng.gamma(2.0, 1e-2, size=(4, 3, 6, 6)).astype(np.float32)
    lam = rng.uniform(size=4).astype(np.float32)[:, None, None, None]
    for kind in ("sqrt", "log"):
        want = lam * transform(a, kind) + (1 - lam) * transform(b, kind)
        np.testing.assert_allclose(
            transform(mix(a, b, lam, kind), kind), want, rtol=2e-5, atol=1e-6
        )
    # in the raw space it is the plain weighted mean, bit for bit (what mixup did before)
    np.testing.assert_array_equal(mix(a, b, lam, "linear"), lam * a + (1 - lam) * b)
    # the sqrt mean of two patterns lies below their raw mean (Jensen): a different example
    assert np.all(mix(a, b, lam, "sqrt") <= mix(a, b, lam, "linear") + 1e-9)


@pytest.mark.slow
def test_the_ky_mirror_average_is_the_saved_regressors_first_layer(tmp_path):
    """``symmetrise: ky``: the trained network's first layer averages each unit-cell average with
    its ky mirror, so the saved network gives the same step fraction for a stack and for its
    mirror image, and exactly what the same weights give on the averaged stack; its input
    statistics are those of the averaged stacks (ky-symmetric); the classifier refuses it."""
    from interface4d.config import ConfigError
    from interface4d.inputs import symmetrise
    from interface4d.model import build_model, load
    from interface4d.train import complete_training_config

    data = write_dataset(tmp_path / "d.h5", n=16, nx=3, k=9, task="regress", seed=8)
    reg = {"optimizer": "sgd", "epochs": 2, "batch_size": 8, "learning_rate": 0.04,
           "dev_fraction": 0.0, "patience": 0, "clip_norm": 5.0, "standardise": "scalar",
           "skip": "linear", "skip_refit": "ridge", "symmetrise": "ky"}  # fmt: skip
    args = _train_args(data, tmp_path / "a", {"ranks": 1, "model": SMALL_MODEL, "regressor": reg})
    args[args.index("classify")] = "regress"
    _run([sys.executable, *args], tmp_path)
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert prov["training"]["regressor"]["symmetrise"] == "ky"
    net = load(tmp_path / "a" / "model.keras")
    assert [layer.name for layer in net.layers][1] == "mirror_average"
    mean = net.get_layer("standardise").mean.numpy().reshape(3, 9, 9)
    np.testing.assert_allclose(mean, mean[..., ::-1], rtol=1e-6)
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 1e-3, size=(5, 3, 9, 9)).astype(np.float32)
    x[..., :4] *= 3.0  # far from symmetric
    out = net(x[..., None]).numpy()
    np.testing.assert_allclose(net(x[..., ::-1, None]).numpy(), out, rtol=1e-6, atol=1e-7)
    std = np.sqrt(net.get_layer("standardise").variance.numpy().reshape(3, 9, 9))
    plain = build_model(
        (3, 9, 9), "regress", SMALL_MODEL["filters"], 3, SMALL_MODEL["dense"], 0.15,
        input_mean=mean, input_std=std, input_transform="sqrt", skip="linear",
    )  # fmt: skip
    for layer in plain.layers:
        if layer.weights and layer.name != "standardise":
            layer.set_weights(net.get_layer(layer.name).get_weights())
    want = plain(symmetrise(x, "ky")[..., None]).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain(x[..., None]).numpy(), want, atol=1e-4)  # the layer matters
    with pytest.raises(ConfigError, match=r"training\.classifier\.symmetrise.*regressors"):
        complete_training_config({"classifier": {"symmetrise": "ky"}})
    with pytest.raises(ValueError, match="symmetrise"):
        build_model((3, 9, 9), "classify", [2], 3, [4, 4], 0.0, symmetrise="ky")


@pytest.mark.slow
def test_a_projected_member_sees_its_input_in_the_training_examples_subspace(tmp_path):
    """``project: k`` with ``projected_members: 1`` of 2: the saved regressor's second member's
    CNN sees the standardised input projected onto the k leading principal directions of the
    noiseless (rotated) training draws: the basis it holds is orthonormal and is that subspace,
    recomputed here, and corrupting the validation rows changes neither it nor the weights; a
    change of the input outside it does not move that CNN, and it moves the first member's CNN
    and the linear paths, which see the input as it is. The classifier and more projected
    members than members are refused."""
    import h5py
    import keras

    from interface4d.config import ConfigError
    from interface4d.h5io import atomic_h5
    from interface4d.model import load
    from interface4d.train import complete_training_config
    from interface4d.trainingdata import (
        SUBSPACE_MIN_DRAWS,
        TrainingData,
        input_subspace,
        training_draws,
    )

    data = write_dataset(tmp_path / "d.h5", n=16, nx=3, k=9, task="regress", seed=8)
    reg = {"optimizer": "sgd", "epochs": 2, "batch_size": 8, "learning_rate": 0.04,
           "dev_fraction": 0.0, "patience": 0, "clip_norm": 5.0, "standardise": "scalar",
           "skip": "linear", "skip_refit": "ridge", "members": 2, "project": 3}  # fmt: skip
    training = {"ranks": 1, "seed": 0, "model": SMALL_MODEL, "regressor": reg,
                "augment": {"dose": [100.0, 1000.0], "rotation_deg": 2.0}}  # fmt: skip
    args = _train_args(data, tmp_path / "a", training)
    args[args.index("classify")] = "regress"
    _run([sys.executable, *args], tmp_path)
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert prov["training"]["regressor"]["projected_members"] == 1
    net = load(tmp_path / "a" / "model.keras")
    basis = net.get_layer("cnn_projection").basis.numpy()
    # the validation rows do not reach the basis: corrupted, they leave it and the weights as
    # they were
    corrupt = tmp_path / "corrupt.h5"
    with h5py.File(data) as f, atomic_h5(corrupt) as g:
        for key in f:
            g[key] = f[key][()]
        val = g["split"][()] == 1
        x = g["x"][()]
        x[val] = np.random.default_rng(0).uniform(0, 1, x[val].shape)
        g["x"][...] = x
    args = _train_args(corrupt, tmp_path / "b", training)
    args[args.index("classify")] = "regress"
    _run([sys.executable, *args], tmp_path)
    other = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert other["weights"]["sha256"] == prov["weights"]["sha256"]
    np.testing.assert_array_equal(
        load(tmp_path / "b" / "model.keras").get_layer("cnn_projection").basis.numpy(), basis
    )
    assert basis.shape == (3 * 9 * 9, 3)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-5)
    # the subspace of the noiseless training draws, standardised as the network standardises
    full = complete_training_config(training)
    mean = net.get_layer("standardise").mean.numpy().reshape(3, 9, 9)
    std = np.sqrt(net.get_layer("standardise").variance.numpy().reshape(3, 9, 9))
    d = TrainingData(data, "regress", 0.0, 0)
    try:
        t = training_draws(d, 0, "sqrt", full["augment"], min_draws=SUBSPACE_MIN_DRAWS,
                           shot_noise=False)  # fmt: skip
    finally:
        d.close()
    want = input_subspace(t, mean, std, 3)
    np.testing.assert_allclose(np.abs(basis.T @ want), np.eye(3), atol=1e-4)
    # shot noise is not in it: the noisy draws' leading directions are a different subspace
    noisy = TrainingData(data, "regress", 0.0, 0)
    try:
        tn = training_draws(noisy, 0, "sqrt", full["augment"], min_draws=SUBSPACE_MIN_DRAWS)
    finally:
        noisy.close()
    cosines = np.linalg.svd(basis.T @ input_subspace(tn, mean, std, 3), compute_uv=False)
    assert cosines.min() < 0.99, cosines
    # a change of the standardised input orthogonal to the basis moves member 1's CNN not at all
    z_in = net.get_layer("standardise").output
    parts = keras.Model(
        z_in, [net.get_layer(n).output for n in ("m0_cnn_out", "m1_cnn_out", "m1_linear_skip")]
    )
    rng = np.random.default_rng(2)
    z = rng.normal(size=(4, 3, 9, 9, 1)).astype(np.float32)
    u = rng.normal(size=(4, 3 * 9 * 9))
    u -= (u @ basis) @ basis.T  # outside the subspace
    u = (2.0 * u / np.linalg.norm(u, axis=1, keepdims=True) * 9).reshape(z.shape)
    before = [o.numpy() for o in parts(z)]
    after = [o.numpy() for o in parts(z + u.astype(np.float32))]
    np.testing.assert_allclose(after[1], before[1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(after[0], before[0], atol=1e-3)  # the plain member sees it
    assert not np.allclose(after[2], before[2], atol=1e-4)  # and so does the linear path
    with pytest.raises(ConfigError, match=r"training\.classifier\.project.*regressors only"):
        complete_training_config({"classifier": {"project": 4}})
    with pytest.raises(ConfigError, match=r"training\.regressor\.projected_members' = 3"):
        complete_training_config(
            {"regressor": {"members": 2, "project": 4, "projected_members": 3}}
        )


def test_the_jobs_ranks_replace_the_ones_its_network_reads():
    """``--ranks N`` (the workflow passes its job's threads): the network's own ``ranks`` where
    its block sets them, else ``training.ranks``; the block passed in is not changed."""
    from interface4d.train import build_parser, with_ranks

    cfg = {"ranks": 2, "regressor": {"ranks": 1}, "classifier": {"epochs": 3}}
    assert with_ranks(cfg, "regress", 4) == {**cfg, "regressor": {"ranks": 4}}
    assert with_ranks(cfg, "classify", 6) == {**cfg, "ranks": 6}
    assert cfg == {"ranks": 2, "regressor": {"ranks": 1}, "classifier": {"epochs": 3}}
    args = build_parser().parse_args(
        ["--dataset", "d.h5", "--task", "regress", "--checkpoint-dir", "c", "--ranks", "3"]
    )
    assert args.ranks == 3
