"""Figures from real structures and a real tiny abTEM simulation (no mocks)."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image

from interface4d.config import validate_config
from interface4d.figures.campaign import plot_scan_montage, plot_structures
from interface4d.settings import cell_settings

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory) -> Path:
    """One real tiny simulation (t40/step-d3: 8 x 2 probe positions), shared by this module."""
    from interface4d.simulate import simulate_cell

    with open(TINY) as fh:
        config = validate_config(copy.deepcopy(yaml.safe_load(fh)))
    out = tmp_path_factory.mktemp("sim") / "c.h5"
    return simulate_cell(cell_settings(config, "t40/step-d3"), out)


def read_png(path: Path) -> np.ndarray:
    """Pixels of a valid PNG (PIL verifies the file, matplotlib decodes it)."""
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 10_000, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert pixels[..., :3].std() > 0.05, "blank image"
    return pixels


def test_plot_structures_step_and_diffusion(tiny_config, tmp_path):
    settings = [
        cell_settings(tiny_config, "t40/step-d3"),
        cell_settings(tiny_config, "t40/diffusion-ti0.5-s1"),
    ]
    out = plot_structures(settings, tmp_path / "figs" / "structures.png")
    assert out == tmp_path / "figs" / "structures.png"
    pixels = read_png(out)
    h, w = pixels.shape[:2]
    assert 700 <= w <= 2000 and 2 * 400 <= h <= 2 * 1200, (h, w)
    assert h > w  # one row per structure

    one = read_png(plot_structures(settings[:1], tmp_path / "one.png"))
    assert one.shape[1] == w and one.shape[0] < 0.7 * h  # rows add height, not width


def test_plot_structures_format_follows_suffix(tiny_config, tmp_path):
    out = plot_structures([cell_settings(tiny_config, "t40/flat")], tmp_path / "flat.svg")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text


def test_plot_structures_needs_a_structure(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_structures([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_plot_scan_montage(sim_file, tmp_path):
    out = plot_scan_montage(sim_file, tmp_path / "scan.png")
    assert out == tmp_path / "scan.png"
    pixels = read_png(out)
    h, w = pixels.shape[:2]
    assert 1400 <= w <= 3000 and 600 <= h <= 1500, (h, w)
    assert w > h  # image + profile above, one row of 8 CBEDs below

    few = read_png(plot_scan_montage(sim_file, tmp_path / "few.png", n_patterns=3))
    assert few.shape[1] >= 1400
    # more patterns than probe positions along x: every position once, still one row
    many = read_png(plot_scan_montage(sim_file, tmp_path / "many.png", n_patterns=50))
    assert many.shape == pixels.shape


def test_plot_scan_montage_refuses_incomplete_file(sim_file, tmp_path):
    broken = tmp_path / "broken.h5"
    shutil.copy2(sim_file, broken)
    with h5py.File(broken, "a") as fh:
        del fh.attrs["complete"]
    with pytest.raises((OSError, ValueError), match=re.escape(str(broken))):
        plot_scan_montage(broken, tmp_path / "broken.png")
    assert not (tmp_path / "broken.png").exists()
    # the original is untouched and still plots
    read_png(plot_scan_montage(sim_file, tmp_path / "ok.png", n_patterns=2))


def test_plot_scan_montage_rejects_zero_patterns(sim_file, tmp_path):
    with pytest.raises(ValueError, match="n_patterns"):
        plot_scan_montage(sim_file, tmp_path / "zero.png", n_patterns=0)
