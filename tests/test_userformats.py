"""interface4d predict on the files microscopes and analysis programs write: a DataCube written
by py4DSTEM's own ``save`` (in its own venv, NumPy < 2) and a NanoMegas ``.blo`` written by
rosettasciio's own writer, with the calibrations read from them (userformats, usercalibration);
a command-line value that contradicts the file and a calibration that nobody gives are one-line
errors. Merlin ``.mib`` and EMPAD files, for which rosettasciio has no writer, are written here
byte by byte in their layout and read by rosettasciio. No Gatan ``.dm3``/``.dm4`` is tested:
nothing here writes one. The end-to-end test classifies a held-out cell of the tiny campaign
from a DataCube and a ``.blo`` and from the same patterns as ``.npy`` with the calibrations
typed on the command line."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from interface4d.modelcard import PredictError
from interface4d.physics import mrad_from_inv_angstrom
from interface4d.usercalibration import Given, resolve_calibration
from interface4d.userdata import AXES
from interface4d.userformats import Axis, open_data
from support import py4dstem

from .predict_campaign import A, predict_cli, synthetic_card

# py4DSTEM's own writer, one process for several files: argv = the source .npy and a JSON list
# of {out, r (A), q, q_units, origin [qx0, qy0], ry (a y step for the Ry dim vector alone),
# rotation (QR_rotation_degrees), flip (QR_flip)}, each optional but out; prints what
# py4DSTEM.read says of each file (class, R and Q pixel sizes) as JSON
WRITE_DATACUBES = """
import json
import sys
import numpy as np
import py4DSTEM
data = np.load(sys.argv[1])
said = []
for spec in json.loads(sys.argv[2]):
    dc = py4DSTEM.DataCube(data=data)
    cal = dc.calibration
    if "r" in spec:
        cal.set_R_pixel_size(spec["r"])
        cal.set_R_pixel_units("A")
    if "q" in spec:
        cal.set_Q_pixel_size(spec["q"])
        cal.set_Q_pixel_units(spec["q_units"])
    if "origin" in spec:
        shape = data.shape[:2]
        cal.set_origin(tuple(np.full(shape, float(v)) for v in spec["origin"]))
    if "ry" in spec:
        dc.set_dim(1, [0, spec["ry"]], units="A", name="Ry")
    if "rotation" in spec:
        cal.set_QR_rotation_degrees(spec["rotation"])
    if "flip" in spec:
        cal.set_QR_flip(spec["flip"])
    py4DSTEM.save(spec["out"], dc, mode="o")
    back = py4DSTEM.read(spec["out"])
    c = back.calibration
    said.append([type(back).__name__, c.get_R_pixel_size(), c.get_Q_pixel_size()])
print(json.dumps(said))
"""


def write_datacubes(data, specs: list[dict]) -> list[list]:
    """``data`` (Rx, Ry, Qx, Qy) written by py4DSTEM.save once per spec (WRITE_DATACUBES);
    returns what py4DSTEM.read says of each file."""
    out = Path(specs[0]["out"])
    src = out.with_name(out.name + ".src.npy")
    np.save(src, data)
    specs = [{k: (str(v) if k == "out" else v) for k, v in spec.items()} for spec in specs]
    proc = py4dstem.run(WRITE_DATACUBES, str(src), json.dumps(specs))
    src.unlink()
    return json.loads(proc.stdout)


def write_blockfile(data_u8, path: Path, step_x_A: float, step_y_A: float) -> None:
    """(x, y, kx, ky) uint8 patterns through rosettasciio's blockfile writer; the scan steps
    in nm as the format stores them, the diffraction scale a length on the camera (cm)."""
    from rsciio.blockfile import file_writer

    nx, ny, n, _ = data_u8.shape
    axes = [
        {"name": "x", "size": nx, "scale": step_x_A / 10, "offset": 0.0, "units": "nm"},
        {"name": "y", "size": ny, "scale": step_y_A / 10, "offset": 0.0, "units": "nm"},
        {"name": "kx", "size": n, "scale": 0.05, "offset": 0.0, "units": "cm"},
        {"name": "ky", "size": n, "scale": 0.05, "offset": 0.0, "units": "cm"},
    ]
    for i, a in enumerate(axes):
        a.update(index_in_array=i, navigate=i < 2)
    signal = {
        "data": data_u8,
        "axes": axes,
        "metadata": {},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing converted by guesswork
        file_writer(str(path), signal)


def write_mib(frames, path: Path) -> None:
    """(rows, per row, n0, n1) frames as a Quantum Detectors Merlin camera writes them (rosettasciio
    has no writer for it): each frame a 384-byte ASCII header (size, U16, the timestamp and the
    exposure in ns last but two) and its big-endian pixels; the .hdr beside it gives the scan."""
    rows, per_row, n0, n1 = frames.shape
    with open(path, "wb") as fh:
        for i, frame in enumerate(frames.reshape(-1, n0, n1)):
            ns = 551906472 + 1_000_000 * i
            fields = ["MQ1", f"{i + 1:06d}", "00384", "01", f"{n1:04d}", f"{n0:04d}", "U16"]
            fields += ["   1x1", "01", "2024-05-07 10:10:04.551906", "0.001000", "0", "0", "0"]
            fields += ["1.200000E+1", "5.110000E+2", f"2024-05-07T10:10:04.{ns:09d}Z"]
            fields += ["1000000ns", "12", ""]
            fh.write(",".join(fields).encode().ljust(384, b" "))
            fh.write(frame.astype(">u2").tobytes())
    path.with_suffix(".hdr").write_text(
        f"HDR,\t\nFrames in Acquisition (Number):\t{rows * per_row}\n"
        f"Frames per Trigger (Number):\t{per_row}\nEnd\t\n"
    )


def write_empad(frames, folder: Path, step_y_A: float, step_x_A: float, q_inv_nm: float) -> Path:
    """(scan y, scan x, 128, 128) float32 frames as an EMPAD writes them (rosettasciio has no
    writer): ``scan_x<nx>_y<ny>.raw`` (each frame 130 rows, the last two a footer) and an XML
    with the scan's field of view (m) and the detector's calibrated pixel size."""
    ny, nx = frames.shape[:2]
    raw = np.zeros((ny, nx, 130, 128), np.float32)
    raw[:, :, :128] = frames
    name = f"scan_x{nx}_y{ny}"
    raw.tofile(folder / f"{name}.raw")
    fov = [ny * step_y_A * 1e-10, nx * step_x_A * 1e-10]
    xml = folder / f"{name}.xml"
    xml.write_text(
        f'<?xml version="1.0"?><root><raw_file filename="{name}.raw"/><pix_x>{nx}</pix_x>'
        f"<pix_y>{ny}</pix_y><iom_measurements><optics><get_full_scan_field_of_view>{fov!r}"
        "</get_full_scan_field_of_view></optics><calibrated_pixelsize>"
        f"{q_inv_nm * 1e-9!r}</calibrated_pixelsize></iom_measurements></root>"
    )
    return xml


def given(**kw) -> Given:
    return Given(energy_eV=kw.pop("energy_eV", 300e3), interface_x_A=2.0, **kw)


# --------------------------------------------------------------------------- units


def test_axis_units_convert_to_angstrom_inverse_angstrom_and_mrad():
    def ax(scale, units):
        return Axis("a", None, scale, units, "here")

    assert ax(0.025, "nm").length_A() == pytest.approx(0.25)
    assert ax(2.5e-5, "µm").length_A() == pytest.approx(0.25)
    assert ax(0.25, "Å").length_A() == ax(0.25, "A").length_A() == 0.25
    assert ax(0.1, "1/nm").detector() == ("inv_angstrom", pytest.approx(0.01))
    assert ax(0.01, "A^-1").detector() == ("inv_angstrom", 0.01)
    assert ax(0.01, " 1 / Å ").detector() == ("inv_angstrom", 0.01)
    assert ax(7e-4, "rad").detector() == ("mrad", pytest.approx(0.7))
    for units in ("pixels", "cm", "", None):
        assert ax(1.0, units).detector() is None
    assert ax(0.0, "nm").length_A() is None and ax(-1.0, "mrad").detector() is None


# --------------------------------------------------------------------------- py4DSTEM


@pytest.fixture(scope="module")
def datacubes(tmp_path_factory):
    """Small DataCubes written by py4DSTEM.save (one process): calibrated (R 0.25 A, Q 0.0107
    A^-1, origin 8.5, 7.0), as py4DSTEM leaves them (pixels), with a y step of A/4 in the Ry
    dims alone (py4DSTEM's Calibration has one R pixel size; our own simulation files say so),
    with the detector turned by 30 degrees and with it flipped (QR_rotation, QR_flip)."""
    root = tmp_path_factory.mktemp("datacubes")
    data = np.random.default_rng(0).random((6, 4, 16, 16)).astype(np.float32)
    files = {name: root / f"{name}.h5" for name in ("calibrated", "plain", "steps", "turned")}
    files["flipped"] = root / "flipped.h5"
    said = write_datacubes(
        data,
        [
            dict(out=files["calibrated"], r=0.25, q=0.0107, q_units="A^-1", origin=[8.5, 7.0]),
            dict(out=files["plain"]),
            dict(out=files["steps"], r=0.25, q=0.84, q_units="mrad", ry=A / 4),
            dict(out=files["turned"], r=0.25, q=0.84, q_units="mrad", rotation=30.0),
            dict(out=files["flipped"], r=0.25, q=0.84, q_units="mrad", flip=True),
        ],
    )
    assert said[0] == ["DataCube", 0.25, 0.0107]  # py4DSTEM reads its own file back
    return {"data": data, **files}


def test_py4dstem_datacube_calibrations_are_read(datacubes):
    path = datacubes["calibrated"]
    with open_data(path) as data:
        assert data.format == "EMD 1.0 (DataCube)" and data.shape == (6, 4, 16, 16)
        assert [a.label for a in data.axes] == ["Rx", "Ry", "Qx", "Qy"]
        c = resolve_calibration(given(), data, AXES)
        np.testing.assert_array_equal(data.read_x(AXES, 2, 3), datacubes["data"][2:4])
        # Rx across the interface (the file's second scan axis): the layout says which is which
        swapped = resolve_calibration(given(), data, ("y", "x", "ky", "kx"))
    assert c.scan_step_x_A == c.scan_step_y_A == 0.25
    assert c.sampling_mrad == pytest.approx((mrad_from_inv_angstrom(0.0107, 300e3),) * 2)
    assert c.center_px == (8.5, 7.0) and swapped.center_px == (7.0, 8.5)
    assert c.sampling_given == {"inv_angstrom_per_px": [0.0107, 0.0107]}  # as the file has it
    assert c.sources["scan_step_x_A"]["from"] == "file"
    assert c.sources["scan_step_x_A"]["file_where"].endswith("calibration/R_pixel_size: 0.25 A")
    assert c.sources["sampling_mrad"][0]["file_units"] == "1/A"
    assert c.sources["center_px"][1]["file_where"].endswith("calibration/qy0_mean")
    # values typed on the command line that agree with the file are accepted (file value used)
    with open_data(path) as data:
        agreed = resolve_calibration(
            given(scan_step_x_A=0.2501, sampling_inv_angstrom=0.0107, center_px="8.5,7"),
            data,
            AXES,
        )
    assert agreed.scan_step_x_A == 0.25
    assert agreed.sources["scan_step_x_A"]["from"] == "file (the command line agrees)"
    assert agreed.sampling_given == {"inv_angstrom_per_px": [0.0107, 0.0107]}


def test_a_y_step_that_only_the_dims_hold_is_used_and_noted(datacubes):
    with open_data(datacubes["steps"]) as data:
        c = resolve_calibration(given(), data, AXES)
        (note,) = data.notes
    assert c.scan_step_x_A == 0.25 and c.scan_step_y_A == pytest.approx(A / 4, rel=1e-12)
    assert c.sampling_mrad == (0.84, 0.84)
    assert re.fullmatch(
        r"/datacube_root/datacube/dim1 steps 0.97625 A per pixel, \S+/R_pixel_size 0.25: "
        r"used /datacube_root/datacube/dim1",
        note,
    ), note


def test_a_rotated_or_flipped_detector_is_refused_or_warned(datacubes):
    with pytest.raises(
        PredictError,
        match=r"turned.h5: the file records a rotation of 30 degrees between the scan and the "
        r"detector axes \(.*QR_rotation_degrees\); predict needs kx parallel to x",
    ):
        open_data(datacubes["turned"])
    with open_data(datacubes["flipped"]) as data:
        (warning,) = data.warnings
    assert "QR_flip" in warning and "--layout must name them" in warning


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {"scan_step_x_A": 0.3},
            r"--scan-step 0.3 A contradicts .*calibrated.h5: the file records 0.25 A along x "
            r"\(.*R_pixel_size: 0.25 A\)",
        ),
        (
            {"sampling_mrad": 0.5},
            r"--sampling-mrad 0.5 mrad contradicts .*calibrated.h5: the file records 0.0107 1/A "
            r"\(= 0.21065\d* mrad at 300000 eV\) per pixel along kx",
        ),
        (
            {"sampling_inv_angstrom": 0.011},
            r"--sampling-inv-angstrom 0.011 1/A contradicts .*: the file records 0.0107 1/A per "
            r"pixel along kx \(.*Q_pixel_size: 0.0107 A\^-1\)",
        ),
        (
            {"center_px": "8.5,9"},
            r"--center 9 px contradicts .*: the file records 7 px as the zero-frequency pixel "
            r"along ky \(.*qy0_mean\)",
        ),
    ],
)
def test_a_command_line_value_that_contradicts_the_file_is_named(datacubes, kw, message):
    with open_data(datacubes["calibrated"]) as data, pytest.raises(PredictError) as exc:
        resolve_calibration(given(**kw), data, AXES)
    assert "\n" not in str(exc.value)
    assert re.search(message, str(exc.value)), str(exc.value)


def test_a_calibration_nobody_gives_is_named(datacubes, tmp_path):
    with open_data(datacubes["plain"]) as data:
        with pytest.raises(
            PredictError,
            match=r"plain.h5 records no scan step along x \(its "
            r"axis 'Rx' is in 'pixels'\): give --scan-step",
        ):
            resolve_calibration(given(), data, AXES)
        with pytest.raises(
            PredictError,
            match=r"no detector calibration along kx \(its axis "
            r"'Qx' is in 'pixels', .*\): give --sampling-mrad or "
            r"--sampling-inv-angstrom",
        ):
            resolve_calibration(given(scan_step_x_A=0.25), data, AXES)
        c = resolve_calibration(given(scan_step_x_A=0.25, sampling_mrad=0.7), data, AXES)
    assert c.scan_step_y_A == 0.25 and c.sources["scan_step_y_A"]["from"] == "as along x"
    assert c.sources["sampling_mrad"][0]["from"] == "command line" and c.center_px is None
    npy = tmp_path / "scan.npy"
    np.save(npy, datacubes["data"])
    with open_data(npy) as data:
        with pytest.raises(PredictError, match="give --scan-step"):
            resolve_calibration(given(sampling_mrad=0.7), data, AXES)
        typed = resolve_calibration(
            given(scan_step_x_A=0.2, sampling_inv_angstrom="0.01,0.02", center_px="8,7.5"),
            data,
            AXES,
        )
    assert typed.center_px == (8.0, 7.5) and typed.scan_step_y_A == 0.2
    assert typed.sampling_given == {"inv_angstrom_per_px": [0.01, 0.02]}
    assert [s["from"] for s in typed.sources["center_px"]] == ["command line"] * 2
    # the layout must put the scan on the file's scan axes
    with (
        open_data(datacubes["calibrated"]) as data,
        pytest.raises(PredictError, match=r"puts x on axis 2 .*calls 'Qx', a detector axis"),
    ):
        resolve_calibration(given(), data, ("kx", "y", "x", "ky"))


def test_cli_errors_are_one_line_naming_the_values_and_the_file(datacubes, tmp_path):
    card = synthetic_card(tmp_path).path
    common = ["--models", str(card), "--energy", "300e3", "--interface-x", "2", "-o", "out"]
    proc = predict_cli(str(datacubes["calibrated"]), *common, "--scan-step", "0.3", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("interface4d predict: error: --scan-step 0.3 A contradicts ")
    assert str(datacubes["calibrated"]) in line and "records 0.25 A along x" in line
    proc = predict_cli(str(datacubes["plain"]), *common, "--scan-step", "0.25", cwd=tmp_path)
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "give --sampling-mrad or --sampling-inv-angstrom" in line


# --------------------------------------------------------------------------- blockfile


def test_blockfile_scan_steps_are_read_its_camera_scale_is_not(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (6, 4, 16, 16), dtype=np.uint8)
    path = tmp_path / "scan.blo"
    write_blockfile(data, path, 0.25, A / 4)
    with open_data(path) as f:
        assert f.format == "NanoMegas blockfile (rosettasciio blockfile)"
        assert f.shape == (6, 4, 16, 16) and f.dtype == "uint8"
        assert [a.kind for a in f.axes] == ["scan", "scan", "detector", "detector"]
        np.testing.assert_array_equal(f.read_x(AXES, 1, 4), data[1:5])
        with pytest.raises(
            PredictError,
            match=r"scan.blo records no detector calibration along kx"
            r" \(its axis 'dy' is in 'cm', a length on the camera, which needs the "
            r"camera length\): give --sampling-mrad",
        ):
            resolve_calibration(given(), f, AXES)
        c = resolve_calibration(given(sampling_mrad=0.7), f, AXES)
        with pytest.raises(
            PredictError,
            match=r"--scan-step-y 0.5 A contradicts .*scan.blo: "
            r"the file records 0.97625 A along y \(rosettasciio blockfile axis 1 "
            r"\(x\): 0.097625 nm\)",
        ):
            resolve_calibration(given(sampling_mrad=0.7, scan_step_y_A=0.5), f, AXES)
    assert c.scan_step_x_A == pytest.approx(0.25, rel=1e-12)
    assert c.scan_step_y_A == pytest.approx(A / 4, rel=1e-12)
    assert c.sources["scan_step_y_A"]["from"] == "file"


def test_merlin_mib_is_read_lazily_and_needs_every_calibration(tmp_path):
    frames = np.random.default_rng(2).integers(0, 4000, (6, 4, 16, 16)).astype(np.uint16)
    path = tmp_path / "scan.mib"
    write_mib(frames, path)
    with open_data(path) as f:
        assert f.format == "Quantum Detectors Merlin (rosettasciio quantumdetector)"
        assert f.shape == (6, 4, 16, 16) and type(f.array).__module__.startswith("dask")
        assert [a.kind for a in f.axes] == ["scan", "scan", "detector", "detector"]
        # rosettasciio turns the frames upside down (its orientation of the Merlin detector)
        np.testing.assert_array_equal(f.read_x(AXES, 2, 3), np.flip(frames, -2)[2:4])
        with pytest.raises(PredictError, match=r"scan.mib records no scan step along x: give"):
            resolve_calibration(given(), f, AXES)
        with pytest.raises(PredictError, match=r"scan.mib records no detector calibration"):
            resolve_calibration(given(scan_step_x_A=0.2), f, AXES)
        c = resolve_calibration(given(scan_step_x_A=0.2, sampling_mrad="0.7,0.8"), f, AXES)
    assert (c.scan_step_x_A, c.scan_step_y_A, c.sampling_mrad) == (0.2, 0.2, (0.7, 0.8))
    assert c.sources["sampling_mrad"][1]["from"] == "command line"


def test_empad_scan_and_detector_calibrations_are_read(tmp_path):
    frames = np.random.default_rng(3).random((4, 6, 128, 128)).astype(np.float32)
    xml = write_empad(frames, tmp_path, 0.9, 0.25, 0.107)
    with open_data(xml) as f:
        assert f.format == "EMPAD (rosettasciio empad)" and f.shape == (4, 6, 128, 128)
        assert [a.label for a in f.axes] == ["scan_y", "scan_x", "height", "width"]
        layout = ("y", "x", "kx", "ky")  # rosettasciio's order: scan y, scan x, detector
        np.testing.assert_array_equal(f.read_x(layout, 1, 2), frames[:, 1:3].transpose(1, 0, 2, 3))
        c = resolve_calibration(given(), f, layout)
        with pytest.raises(
            PredictError,
            match=r"--sampling-mrad 0.5 mrad contradicts .*0.0107 "
            r"1/A \(= 0.2106\d* mrad at 300000 eV\) per pixel along kx \(.*0.107 "
            r"1/nm\)",
        ):
            resolve_calibration(given(sampling_mrad=0.5), f, layout)
    assert c.scan_step_x_A == pytest.approx(0.25, rel=1e-9)
    assert c.scan_step_y_A == pytest.approx(0.9, rel=1e-9)
    assert c.sampling_mrad == pytest.approx((mrad_from_inv_angstrom(0.0107, 300e3),) * 2)
    assert c.sources["scan_step_x_A"]["from"] == "file"


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_predict_classifies_a_py4dstem_datacube_and_a_blockfile_like_the_npy(
    predict_campaign, tmp_path
):
    """The held-out step cell (30 x 4 probes of 7/30 x A/4 A, another detector grid), its
    patterns shifted on the detector by (3, -2) pixels: as a py4DSTEM DataCube (R, Q in 1/A
    and the origin from the file) and as a .blo in counts (scan steps from the file), each
    against the same array as .npy with every calibration typed on the command line."""
    import h5py

    card = str(predict_campaign["copied_card"])
    with h5py.File(predict_campaign["held"]["step"]) as fh:
        cbed = fh["cbed"][()]
        inv = json.loads(fh.attrs["reciprocal_sampling_invA"])[0]
    n = cbed.shape[-1]
    center = (n // 2 + 3, n // 2 - 2)
    patterns = np.roll(cbed, (3, -2), axis=(2, 3)).astype(np.float32)
    step = 7 / 30
    common = ["--models", card, "--energy", "300e3", "--interface-x", "2.0", "--classify-only"]
    typed = ["--scan-step", repr(step), "--scan-step-y", repr(A / 4)]
    typed += ["--sampling-inv-angstrom", repr(inv), "--center", f"{center[0]},{center[1]}"]

    def run(data: Path, *args: str) -> dict:
        out = tmp_path / data.name.replace(".", "_")
        proc = predict_cli(str(data), *common, *args, "-o", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((out / "prediction.json").read_text())

    cube = tmp_path / "step_py4dstem.h5"
    spec = dict(out=cube, r=step, q=inv, q_units="A^-1", origin=list(center))
    assert write_datacubes(patterns, [spec]) == [["DataCube", step, inv]]
    npy = tmp_path / "step.npy"
    np.save(npy, patterns)
    from_file, typed_in = run(cube), run(npy, *typed)
    assert from_file["data"]["format"] == "EMD 1.0 (DataCube)"
    src = from_file["calibration"]["sources"]
    assert src["scan_step_x_A"]["from"] == "file" and src["sampling_mrad"][0]["from"] == "file"
    assert [s["from"] for s in src["center_px"]] == ["file", "file"]
    assert typed_in["calibration"]["sources"]["scan_step_x_A"]["from"] == "command line"
    c_file, c_typed = from_file["calibration"], typed_in["calibration"]
    assert c_file["sampling_mrad"] == pytest.approx(c_typed["sampling_mrad"], rel=1e-12)
    assert c_file["center_px"] == c_typed["center_px"] == list(center)
    assert c_file["scan_step_x_A"] == c_typed["scan_step_x_A"]
    cls_file, cls_typed = from_file["classification"], typed_in["classification"]
    assert cls_file["predicted_class"] == cls_typed["predicted_class"] == "step", cls_file
    np.testing.assert_allclose(cls_file["per_line"], cls_typed["per_line"], atol=1e-6)

    # the same patterns in counts (uint8, the blockfile's only type)
    counts = 200.0 / float(patterns.max())
    u8 = np.round(patterns * counts).astype(np.uint8)
    blo = tmp_path / "step.blo"
    write_blockfile(u8, blo, step, A / 4)
    npy8 = tmp_path / "step_counts.npy"
    np.save(npy8, u8)
    camera = ["--sampling-inv-angstrom", repr(inv), "--center", f"{center[0]},{center[1]}"]
    scale = ["--incident-intensity", repr(counts)]
    from_blo, typed8 = run(blo, *camera, *scale), run(npy8, *typed, *scale)
    assert from_blo["data"]["format"] == "NanoMegas blockfile (rosettasciio blockfile)"
    src = from_blo["calibration"]["sources"]
    assert src["scan_step_x_A"]["from"] == src["scan_step_y_A"]["from"] == "file"
    assert src["sampling_mrad"][0]["from"] == "command line"
    assert from_blo["calibration"]["scan_step_x_A"] == pytest.approx(step, rel=1e-12)
    assert from_blo["calibration"]["scan_step_y_A"] == pytest.approx(A / 4, rel=1e-12)
    assert "rsciio" in from_blo["versions"]
    cls_blo, cls_typed8 = from_blo["classification"], typed8["classification"]
    assert cls_blo["predicted_class"] == cls_typed8["predicted_class"] == "step", cls_blo
    np.testing.assert_allclose(cls_blo["per_line"], cls_typed8["per_line"], atol=1e-6)
