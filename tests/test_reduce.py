"""Descriptors of one cell: crop and binning exact on coded arrays, the x band, the reduced
file's record, refusals, and on a real tiny simulation the crop against abTEM's own."""

from __future__ import annotations

import copy
import hashlib
import json

import h5py
import numpy as np
import pytest
from ase import Atoms

from interface4d import reduce, simulate
from interface4d.settings import cell_settings
from interface4d.structures import interface_x
from tests.synthetic import coded_cbed, scan_positions, write_sim

MRAD = 0.8402684121949495  # the tiny campaign's angular sampling (mrad per pixel)
REDUCTION = {"crop_mrad": 24.0, "bin": 2, "window_x": None}


# --------------------------------------------------------------------------- crop


def test_crop_keeps_the_pixels_symmetric_about_n_over_2():
    n = 98
    cbed = coded_cbed(2, 1, n)
    out = reduce.crop_center(cbed, 24.0, (MRAD, MRAD))
    m = 28  # floor(24 / 0.84)
    assert out.shape == (2, 1, 2 * m + 1, 2 * m + 1)
    rows = np.arange(n // 2 - m, n // 2 + m + 1)
    np.testing.assert_array_equal(out, cbed[:, :, rows[:, None], rows[None, :]])
    # the centre pixel of the crop is the zero frequency, pixel (49, 49)
    assert out[0, 0, m, m] == cbed[0, 0, 49, 49] == 49 * n + 49
    # every kept pixel lies within the crop angle, and the next ones out do not
    angles = (rows - n // 2) * MRAD
    assert np.abs(angles).max() <= 24.0 < (m + 1) * MRAD


def test_crop_odd_detector_and_per_axis_sampling():
    cbed = coded_cbed(1, 1, 7)
    out = reduce.crop_center(cbed, 2.0, (1.0, 2.0))
    assert out.shape == (1, 1, 5, 3)
    np.testing.assert_array_equal(out[0, 0], cbed[0, 0, 1:6, 2:5])


def test_crop_counts_a_pixel_on_the_boundary_despite_rounding():
    # 0.3 / 0.1 is 2.9999999999999996 in floating point: the pixel at exactly 0.3 mrad is kept
    out = reduce.crop_center(np.zeros((10, 10)), 0.3, (0.1, 0.1))
    assert out.shape == (7, 7)


def test_crop_beyond_the_detector_is_an_error_naming_the_value():
    cbed = np.zeros((1, 1, 98, 98), np.float32)
    # 98 px: 49 below the centre, 48 above, so 48 px reach on both sides
    assert reduce.crop_center(cbed, 48 * MRAD, (MRAD, MRAD)).shape[-1] == 97
    with pytest.raises(ValueError, match=r"crop_mrad = 41\.1732: exceeds the detector"):
        reduce.crop_center(cbed, 49 * MRAD, (MRAD, MRAD))
    with pytest.raises(ValueError, match=r"crop_mrad = 0"):
        reduce.crop_center(cbed, 0.0, (MRAD, MRAD))


# --------------------------------------------------------------------------- bin


def _bin_loops(x: np.ndarray, b: int, first: int) -> np.ndarray:
    """Reference: explicit loops over the blocks starting at pixel ``first`` on both axes."""
    k = (x.shape[-1] - first) // b
    out = np.zeros((*x.shape[:-2], k, k))
    for u in range(k):
        for v in range(k):
            for du in range(b):
                for dv in range(b):
                    out[..., u, v] += x[..., first + u * b + du, first + v * b + dv]
    return out


@pytest.mark.parametrize(
    ("n", "b", "first", "k"),
    [
        (8, 2, 0, 4),  # no remainder
        (10, 4, 1, 2),  # remainder 2: one pixel off each end
        (9, 3, 0, 3),  # odd b, no remainder
        (57, 2, 0, 28),  # the demo: remainder 1 goes from the high end
        (7, 3, 0, 2),  # remainder 1
    ],
)
def test_binning_sums_blocks_exactly(n, b, first, k):
    x = coded_cbed(2, 1, n)
    out = reduce.bin_patterns(x, b)
    assert out.shape == (2, 1, k, k) and out.dtype == np.float32
    np.testing.assert_array_equal(out, _bin_loops(x, b, first))
    assert reduce.bin_slices(n, b) == (first, first + k * b)


def test_bin_one_is_the_identity_and_bad_factors_are_refused():
    x = coded_cbed(1, 1, 5)
    np.testing.assert_array_equal(reduce.bin_patterns(x, 1), x)
    with pytest.raises(ValueError, match="bin = 6"):
        reduce.bin_patterns(x, 6)
    with pytest.raises(ValueError, match="bin = 0"):
        reduce.bin_patterns(x, 0)


def test_binned_centre_is_where_the_zero_frequency_lands():
    for n, b in [(57, 2), (9, 3), (15, 3), (11, 2), (21, 5)]:
        delta = np.zeros((n, n))
        delta[n // 2, n // 2] = 1.0
        binned = reduce.bin_patterns(delta, b)
        c = reduce.binned_center(n, b)
        assert binned[int(c + 0.5), int(c + 0.5)] == 1.0  # the bin that holds the centre
        # odd b, odd number of bins: exactly symmetric, centre mid-bin
        if b % 2 and binned.shape[0] % 2:
            assert c == (binned.shape[0] - 1) / 2
            sym = np.add.outer(np.abs(np.arange(n) - n // 2), np.abs(np.arange(n) - n // 2))
            out = reduce.bin_patterns(sym.astype(float), b)
            np.testing.assert_array_equal(out, out[::-1, ::-1])
    assert reduce.binned_center(57, 2) == 13.75  # the demo's 28 px: centre in bin 14 = 28 // 2


# --------------------------------------------------------------------------- reduce_cell


@pytest.fixture
def coded_sim(tiny_config, tmp_path):
    settings = cell_settings(tiny_config, "t40/step-d3")
    nx, ny = settings["simulation"]["scan"]["gpts"]
    cbed = coded_cbed(nx, ny, 98)
    path = write_sim(tmp_path / "sims" / "t40" / "step-d3.h5", settings, cbed, (MRAD, MRAD))
    return path, settings, cbed


def test_reduce_cell_lines_and_average_are_exact(coded_sim, tmp_path):
    path, settings, cbed = coded_sim
    nx, ny = settings["simulation"]["scan"]["gpts"]
    out = reduce.reduce_cell(path, tmp_path / "red.h5", REDUCTION)
    cell = reduce.read_reduced(out)
    assert cell.lines.shape == (ny, nx, 28, 28) and cell.lines.dtype == np.float32
    assert cell.average.shape == (nx, 28, 28) and cell.average.dtype == np.float32

    # Closed form: pattern (i, j) has value base + 98 p + q with base = (i ny + j) 98^2; the
    # crop starts at pixel 49 - 28 = 21 on both axes and bin 2 keeps pixels 21..76.
    a = np.arange(28)
    row_sum = 2 * (2 * (21 + 2 * a) + 1)  # sum of the two rows of a block, twice (two columns)
    for i in range(nx):
        for j in range(ny):
            base = (i * ny + j) * 98 * 98
            expected = 4 * base + 98 * row_sum[:, None] + row_sum[None, :]
            np.testing.assert_array_equal(cell.lines[j, i], expected)
    # the average is the mean over the y positions (one unit cell)
    np.testing.assert_array_equal(cell.average, cell.lines.astype(np.float64).mean(axis=0))
    np.testing.assert_array_equal(cell.average[3], (cell.lines[0, 3] + cell.lines[1, 3]) / 2)


def test_reduced_file_carries_its_provenance(coded_sim, tmp_path):
    path, settings, cbed = coded_sim
    out = reduce.reduce_cell(path, tmp_path / "a" / "red.h5", {**REDUCTION, "split_seed": 3})
    assert not list(out.parent.glob("*.part-*"))
    cell = reduce.read_reduced(out)
    attrs = cell.attrs
    with h5py.File(out) as fh:  # the file: complete, its format, its cells, versions
        assert bool(fh.attrs["complete"]) and fh.attrs["format"] == reduce.FORMAT
        assert json.loads(fh.attrs["cells"]) == ["t40/step-d3"] and "t40/step-d3/lines" in fh
        assert json.loads(fh.attrs["reduction"]) == REDUCTION
        versions = json.loads(fh.attrs["versions"])
        for name in fh["t40/step-d3"]:  # the file documents the layout of what it holds
            assert f"`{name}`" in fh.attrs["layout"], name
    assert cell.settings == settings and cell.cell == "t40/step-d3" and cell.kind == "step"
    assert cell.reduction == REDUCTION  # only the keys that decide the file
    assert cell.angular_sampling == pytest.approx((2 * MRAD, 2 * MRAD), rel=1e-12)
    assert json.loads(attrs["crop_px"]) == [57, 57]
    assert json.loads(attrs["center_px"]) == [13.75, 13.75]
    xc = interface_x(3, 3.905)
    scan_x, scan_y = scan_positions(settings)
    np.testing.assert_allclose(json.loads(attrs["scan_x_A"]), scan_x)
    np.testing.assert_allclose(cell.scan_x_relative, scan_x - xc)
    np.testing.assert_allclose(json.loads(attrs["scan_y_A"]), scan_y)
    assert attrs["source"] == str(path)
    assert attrs["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert attrs["source_cbed_sha256"] == reduce.array_sha256(cbed)
    assert versions["numpy"] == np.__version__ and versions["h5py"] == h5py.__version__
    # the same input and reduction give the same data hash; a different crop does not
    again = reduce.read_reduced(reduce.reduce_cell(path, tmp_path / "b.h5", REDUCTION))
    assert again.attrs["data_sha256"] == attrs["data_sha256"]
    other = reduce.reduce_cell(path, tmp_path / "c.h5", {**REDUCTION, "crop_mrad": 20.0})
    assert reduce.read_reduced(other).attrs["data_sha256"] != attrs["data_sha256"]


def test_window_keeps_a_half_open_band_across_the_interface(coded_sim, tmp_path):
    path, settings, cbed = coded_sim
    # positions at -2, -1.125, -0.25, 0.625, 1.5, 2.375, 3.25, 4.125 A from the interface
    full = reduce.read_reduced(reduce.reduce_cell(path, tmp_path / "full.h5", REDUCTION))
    band = reduce.read_reduced(
        reduce.reduce_cell(path, tmp_path / "band.h5", {**REDUCTION, "window_x": [-1.125, 1.5]})
    )
    np.testing.assert_allclose(band.scan_x_relative, [-1.125, -0.25, 0.625])
    np.testing.assert_array_equal(band.lines, full.lines[:, 1:4])
    np.testing.assert_array_equal(band.average, full.average[1:4])
    assert band.reduction["window_x"] == [-1.125, 1.5]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ([0.7, 1.4], r"window_x = \[0\.7, 1\.4\]: keeps no probe position of .*step-d3\.h5"),
        ([-5.0, 1.0], r"window_x = \[-5\.0, 1\.0\]: lies outside the simulated scan of .*step-d3"),
        ([1.0, 6.0], r"window_x = \[1\.0, 6\.0\]: lies outside"),
        ([1.0, 1.0], r"window_x = \[1\.0, 1\.0\]: need \[start, end\]"),
    ],
)
def test_bad_windows_are_refused(coded_sim, tmp_path, window, message):
    path, _, _ = coded_sim
    with pytest.raises(ValueError, match=message):
        reduce.reduce_cell(path, tmp_path / "red.h5", {**REDUCTION, "window_x": window})
    assert not (tmp_path / "red.h5").exists()


def test_refusals_name_the_file(coded_sim, tmp_path):
    path, settings, cbed = coded_sim
    with pytest.raises(ValueError, match=r"step-d3\.h5: reduction\.crop_mrad = 45"):
        reduce.reduce_cell(path, tmp_path / "red.h5", {**REDUCTION, "crop_mrad": 45.0})
    with pytest.raises(ValueError, match=r"lacks the keys \['window_x'\]"):
        reduce.reduce_cell(path, tmp_path / "red.h5", {"crop_mrad": 24.0, "bin": 2})
    partial = write_sim(tmp_path / "partial.h5", settings, cbed, (MRAD, MRAD), complete=False)
    with pytest.raises(OSError, match=r"partial\.h5 is incomplete"):
        reduce.reduce_cell(partial, tmp_path / "red.h5", REDUCTION)
    assert not (tmp_path / "red.h5").exists()

    out = reduce.reduce_cell(path, tmp_path / "red.h5", REDUCTION)
    with h5py.File(out, "r+") as fh:
        fh["t40/step-d3/lines"][0, 0, 0, 0] += 1.0
    with pytest.raises(ValueError, match=r"red\.h5: the arrays of t40/step-d3 do not match"):
        reduce.read_reduced(out)
    with h5py.File(out, "r+") as fh:
        del fh.attrs["complete"]
    with pytest.raises(OSError, match=r"red\.h5 is incomplete"):
        reduce.read_reduced(out, data=False)


# --------------------------------------------------------------------------- blocks


@pytest.fixture
def coded_block(tiny_config, tmp_path):
    """Three coded cells of t40 (two steps, one intermixed), each its own pattern values."""
    out = {}
    for k, cell in enumerate(("t40/step-d7", "t40/diffusion-ti0.2-s1", "t40/step-d3")):
        settings = cell_settings(tiny_config, cell)
        nx, ny = settings["simulation"]["scan"]["gpts"]
        cbed = coded_cbed(nx, ny, 98) + 1000.0 * k
        out[cell] = write_sim(tmp_path / "sims" / f"{cell}.h5", settings, cbed, (MRAD, MRAD))
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_block_file_holds_each_cell_as_its_own_file_would(coded_block, tmp_path, workers):
    paths = list(coded_block.values())
    block = reduce.reduce_cells(paths, tmp_path / "block.h5", REDUCTION, workers=workers)
    assert reduce.reduced_cells(block) == list(coded_block)  # in the order given
    cells = reduce.read_reduced_all(block, data=True)
    assert [c.cell for c in cells] == list(coded_block)
    for (cell, sim), got in zip(coded_block.items(), cells, strict=True):
        alone = reduce.read_reduced(reduce.reduce_cell(sim, tmp_path / f"{got.kind}.h5", REDUCTION))
        np.testing.assert_array_equal(got.lines, alone.lines)
        np.testing.assert_array_equal(got.average, alone.average)
        assert got.attrs["data_sha256"] == alone.attrs["data_sha256"]
        assert got.settings == alone.settings and got.settings["cell"] == cell
        assert got.attrs["source"] == str(sim) and got.path == block
        one = reduce.read_reduced(block, cell)
        np.testing.assert_array_equal(one.lines, alone.lines)
    # the cells differ (their coded values), so the groups are not mixed up
    assert len({c.attrs["data_sha256"] for c in cells}) == 3


def test_block_refusals_name_the_cell_or_file(coded_block, tmp_path):
    paths = list(coded_block.values())
    block = reduce.reduce_cells(paths, tmp_path / "block.h5", REDUCTION)
    with pytest.raises(ValueError, match=r"block\.h5 holds 3 cells: say which one"):
        reduce.read_reduced(block)
    with pytest.raises(ValueError, match=r"block\.h5 holds no cell t40/step-d5"):
        reduce.read_reduced(block, "t40/step-d5")
    with pytest.raises(ValueError, match=r"twice\.h5: cell t40/step-d7 given twice"):
        reduce.reduce_cells([paths[0], paths[1], paths[0]], tmp_path / "twice.h5", REDUCTION)
    assert not (tmp_path / "twice.h5").exists() and not list(tmp_path.glob("twice.h5.part-*"))
    with pytest.raises(ValueError, match=r"none\.h5: no simulated cells"):
        reduce.reduce_cells([], tmp_path / "none.h5", REDUCTION)


# --------------------------------------------------------------------------- real data


def test_real_cell_crop_matches_abtem_and_is_centred_on_the_disc(tiny_config, tmp_path):
    import abtem

    settings = cell_settings(tiny_config, "t40/step-d3")
    sim = simulate.simulate_cell(settings, tmp_path / "sim.h5")
    cbed, attrs = simulate.read_cell(sim)
    sampling = json.loads(attrs["angular_sampling_mrad"])
    assert cbed.shape[-2:] == (98, 98) and sampling == pytest.approx([MRAD, MRAD], rel=1e-6)

    # abTEM's own crop to 57 px (fftshifted patterns) selects the same pixels
    patterns = abtem.DiffractionPatterns(
        cbed[3, 1],
        sampling=json.loads(attrs["reciprocal_sampling_invA"]),
        metadata={"energy": settings["simulation"]["energy"]},
        fftshift=True,
    )
    ours = reduce.crop_center(cbed[3, 1], 24.0, sampling)
    np.testing.assert_array_equal(np.asarray(patterns.crop(gpts=(57, 57)).array), ours)

    cell = reduce.read_reduced(reduce.reduce_cell(sim, tmp_path / "red.h5", REDUCTION))
    np.testing.assert_allclose(
        cell.lines[1, 3], reduce.bin_patterns(ours, 2), rtol=1e-6, atol=1e-7 * ours.max()
    )
    # The 20 mrad bright-field disc lies inside the 24 mrad crop: the crop keeps most of the
    # intensity; a 10 mrad crop keeps well under half of it.
    total = cbed.sum(axis=(2, 3))
    assert (cell.lines.sum(axis=(2, 3)).T > 0.85 * total).all()
    small = reduce.crop_center(cbed, 10.0, sampling).sum(axis=(2, 3))
    assert (small < 0.5 * total).all()
    # Centre: the vacuum probe's pattern is symmetric about the zero frequency, so its centre
    # of mass after crop and bin sits on the recorded centre_px (a crop one pixel off would put
    # it half a binned pixel away).
    vac_settings = copy.deepcopy(settings)
    vac_settings["simulation"]["num_configs"] = 1
    st = vac_settings["structure"]
    a = st["lattice_constant"]
    vacuum = Atoms(cell=[st["cells_x"] * a, st["cells_y"] * a, settings["nz"] * a], pbc=True)
    vac = simulate.run(vac_settings, atoms=vacuum)
    vac_path = write_sim(tmp_path / "vac.h5", vac_settings, vac.cbed, vac.angular_sampling)
    probe = reduce.read_reduced(reduce.reduce_cell(vac_path, tmp_path / "vred.h5", REDUCTION))
    centre = json.loads(probe.attrs["center_px"])
    for pattern in probe.lines.reshape(-1, 28, 28).astype(np.float64):
        idx = np.arange(28)
        com = (pattern.sum(1) @ idx / pattern.sum(), pattern.sum(0) @ idx / pattern.sum())
        assert com == pytest.approx(centre, abs=1e-3)
