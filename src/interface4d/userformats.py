"""A user's 4D-STEM file as microscopes and analysis programs write it, with the calibrations it
carries (``interface4d predict``).

:func:`open_data` opens, lazily:

* ``.npy`` and plain HDF5: :class:`interface4d.userdata.DataFile`; no calibration.
* EMD 1.0 (py4DSTEM / emdfile: HDF5 whose root has ``emd_group_type='file'``), read with h5py:
  the 4D ``array`` group, the R and Q pixel sizes and units of its ``Calibration`` metadata
  (``R_pixel_size``/``R_pixel_units``, ``Q_pixel_size``/``Q_pixel_units`` in ``A^-1`` or
  ``mrad``; else the dims ``dim0..dim3``) and the mean origin (``qx0_mean``, ``qy0_mean``).
  py4DSTEM's axes are (Rx, Ry, Qx, Qy).
* The detector formats of rosettasciio (lazy, dask): Quantum Detectors Merlin ``.mib`` (no
  calibration in the format), Gatan ``.dm3``/``.dm4`` (axes scales and units), EMPAD ``.xml``
  + ``.raw`` (scan field of view; the detector scale where the XML holds it) and NanoMegas
  ``.blo`` (scan step in nm; its diffraction scale is a length on the camera, in cm, which needs
  the camera length, so it is not used). Axes in the reader's array order (scan axes first).

What a file records about its axes (:class:`Axis`) is merged with the command line's values in
:mod:`interface4d.usercalibration`.

rosettasciio and h5py are imported only inside the functions that read those files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.modelcard import PredictError
from interface4d.userdata import (
    HDF5_SUFFIXES,
    DataFile,
    to_canonical,
)

# suffix -> (rosettasciio plugin, format name)
RSCIIO_FORMATS = {
    ".mib": ("quantumdetector", "Quantum Detectors Merlin"),
    ".dm3": ("digitalmicrograph", "Gatan DigitalMicrograph"),
    ".dm4": ("digitalmicrograph", "Gatan DigitalMicrograph"),
    ".xml": ("empad", "EMPAD"),
    ".blo": ("blockfile", "NanoMegas blockfile"),
}
SUFFIXES = (".npy", *HDF5_SUFFIXES, *RSCIIO_FORMATS)
ROTATION_LIMIT_DEG = 1.0  # kx must be parallel to x

# units -> factor to A (scan), to 1/A or to mrad (detector); keys lower case without spaces
LENGTH_A = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "nm": 10.0, "pm": 0.01, "um": 1e4, "µm": 1e4}
LENGTH_A.update({"μm": 1e4, "mm": 1e7, "cm": 1e8, "m": 1e10})
INV_A = {"a^-1": 1.0, "1/a": 1.0, "å^-1": 1.0, "1/å": 1.0, "a-1": 1.0, "å⁻¹": 1.0}
INV_A.update({"1/nm": 0.1, "nm^-1": 0.1, "nm-1": 0.1, "nm⁻¹": 0.1, "1/pm": 100.0, "1/m": 1e-10})
MRAD = {"mrad": 1.0, "rad": 1e3, "urad": 1e-3, "µrad": 1e-3, "μrad": 1e-3}


# --------------------------------------------------------------------------- what a file says


@dataclass(frozen=True)
class Axis:
    """One axis of a file as the file describes it."""

    label: str  # the file's own name (Rx, Qy, x, dx, ...)
    kind: str | None  # "scan", "detector" or None (the file does not say)
    scale: float | None  # per pixel, in ``units``
    units: str | None
    where: str  # where the scale was read

    def key(self) -> str:
        return "".join(str(self.units or "").split()).lower()

    def length_A(self) -> float | None:
        factor = LENGTH_A.get(self.key())
        return None if factor is None or not _usable(self.scale) else self.scale * factor

    def detector(self) -> tuple[str, float] | None:
        """("mrad" | "inv_angstrom", value per pixel), or None."""
        k = self.key()
        if not _usable(self.scale):
            return None
        if k in MRAD:
            return "mrad", self.scale * MRAD[k]
        if k in INV_A:
            return "inv_angstrom", self.scale * INV_A[k]
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "scale": self.scale,
            "units": self.units,
            "where": self.where,
        }


def _usable(scale: float | None) -> bool:
    return scale is not None and math.isfinite(scale) and scale > 0


def _calibrated(axis: Axis) -> bool:
    return axis.length_A() is not None or axis.detector() is not None


def _kind_of_units(units: str | None) -> str | None:
    k = "".join(str(units or "").split()).lower()
    if k in INV_A or k in MRAD:
        return "detector"
    if k in LENGTH_A:
        return "scan"
    return None


class UserData:
    """A user's 4D array, opened lazily, with what the file records about its axes."""

    def __init__(
        self,
        path: Path,
        array: Any,
        *,
        fmt: str,
        dataset_path: str | None = None,
        axes: Sequence[Axis] | None = None,
        center: dict[int, tuple[float, str]] | None = None,
        notes: Sequence[str] = (),
        warnings: Sequence[str] = (),
        close: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.array = array
        self.format = fmt
        self.dataset_path = dataset_path
        self.axes = list(axes) if axes else None
        self.center = center or {}  # file axis -> (zero-frequency pixel, where)
        self.notes = list(notes)
        self.warnings = list(warnings)
        self._close = close
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = str(array.dtype)

    def read_x(self, layout: Sequence[str], first: int, last: int) -> np.ndarray:
        """Probe columns ``first..last`` along x (inclusive), all of y, as (x, y, kx, ky)."""
        index = [slice(None)] * 4
        index[list(layout).index("x")] = slice(first, last + 1)
        part = self.array[tuple(index)]
        part = part.compute() if hasattr(part, "compute") else part  # dask (rosettasciio)
        return to_canonical(np.asarray(part), layout)

    def describe(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "axes": [a.describe() for a in self.axes] if self.axes else None,
            "center_px": {str(k): list(v) for k, v in self.center.items()} or None,
        }

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> UserData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_data(path: str | Path, dataset_path: str | None = None) -> UserData:
    """Open a user's 4D data set (module doc); the format is chosen by the suffix (and, for
    HDF5, by the EMD 1.0 root attributes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise PredictError(f"data file {path} does not exist")
    if suffix in RSCIIO_FORMATS:
        return _open_rsciio(path, dataset_path)
    if suffix in HDF5_SUFFIXES and _is_emd1(path):
        return _open_emd(path, dataset_path)
    if suffix not in SUFFIXES:
        raise PredictError(
            f"{path}: unknown file type {suffix!r} (need one of {', '.join(SUFFIXES)})"
        )
    data = DataFile(path, dataset_path)
    fmt = "numpy .npy" if suffix == ".npy" else "HDF5"
    return UserData(path, data.array, fmt=fmt, dataset_path=data.dataset_path, close=data.close)


# --------------------------------------------------------------------------- EMD 1.0


def _is_emd1(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return (
                _text(fh.attrs.get("emd_group_type")) == "file"
                and int(fh.attrs.get("version_major", -1)) == 1
            )
    except OSError as exc:
        raise PredictError(f"{path}: not a readable HDF5 file ({exc})") from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _emd_arrays(fh) -> list[str]:
    """Paths of the 4D EMD array groups of an open file."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if (
            isinstance(obj, h5py.Group)
            and _text(obj.attrs.get("emd_group_type")) == "array"
            and isinstance(obj.get("data"), h5py.Dataset)
            and obj["data"].ndim == 4
        ):
            found.append("/" + name)

    fh.visititems(visit)
    return found


def _open_emd(path: Path, dataset_path: str | None) -> UserData:
    import h5py

    fh = h5py.File(path, "r")
    try:
        if dataset_path:
            obj = fh.get(dataset_path)
            if isinstance(obj, h5py.Dataset):
                obj = obj.parent
            if not (
                isinstance(obj, h5py.Group)
                and _text(obj.attrs.get("emd_group_type")) == "array"
                and "data" in obj
            ):  # a plain dataset inside the EMD file: no calibration
                fh.close()
                data = DataFile(path, dataset_path)
                return UserData(
                    path, data.array, fmt="HDF5", dataset_path=data.dataset_path, close=data.close
                )
            group = obj
        else:
            arrays = _emd_arrays(fh)
            if len(arrays) != 1:
                raise PredictError(
                    f"{path} (EMD 1.0) holds no 4D array"
                    if not arrays
                    else f"{path} (EMD 1.0) holds several 4D arrays: choose one with "
                    f"--dataset-path ({', '.join(arrays)})"
                )
            group = fh[arrays[0]]
        axes, center, notes, warnings = _emd_calibration(group)
        return UserData(
            path,
            group["data"],
            fmt=f"EMD 1.0 ({_text(group.attrs.get('python_class')) or 'Array'})",
            dataset_path=group["data"].name,
            axes=axes,
            center=center,
            notes=notes,
            warnings=warnings,
            close=fh.close,
        )
    except BaseException:
        fh.close()
        raise


def _emd_calibration_group(group):
    """The py4DSTEM Calibration that applies to an EMD array group: its own metadata, else its
    root's (``<root>/metadatabundle/calibration``)."""
    node = group
    while True:
        cal = node.get("metadatabundle/calibration")
        if cal is not None and _text(cal.attrs.get("python_class")) == "Calibration":
            return cal
        if _text(node.attrs.get("emd_group_type")) in ("root", "file") or node.name == "/":
            return None
        node = node.parent


def _scalar_or_pair(cal, name: str) -> tuple[float, float] | None:
    if name not in cal:
        return None
    value = np.atleast_1d(np.asarray(cal[name][()], dtype=np.float64))
    if value.size == 1:
        return float(value[0]), float(value[0])
    if value.size == 2:
        return float(value[0]), float(value[1])
    return None


def _emd_calibration(group):
    """(axes, centre, notes, warnings) of an EMD array group. Axes (Rx, Ry, Qx, Qy for a
    DataCube) from the Calibration metadata, else the dims; where both hold a step in the same
    units and they differ, the dims' (py4DSTEM writes the dims from its Calibration, which has
    one R pixel size: scan steps that differ along x and y are in the dims only)."""
    dims = []
    for i in range(4):
        d = group.get(f"dim{i}")
        if d is not None and d.shape and d.shape[0] >= 2:
            step = float(d[1] - d[0])
            dims.append(
                (_text(d.attrs.get("name")) or f"dim{i}", step, _text(d.attrs.get("units")))
            )
        else:
            dims.append((f"dim{i}", None, None))
    cal = _emd_calibration_group(group)
    is_cube = _text(group.attrs.get("python_class")) == "DataCube"
    axes: list[Axis] = []
    for i, (label, step, units) in enumerate(dims):
        kind = ("scan" if i < 2 else "detector") if is_cube else _kind_of_units(units)
        axes.append(Axis(label, kind, step, units, f"{group.name}/dim{i}"))
    center: dict[int, tuple[float, str]] = {}
    notes: list[str] = []
    warnings: list[str] = []
    if cal is None:
        return axes, center, notes, warnings
    where = cal.name
    for prefix, first in (("R", 0), ("Q", 2)):
        size = _scalar_or_pair(cal, f"{prefix}_pixel_size")
        units = _text(cal[f"{prefix}_pixel_units"][()]) if f"{prefix}_pixel_units" in cal else None
        if size is None or units is None:
            continue
        for j in range(2):
            kind = "scan" if prefix == "R" else "detector"
            dim = axes[first + j]
            new = Axis(dim.label, kind, size[j], units, f"{where}/{prefix}_pixel_size")
            if (
                _calibrated(dim)
                and dim.key() == new.key()
                and not math.isclose(dim.scale, new.scale, rel_tol=0.005)
            ):  # py4DSTEM keeps one R pixel size: steps that differ along x and y are in the dims
                notes.append(
                    f"{dim.where} steps {dim.scale:g} {dim.units} per pixel, {new.where} "
                    f"{new.scale:g}: used {dim.where}"
                )
            elif _calibrated(new) or not _calibrated(dim):
                axes[first + j] = new
    if "qx0_mean" in cal and "qy0_mean" in cal:
        for i, name in ((2, "qx0_mean"), (3, "qy0_mean")):
            value = float(np.asarray(cal[name][()], dtype=np.float64))
            if math.isfinite(value):
                center[i] = (value, f"{where}/{name}")
    rotation = float(cal["QR_rotation_degrees"][()]) if "QR_rotation_degrees" in cal else 0.0
    if abs(rotation) > ROTATION_LIMIT_DEG:
        raise PredictError(
            f"{group.file.filename}: the file records a rotation of {rotation:g} degrees between "
            f"the scan and the detector axes ({where}/QR_rotation_degrees); predict needs kx "
            "parallel to x: rotate the patterns first"
        )
    if "QR_flip" in cal and bool(cal["QR_flip"][()]):
        warnings.append(
            f"the file sets QR_flip ({where}): its detector axes are transposed relative to the "
            "scan; --layout must name them so that kx is parallel to x"
        )
    return axes, center, notes, warnings


# --------------------------------------------------------------------------- rosettasciio


def _open_rsciio(path: Path, dataset_path: str | None) -> UserData:
    import importlib

    plugin, name = RSCIIO_FORMATS[path.suffix.lower()]
    reader = importlib.import_module(f"rsciio.{plugin}")
    try:
        signals = reader.file_reader(str(path), lazy=True)
    except Exception as exc:  # the reader's own message, on one line
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise PredictError(f"{path}: rosettasciio could not read it as {name}: {text}") from None
    four = [i for i, s in enumerate(signals) if np.ndim(s["data"]) == 4]
    shapes = ", ".join(str(tuple(s["data"].shape)) for s in signals)
    if dataset_path not in (None, ""):
        try:
            index = int(dataset_path)
        except ValueError:
            raise PredictError(
                f"--dataset-path {dataset_path!r}: for {name} files, the index of the data set "
                f"(0..{len(signals) - 1}; shapes {shapes})"
            ) from None
        if index not in four:
            raise PredictError(f"{path}: data set {index} is not 4D (shapes {shapes})")
    elif len(four) == 1:
        index = four[0]
    else:
        raise PredictError(
            f"{path} ({name}) holds "
            + (
                "no 4D data set"
                if not four
                else "several 4D data sets: choose one with --dataset-path"
            )
            + f" (shapes {shapes})"
            + (
                "; the scan shape of a Merlin file is read from the .hdr beside it"
                if plugin == "quantumdetector" and not four
                else ""
            )
        )
    signal = signals[index]
    axes_in = sorted(signal["axes"], key=lambda a: a.get("index_in_array", signal["axes"].index(a)))
    axes = []
    for i, a in enumerate(axes_in):
        units = a.get("units")
        units = None if units in (None, "", "<undefined>") else str(units)
        scale = float(a["scale"]) if units is not None and a.get("scale") is not None else None
        kind = None if a.get("navigate") is None else ("scan" if a["navigate"] else "detector")
        label = str(a.get("name") or f"axis {i}")
        axes.append(Axis(label, kind, scale, units, f"rosettasciio {plugin} axis {i} ({label})"))
    return UserData(
        path,
        signal["data"],
        fmt=f"{name} (rosettasciio {plugin})",
        dataset_path=None if dataset_path in (None, "") else str(index),
        axes=axes if len(axes) == 4 else None,
    )
