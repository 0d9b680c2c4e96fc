"""Reading a user's 4D-STEM data for the networks (interface4d.userdata): resampling with
known answers, layouts, detector units, scan interpolation, finding the 4D dataset in HDF5."""

from __future__ import annotations

from itertools import permutations

import h5py
import numpy as np
import pytest

from interface4d.modelcard import PredictError
from interface4d.physics import inv_angstrom_from_mrad, mrad_from_inv_angstrom
from interface4d.userdata import (
    AXES,
    calibration,
    find_hdf5_dataset,
    from_canonical,
    interpolate_scan,
    overlap_matrix,
    parse_layout,
    resample_patterns,
    to_canonical,
)

A = 3.905


def gaussian(n: int, center: tuple[float, float], sigma: float) -> np.ndarray:
    i, j = np.mgrid[:n, :n].astype(np.float64)
    g = np.exp(-0.5 * ((i - center[0]) ** 2 + (j - center[1]) ** 2) / sigma**2)
    return g / g.sum()


def centroid(p: np.ndarray) -> tuple[float, float]:
    i, j = np.mgrid[: p.shape[0], : p.shape[1]]
    return float((p * i).sum() / p.sum()), float((p * j).sum() / p.sum())


# --------------------------------------------------------------------------- resampling


def test_pattern_on_the_trained_grid_is_unchanged():
    rng = np.random.default_rng(0)
    p = rng.random((3, 2, 19, 19))
    out = resample_patterns(p, (2.52, 2.52), (9, 9), (2.52, 2.52), (9, 9), (19, 19))
    np.testing.assert_allclose(out, p, rtol=0, atol=1e-14)
    w = overlap_matrix(19, 2.52, 9, 19, 2.52, 9)
    np.testing.assert_allclose(w, np.eye(19), atol=1e-14)


def test_uniform_density_stays_uniform_with_the_right_value_per_pixel():
    density = 3e-4  # fraction of the probe per mrad^2
    for s_src, n, s_dst in ((0.5, 120, 2.1), (0.84, 98, 2.52), (0.3, 201, 0.7)):
        src = np.full((n, n), density * s_src**2)
        out = resample_patterns(
            src, (s_src, s_src), (n // 2, n // 2), (s_dst,) * 2, (9, 9), (19, 19)
        )
        np.testing.assert_allclose(out, density * s_dst**2, rtol=1e-12)


def test_gaussian_disc_lands_on_the_network_centre_when_the_centre_is_given():
    s_src, s_dst, k, c_dst = 0.4, 1.0, 15, 7.0
    for c_src in ((40.3, 25.7), (31.0, 33.5)):
        src = gaussian(64, c_src, sigma=3.0)
        out = resample_patterns(src, (s_src,) * 2, c_src, (s_dst,) * 2, (c_dst,) * 2, (k, k))
        assert centroid(out) == pytest.approx((c_dst, c_dst), abs=0.01)
        assert out.sum() == pytest.approx(1.0, abs=1e-8)  # the disc lies inside: nothing lost
    # off by (2, -3) source pixels = (0.8, -1.2) mrad = (0.8, -1.2) target pixels
    src = gaussian(64, (34.0, 29.0), sigma=3.0)
    out = resample_patterns(src, (s_src,) * 2, (32, 32), (s_dst,) * 2, (c_dst,) * 2, (k, k))
    assert centroid(out) == pytest.approx((c_dst + 0.8, c_dst - 1.2), abs=0.01)


def test_layout_permutations_round_trip():
    rng = np.random.default_rng(1)
    canonical = rng.random((5, 4, 3, 2))  # x, y, kx, ky of distinct lengths
    for perm in permutations(AXES):
        layout = parse_layout(",".join(perm))
        stored = from_canonical(canonical, layout)
        assert stored.shape == tuple(canonical.shape[AXES.index(a)] for a in perm)
        np.testing.assert_array_equal(to_canonical(stored, layout), canonical)
    yx = from_canonical(canonical, ("y", "x", "ky", "kx"))
    assert yx[3, 1, 0, 2] == canonical[1, 3, 2, 0]
    for bad in ("x,y,kx", "x,x,kx,ky", "x,y,kx,kz", "a,b,c,d", ""):
        with pytest.raises(PredictError, match="layout"):
            parse_layout(bad)


def test_inverse_angstrom_and_mrad_at_300_kV():
    from interface4d import physics

    assert physics.wavelength(300e3) == pytest.approx(0.0196875, rel=1e-5)  # 1.969 pm at 300 kV
    assert mrad_from_inv_angstrom(0.05, 300e3) == pytest.approx(0.984375, rel=1e-5)
    assert inv_angstrom_from_mrad(mrad_from_inv_angstrom(0.0427, 300e3), 300e3) == (
        pytest.approx(0.0427, rel=1e-12)
    )
    c = calibration(
        energy_eV=300e3,
        sampling_inv_angstrom="0.04,0.05",
        scan_step_x_A=0.2,
        scan_step_y_A=A / 4,
        interface_x_A=3.0,
    )
    assert c.sampling_mrad == pytest.approx((0.7875, 0.984375), rel=1e-5)
    assert c.sampling_given == {"inv_angstrom_per_px": [0.04, 0.05]}


def test_scan_interpolation_is_exact_for_linear_data():
    pos = -3.0 + 0.5 * np.arange(16)
    block = (2.0 * pos + 1.0)[:, None, None] * np.ones((16, 2, 3))
    targets = -2.0 + 0.875 * np.arange(8)
    out = interpolate_scan(block, pos, targets)
    np.testing.assert_allclose(out[:, 0, 0], 2.0 * targets + 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(interpolate_scan(block, pos, pos[3:5]), block[3:5])


def test_hdf5_dataset_is_found_or_named(tmp_path):
    one = tmp_path / "one.h5"
    with h5py.File(one, "w") as fh:
        fh["meta/dark"] = np.zeros((4, 4))
        fh["datacube/data"] = np.zeros((2, 3, 4, 4), np.float32)
    assert find_hdf5_dataset(one) == "/datacube/data"
    two = tmp_path / "two.emd"
    with h5py.File(two, "w") as fh:
        fh["a"] = np.zeros((2, 3, 4, 4))
        fh["b/c"] = np.zeros((2, 3, 4, 4))
    with pytest.raises(PredictError, match=r"several 4D datasets.*--dataset-path.*/a, /b/c"):
        find_hdf5_dataset(two)
    assert find_hdf5_dataset(two, "b/c") == "/b/c"
    with pytest.raises(PredictError, match="no dataset at 'x'"):
        find_hdf5_dataset(two, "x")
    none = tmp_path / "none.hdf5"
    with h5py.File(none, "w") as fh:
        fh["img"] = np.zeros((4, 4))
    with pytest.raises(PredictError, match=r"no 4D dataset \(datasets: /img \(4, 4\)\)"):
        find_hdf5_dataset(none)
