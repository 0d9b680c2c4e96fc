"""What the predict tests share: a model card without models, the tiny real campaign that
trains both networks (built once a session: the ``predict_campaign`` fixture of conftest.py),
and the real ``interface4d predict`` console script."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from interface4d.modelcard import (
    CARD_FORMAT,
    INTENSITY_UNITS,
    ModelCard,
    read_model_card,
    write_model_card,
)

BIN = Path(sys.executable).parent
A = 3.905


def synthetic_card(tmp_path: Path, **changes) -> ModelCard:
    """A card like the tiny campaign's: 8 positions of 0.875 A from -2 A, 19 x 19 pixels of
    2.52 mrad centred on pixel 9, regressors at 40 and 100 A (no model files needed)."""
    data = {
        "format": CARD_FORMAT,
        "campaign": "synthetic",
        "energy_eV": 300e3,
        "semiangle_cutoff_mrad": 20.0,
        "lattice_constant_A": A,
        "input_shape": [8, 19, 19, 1],
        "pattern_px": [19, 19],
        "angular_sampling_mrad": [2.52, 2.52],
        "center_px": [9.0, 9.0],
        "crop_mrad": 24.0,
        "bin": 3,
        "scan_x_relative_A": (-2.0 + 0.875 * np.arange(8)).tolist(),
        "scan_x_step_A": 0.875,
        "scan_y_step_A": A / 4,
        "scan_y_positions": 4,
        "dose_range": [1e4, 1e6],
        "intensity_units": INTENSITY_UNITS,
        "pattern_intensity": {"mean": 0.97, "min": 0.9, "max": 0.99},
        "classes": ["step", "diffusion"],
        "classifier_model": "classifier.keras",
        "classifier_thicknesses_A": [40.0, 100.0],
        "regressors": {"40": "regressor_t40.keras", "100": "regressor_t100.keras"},
        "provenance": {},
    }
    data.update(changes)
    path = tmp_path / "models" / "model_card.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return read_model_card(path)


# beyond the step (Sr in the LaO plane) against intermixing of at most half the Ti, balanced
# (11 : 12 cells), three random intermixing realisations per fraction and thickness.
CLASSIFY_CELLS = [
    *(f"t40/step-d{d}" for d in (1, 2, 4)),
    *(f"t{t}/step-d{d}" for t in (44, 48) for d in (1, 2, 3, 4)),
    *(f"t{t}/diffusion-ti{f}-s{s}" for t in (40, 48) for f in (0.2, 0.5) for s in (1, 2, 3)),
]
REGRESS_CELLS = [f"t40/step-d{d}" for d in (1, 2, 4, 5, 6, 7, 8, 9)]
HELD_OUT = {"step": "t40/step-d3", "diffusion": "t40/diffusion-ti0.35-s7"}
TRAINING = {
    "ranks": 1,
    "seed": 0,
    "input": "linear",
    "class_balance": "none",
    "model": {"filters": [8], "kernel_size": 3, "dense": [32, 16], "dropout": 0.15},
    # SGD on every training cell (these sets are too small to spare development cells)
    "classifier": {
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "momentum": 0.9,
        "epochs": 60,
        "batch_size": 8,
        "dev_fraction": 0.0,
        "patience": 0,
    },
    "regressor": {
        "optimizer": "sgd",
        "learning_rate": 0.02,
        "epochs": 100,
        "batch_size": 2,
        "dev_fraction": 0.0,
        "patience": 0,
    },
    "augment": {"dose": [1.0e4, 1.0e5], "rotation_deg": 0.5, "val_seed": 1},
}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update({"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def predict_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "interface4d"), "predict", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def build_campaign(root: Path) -> dict:
    """A tiny real campaign: simulate, reduce, gather, train both networks, write the card;
    then the two held-out cells, simulated on a 7 x 7 unit-cell supercell (finer detector
    pixels, 0.72 mrad), another grid, a smaller detector and a finer scan along x (7/30 A, below
    lambda / (4 alpha) = 0.246 A, on positions that miss the trained ones)."""
    from interface4d import datasets, reduce
    from interface4d.config import validate_config
    from interface4d.settings import cell_settings
    from interface4d.simulate import simulate_cell
    from interface4d.train import train

    raw = yaml.safe_load((Path(__file__).parent / "configs" / "tiny.yaml").read_text())
    raw["campaign"] = "predict-test"
    raw["grid"] = {
        "thickness": [40, 44, 48],
        "step_fraction": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "ti_fraction": [0.2, 0.5],
        "seeds": [1, 2, 3],
    }
    raw["simulation"]["scan"]["gpts"] = [8, 4]
    raw["reduction"] = {"crop_mrad": 24.0, "bin": 3, "val_fraction": 0.25, "split": "structure"}
    raw["training"] = TRAINING
    config = validate_config(raw)
    reduced = {}
    for cell in sorted(set(CLASSIFY_CELLS + REGRESS_CELLS)):
        sim = simulate_cell(cell_settings(config, cell), root / "sims" / f"{cell}.h5")
        reduced[cell] = reduce.reduce_cell(
            sim, root / "reduced" / f"{cell}.h5", config["reduction"]
        )
    ds = root / "datasets"
    red = config["reduction"]
    datasets.gather_classify(
        [reduced[c] for c in CLASSIFY_CELLS], ds / "classify.h5", ds / "classify.csv", red
    )
    datasets.gather_regress(
        [reduced[c] for c in REGRESS_CELLS], 40, ds / "regress_t40.h5", ds / "regress_t40.csv", red
    )
    models = root / "results" / "models"
    for task, dataset, name in (
        ("classify", ds / "classify.h5", "classifier"),
        ("regress", ds / "regress_t40.h5", "regressor_t40"),
    ):
        train(
            dataset,
            task,
            TRAINING,
            models,
            root / "ckpt" / name,
            threads=2,
            model_out=models / f"{name}.keras",
            history_out=models / f"{name}_history.csv",
            provenance_out=models / f"{name}_provenance.json",
        )
    card = write_model_card(
        models / "model_card.json",
        classify_h5=ds / "classify.h5",
        classifier_model=models / "classifier.keras",
        regress={"40": (ds / "regress_t40.h5", models / "regressor_t40.keras")},
        config=config,
    )
    # the models folder, copied elsewhere, still works (paths relative to the card)
    copied = root / "elsewhere" / "models"
    shutil.copytree(models, copied)

    other = copy.deepcopy(config)
    other["structure"].update({"cells_x": 7, "cells_y": 7})
    other["simulation"].update({"gpts": 192, "detector_max_angle": 30.0})
    other["simulation"]["scan"]["gpts"] = [30, 4]
    other = validate_config(other)
    held = {}
    for kind, cell in HELD_OUT.items():
        held[kind] = simulate_cell(cell_settings(other, cell), root / "held_out" / f"{cell}.h5")
    return {
        "root": root,
        "config": config,
        "card": card,
        "copied_card": copied / "model_card.json",
        "reduced": reduced,
        "sims": root / "sims",
        "held": held,
    }
