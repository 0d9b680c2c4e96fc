"""Shared fixtures: the repository root, the tiny campaign config, real tiny simulations."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from support.workflow import ROOT, copy_workflow

TINY = ROOT / "tests" / "configs" / "tiny.yaml"

# Keep BLAS/FFT single-threaded in tests: CI has 2 cores and pytest may run a Snakemake beside.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_raw() -> dict:
    """The tiny config as written (no defaults filled)."""
    with open(TINY) as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def tiny_config(tiny_raw) -> dict:
    from interface4d.config import validate_config

    return validate_config(copy.deepcopy(tiny_raw))


@pytest.fixture(scope="session")
def tiny_campaign(tmp_path_factory) -> Path:
    """The tiny campaign run once to completion with real Snakemake in a temp copy (shared by
    the workflow and report tests; they only add files beside its results)."""
    from .helpers import snakemake

    wd = copy_workflow(tmp_path_factory.mktemp("campaign"), TINY, as_name="tiny.yaml")
    snakemake(wd, "--configfile", "tiny.yaml")
    return wd


@pytest.fixture(scope="session")
def predict_campaign(tmp_path_factory) -> dict:
    """A tiny real campaign with both networks trained and two held-out cells simulated on
    another grid (tests/predict_campaign.py), shared by the predict tests."""
    from .predict_campaign import build_campaign

    return build_campaign(tmp_path_factory.mktemp("predict"))
