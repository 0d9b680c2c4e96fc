"""Real Snakemake runs of the tiny campaign in a temp copy: outputs, rerun rules, kills.

The promise: a config change reruns only the cells whose settings changed (plus what aggregates
them); adding a grid value adds only new cells; a global physics change reruns every cell;
execution settings and a fresh clone (new mtimes) rerun nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest
import yaml

from support.workflow import ROOT, copy_workflow

from .helpers import planned, snakemake, start_snakemake, write_config

pytestmark = pytest.mark.slow

TINY = ROOT / "tests/configs/tiny.yaml"


def copy_tiny(dest: Path) -> Path:
    return copy_workflow(dest, TINY, as_name="tiny.yaml")


@pytest.fixture
def done(tiny_campaign) -> Path:
    """The tiny campaign, run once to completion (session fixture in conftest.py)."""
    return tiny_campaign


def tiny() -> dict:
    return yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())


def sims(jobs: dict) -> set[str]:
    return {out for out, (rule, _) in jobs.items() if rule == "simulate"}


ALL_SIMS = {
    f"results/sims/{c}.h5"
    for c in (
        "t40/step-d3",
        "t40/step-d7",
        "t40/diffusion-ti0.2-s1",
        "t40/diffusion-ti0.5-s1",
        "t60/step-d5",
        "t60/step-d11",
        "t60/diffusion-ti0.2-s1",
        "t60/diffusion-ti0.5-s1",
    )
}


def test_run_writes_every_output(done):
    for sim in ALL_SIMS:
        with h5py.File(done / sim) as fh:
            assert fh.attrs["complete"] and fh["cbed"].ndim == 4
        cell = sim[len("results/sims/") : -3]
        assert (done / f"results/logs/simulate/{cell}.log").stat().st_size > 0
        assert (done / f"results/benchmarks/simulate/{cell}.tsv").exists()
    assert (done / "results/figures/structures.png").stat().st_size > 10_000
    for t in ("40", "60"):
        assert (done / f"results/figures/scan/t{t}.png").stat().st_size > 10_000
    assert not list((done / "results").rglob("*.part-*"))


def test_evaluation_sets_each_number_beside_its_baseline_and_interval(done):
    """The evaluated numbers carry their 95 % interval, count and the linear baseline's value;
    the headline file and the detectability table hold them; training never read a validation
    row and kept its best development epoch."""
    import json

    import pandas as pd

    res = done / "results"
    cls = json.loads((res / "metrics/classifier.json").read_text())
    assert (
        cls["n_val_cells"] >= 2 and sum(map(sum, cls["confusion_matrix"])) == cls["n_val_examples"]
    )
    lo, hi = cls["accuracy_ci95"]
    assert lo <= cls["accuracy"] <= hi and cls["accuracy_n"] == cls["n_val_examples"]
    assert cls["cell_accuracy_n"] == cls["n_val_cells"]
    assert set(cls["baseline"]) >= {"accuracy", "cell_accuracy", "balanced_accuracy"}
    prov = json.loads((res / "models/classifier_provenance.json").read_text())
    assert prov["dataset"]["validation_rows_read"] == 0
    assert 1 <= prov["final"]["best_epoch"] <= prov["final"]["epochs_run"]
    reg = json.loads((res / "metrics/regression.json").read_text())
    assert reg["reference_thickness"] == 60.0  # nearest to 200 A in the tiny grid
    for r in reg["per_thickness"]:
        assert r["n_val_cells"] == 1 and r["baseline_mae"] is not None
    head = json.loads((res / "metrics/headline.json").read_text())
    assert head["classification"]["accuracy"] == cls["accuracy"]
    assert head["classification"]["baseline"]["accuracy"] == cls["baseline"]["accuracy"]
    assert set(head["regression"]["transfer_mae_by_thickness"]) == {"40", "60"}
    assert head["verdict"]
    det = pd.read_csv(res / "metrics/detectability.csv")
    assert len(det) == 2 and set(det["thickness"]) == {40, 60}  # one held-out step each
    for fig in ("classifier/saliency", "regression/transfer_error", "dose/dose_study"):
        assert (res / f"figures/{fig}.png").stat().st_size > 10_000
        assert (res / f"figures/{fig}.svg").exists()
    assert (res / "figures/detectability.png").stat().st_size > 10_000


def test_imbalanced_campaign_weighs_the_classes_and_reports_balanced_accuracy(tmp_path):
    """Three intermixed cells per buried step: the classifier's loss weighs the classes
    n / (2 n_c) and the evaluation's balanced accuracies are the mean per-class recalls."""
    import json

    import numpy as np
    import pandas as pd

    wd = copy_tiny(tmp_path / "wd")
    cfg = tiny()
    cfg["grid"]["seeds"] = [1, 2, 3]  # 6 intermixed vs 2 step cells per thickness
    write_config(wd / "imbalanced.yaml", cfg)
    snakemake(wd, "results/metrics/classifier.json", "--configfile", "imbalanced.yaml")
    res = wd / "results"
    man = pd.read_csv(res / "datasets/classify.csv")
    prov = json.loads((res / "models/classifier_provenance.json").read_text())
    fit = man[(man["split"] == "train") & ~man["cell"].isin(prov["dataset"]["dev_cells"])]
    counts = fit["class"].value_counts().sort_index().to_numpy()
    assert counts[1] > counts[0]  # imbalanced, as designed
    np.testing.assert_allclose(prov["class_weights"], counts.sum() / (2 * counts), rtol=1e-6)
    cls = json.loads((res / "metrics/classifier.json").read_text())
    pred = pd.read_csv(res / "metrics/classifier_predictions.csv")
    for col, key, src in (
        ("y_pred", "balanced_accuracy", cls),
        ("y_pred_baseline", "balanced_accuracy", cls["baseline"]),
    ):
        recall = [(pred.loc[pred["y_true"] == c, col] == c).mean() for c in (0, 1)]
        assert src[key] == pytest.approx(np.mean(recall))
    votes = pred.groupby("cell").agg(y=("y_true", "first"), p=("p_diffusion", "mean"))
    votes["pred"] = (votes["p"] > 0.5).astype(int)
    recall = [(votes.loc[votes["y"] == c, "pred"] == c).mean() for c in (0, 1)]
    assert cls["cell_balanced_accuracy"] == pytest.approx(np.mean(recall))


def test_nothing_to_do_after_run(done):
    assert planned(done, "--configfile", "tiny.yaml") == {}


def test_fresh_clone_reruns_nothing(done, tmp_path):
    """New mtimes on every workflow and library file (what a git clone gives) rerun nothing."""
    clone = copy_tiny(tmp_path / "clone")
    shutil.copytree(done / "results", clone / "results")
    shutil.copytree(done / ".snakemake", clone / ".snakemake")
    later = time.time() + 60
    for path in clone.rglob("*"):
        if "results" not in path.parts and ".snakemake" not in path.parts:
            os.utime(path, (later, later), follow_symlinks=False)
    assert planned(clone, "--configfile", "tiny.yaml") == {}


def test_override_reruns_only_that_cell_and_what_aggregates_it(done):
    """One cell's settings change: its simulation and reduction, the gathers that hold it and
    the networks trained on them rerun; nothing else."""
    cfg = tiny()
    cfg["overrides"] = [{"cells": "t60/step-d5", "simulation": {"num_configs": 3}}]
    write_config(done / "override.yaml", cfg)
    jobs = planned(done, "--configfile", "override.yaml")
    assert sims(jobs) == {"results/sims/t60/step-d5.h5"}
    assert "Params have changed" in jobs["results/sims/t60/step-d5.h5"][1]
    by_rule: dict[str, set[str]] = {}
    for out, (rule, _) in jobs.items():
        by_rule.setdefault(rule, set()).add(out)
    assert by_rule.pop("reduce") == {"results/reduced/t60/step.h5"}  # the cell's block
    assert by_rule.pop("gather_classify") == {"results/datasets/classify.h5"}
    assert by_rule.pop("gather_regress") == {"results/datasets/regress_t60.h5"}
    assert by_rule.pop("train_classifier") == {"results/models/classifier.keras"}
    assert by_rule.pop("train_regressor") == {"results/models/regressor_t60.keras"}
    assert by_rule.pop("evaluate_classifier") == {"results/metrics/classifier.json"}
    assert by_rule.pop("evaluate_regressors") == {"results/metrics/regression.json"}
    assert by_rule.pop("summarise") == {"results/metrics/headline.json"}
    assert by_rule.pop("model_card") == {"results/models/model_card.json"}
    assert set(by_rule) <= {"simulate", "all"}, by_rule
    summary = snakemake(done, "--summary", "--configfile", "override.yaml").stdout
    changed = [line for line in summary.splitlines() if "params changed" in line.lower()]
    # the cell, and the model card, which reads every cell's beam settings (overrides included)
    assert sorted(c.split("\t")[0] for c in changed) == [
        "results/models/model_card.json",
        "results/sims/t60/step-d5.h5",
    ]


def test_adding_grid_values_adds_only_new_cells(done):
    cfg = tiny()
    cfg["grid"]["seeds"] = [1, 2]
    cfg["grid"]["step_fraction"] = [0.3, 0.7, 0.5]
    write_config(done / "more.yaml", cfg)
    jobs = planned(done, "--configfile", "more.yaml")
    new = {
        "results/sims/t40/diffusion-ti0.2-s2.h5",
        "results/sims/t40/diffusion-ti0.5-s2.h5",
        "results/sims/t60/diffusion-ti0.2-s2.h5",
        "results/sims/t60/diffusion-ti0.5-s2.h5",
        "results/sims/t40/step-d5.h5",
        "results/sims/t60/step-d8.h5",
    }
    assert sims(jobs) == new
    assert all("Missing output" in jobs[s][1] for s in new)


def test_adding_an_intermixed_cell_reruns_no_regressor(done):
    """A new Ti fraction adds intermixed cells: their simulations, the diffusion blocks that hold
    them, the classification set and the classifier rerun; no regression set and no regressor
    (they read step cells only)."""
    cfg = tiny()
    cfg["grid"]["ti_fraction"] = [0.2, 0.5, 0.3]
    write_config(done / "ti.yaml", cfg)
    jobs = planned(done, "--configfile", "ti.yaml")
    by_rule: dict[str, set[str]] = {}
    for out, (rule, _) in jobs.items():
        by_rule.setdefault(rule, set()).add(out)
    assert by_rule.pop("simulate") == {
        "results/sims/t40/diffusion-ti0.3-s1.h5",
        "results/sims/t60/diffusion-ti0.3-s1.h5",
    }
    assert by_rule.pop("reduce") == {
        "results/reduced/t40/diffusion.h5",
        "results/reduced/t60/diffusion.h5",
    }
    assert by_rule.pop("gather_classify") == {"results/datasets/classify.h5"}
    assert by_rule.pop("train_classifier") == {"results/models/classifier.keras"}
    assert "gather_regress" not in by_rule and "train_regressor" not in by_rule, by_rule
    assert "evaluate_regressors" not in by_rule, by_rule


def _by_rule(jobs: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path, (rule, _) in jobs.items():
        out.setdefault(rule, set()).add(path)
    return out


def test_a_training_change_retrains_that_network_only(done):
    """A changed optimiser setting of the regressors retrains every regressor and what reads
    them, and nothing upstream and no classifier; a classifier setting the reverse. (A param
    computed from the job's threads would be left out of Snakemake's rerun check: the training
    block is a plain param and the threads reach the job as --ranks.)"""
    cfg = tiny()
    cfg["training"]["regressor"]["learning_rate"] = 0.002
    write_config(done / "reg.yaml", cfg)
    jobs = planned(done, "--configfile", "reg.yaml")
    by_rule = _by_rule(jobs)
    assert by_rule.pop("train_regressor") == {
        "results/models/regressor_t40.keras",
        "results/models/regressor_t60.keras",
    }
    assert all("Params have changed" in jobs[m][1] for m in jobs if "regressor_t" in m)
    assert set(by_rule) == {"evaluate_regressors", "summarise", "model_card", "all"}, by_rule
    cfg = tiny()
    cfg["training"]["classifier"]["learning_rate"] = 0.002
    write_config(done / "cls.yaml", cfg)
    by_rule = _by_rule(planned(done, "--configfile", "cls.yaml"))
    assert by_rule.pop("train_classifier") == {"results/models/classifier.keras"}
    assert set(by_rule) == {"evaluate_classifier", "summarise", "model_card", "all"}, by_rule


def test_a_regressor_override_retrains_that_thickness_only(done):
    """``training.regressor_overrides`` for one thickness retrains that thickness's regressor
    alone (its job gets the merged block; the other regressor's and the classifier's params do
    not change); the same settings for every thickness in training.regressor retrain both."""
    cfg = tiny()
    cfg["training"]["regressor_overrides"] = [
        {"thickness": [60], "regressor": {"learning_rate": 0.002}}
    ]
    write_config(done / "over.yaml", cfg)
    jobs = planned(done, "--configfile", "over.yaml")
    by_rule = _by_rule(jobs)
    assert by_rule.pop("train_regressor") == {"results/models/regressor_t60.keras"}
    assert "Params have changed" in jobs["results/models/regressor_t60.keras"][1]
    assert set(by_rule) == {"evaluate_regressors", "summarise", "model_card", "all"}, by_rule
    cfg["training"]["regressor_overrides"][0]["thickness"] = [40, 60]
    write_config(done / "both.yaml", cfg)
    assert _by_rule(planned(done, "--configfile", "both.yaml"))["train_regressor"] == {
        "results/models/regressor_t40.keras",
        "results/models/regressor_t60.keras",
    }


def test_equivalent_spelling_reruns_nothing(done):
    cfg = tiny()
    cfg["grid"]["thickness"] = [40.0, 60.000]
    cfg["grid"]["ti_fraction"] = [0.20, 0.50]
    write_config(done / "spelling.yaml", cfg)
    assert planned(done, "--configfile", "spelling.yaml") == {}


def test_global_physics_change_reruns_every_cell(done):
    cfg = tiny()
    cfg["simulation"]["energy"] = 200000
    write_config(done / "energy.yaml", cfg)
    jobs = planned(done, "--configfile", "energy.yaml")
    assert sims(jobs) == ALL_SIMS
    assert all("Params have changed" in jobs[s][1] for s in ALL_SIMS)


def test_execution_settings_rerun_nothing(done):
    cfg = tiny()
    cfg["simulation"].update(device="gpu", threads=2, max_batch=4)
    cfg["report"] = {"structures_per_kind": 1}
    write_config(done / "exec.yaml", cfg)
    assert planned(done, "--configfile", "exec.yaml") == {}


def test_library_edit_reruns_cells(done, tmp_path):
    clone = copy_tiny(tmp_path / "edited")
    shutil.copytree(done / "results", clone / "results")
    shutil.copytree(done / ".snakemake", clone / ".snakemake")
    with open(clone / "src/interface4d/structures.py", "a") as fh:
        fh.write("\n# an edit to the physics code\n")
    jobs = planned(clone, "--configfile", "tiny.yaml")
    assert sims(jobs) == ALL_SIMS


def test_bad_config_fails_before_any_job(done, tmp_path):
    cfg = tiny()
    cfg["grid"]["ti_fraction"] = [0.2, 1.5]
    write_config(done / "bad.yaml", cfg)
    before = {p: p.stat().st_mtime for p in (done / "results/sims").rglob("*.h5")}
    proc = snakemake(done, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "grid.ti_fraction.1' = 1.5" in out
    # one line naming the key and value, no traceback
    errors = [line for line in out.splitlines() if "ti_fraction" in line]
    assert len(errors) == 1 and errors[0].startswith("interface4d: config key"), out
    assert 'File "' not in out and "Traceback" not in out, out
    after = {p: p.stat().st_mtime for p in (done / "results/sims").rglob("*.h5")}
    assert before == after


def start_killable_campaign(dest: Path) -> tuple[Path, subprocess.Popen]:
    """Four t60 cells of a few seconds each, one at a time, in their own process group."""
    wd = copy_tiny(dest)
    cfg = tiny()
    cfg["grid"]["thickness"] = [60]
    cfg["simulation"]["scan"]["gpts"] = [16, 4]
    write_config(wd / "kill.yaml", cfg)
    cmd = ["--cores", "1", "--configfile", "kill.yaml", "--until", "simulate"]
    proc = start_snakemake(wd, *cmd)
    return wd, proc


def test_job_killed_mid_write_leaves_no_h5_and_rerun_recomputes_only_it(tmp_path):
    """SIGKILL one simulate job while its file is open (the .part-<pid> names the writer)."""
    wd, proc = start_killable_campaign(tmp_path / "killed")
    sims_dir = wd / "results/sims/t60"
    deadline = time.time() + 240
    victim = None
    try:
        while time.time() < deadline and victim is None:
            parts = list(sims_dir.glob("*.part-*")) if sims_dir.exists() else []
            if parts:
                victim = parts[0]
                os.kill(int(victim.name.rsplit("-", 1)[1]), signal.SIGKILL)
            time.sleep(0.02)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert victim is not None, "never saw a cell being written"
    killed_h5 = victim.name.split(".part-")[0]
    assert proc.returncode != 0 and "Error in rule simulate" in out
    assert not (sims_dir / killed_h5).exists()
    finished = {p.name for p in sims_dir.glob("*.h5")}
    assert len(finished) == 3  # keep-going: the other cells completed
    for p in sims_dir.glob("*.h5"):
        with h5py.File(p) as fh:
            assert fh.attrs["complete"]
    jobs = planned(wd, "--configfile", "kill.yaml", "--until", "simulate")
    assert sims(jobs) == {f"results/sims/t60/{killed_h5}"}
    snakemake(wd, "--configfile", "kill.yaml", "--until", "simulate")
    assert len(list(sims_dir.glob("*.h5"))) == 4
    assert not list(sims_dir.glob("*.part-*"))


def test_workflow_killed_whole_then_unlocked_resumes(tmp_path):
    """Kill Snakemake itself mid-campaign: after --unlock only the unfinished cells run."""
    wd, proc = start_killable_campaign(tmp_path / "killed_all")
    sims_dir = wd / "results/sims/t60"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if (
                sims_dir.exists()
                and list(sims_dir.glob("*.h5"))
                and list(sims_dir.glob("*.part-*"))
            ):
                break
            time.sleep(0.02)
        else:
            pytest.fail("never saw a finished cell and a cell being written")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    finished = {p.name for p in sims_dir.glob("*.h5")}
    assert 1 <= len(finished) < 4
    snakemake(wd, "--unlock", "--configfile", "kill.yaml")
    jobs = planned(wd, "--configfile", "kill.yaml", "--until", "simulate")
    assert {Path(s).name for s in sims(jobs)} == {
        "step-d5.h5",
        "step-d11.h5",
        "diffusion-ti0.2-s1.h5",
        "diffusion-ti0.5-s1.h5",
    } - finished


def test_paper_scale_campaign_plans_over_14000_cells(tmp_path):
    wd = copy_tiny(tmp_path / "paper")
    proc = snakemake(
        wd,
        "-n",
        "--profile",
        "profiles/summit",
        "--until",
        "simulate",
        "--quiet",
        "rules",
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    row = next(line for line in out.splitlines() if line.startswith("simulate "))
    assert int(row.split()[1]) >= 14000


def test_each_network_trains_on_its_own_number_of_ranks(done):
    cfg = tiny()
    cfg["training"]["ranks"] = 2
    cfg["training"]["regressor"]["ranks"] = 1
    write_config(done / "ranks.yaml", cfg)
    models = ["results/models/classifier.keras", "results/models/regressor_t40.keras"]
    proc = snakemake(done, "-n", "-p", "--forceall", *models, "--configfile", "ranks.yaml")
    cmds = [
        ln.split("Shell command:")[-1].strip()
        for ln in proc.stdout.splitlines()
        if " interface4d train " in ln
    ]
    (cls,) = [c for c in cmds if "--task classify" in c]
    (reg,) = [c for c in cmds if "--task regress" in c]
    assert cls.startswith("horovodrun -np 2 -H localhost:2 --gloo interface4d train"), cls
    assert reg.startswith("interface4d train"), reg
