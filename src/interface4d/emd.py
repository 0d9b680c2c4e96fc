"""EMD 1.0 view of a simulation file: py4DSTEM opens it as a DataCube, no second copy of the data.

:func:`add_datacube` turns an open simulation file (the ``cbed`` dataset, ``scan/x``,
``scan/y`` and the sampling attributes that :mod:`interface4d.simulate` writes) into a valid
EMD 1.0 file as well (https://emdatasets.com/format/): ``py4DSTEM.read(path)`` returns a
``DataCube`` whose data is our ``cbed`` dataset itself (an HDF5 hard link) with py4DSTEM's
calibration. What is added (our own datasets and attributes stay where they are)::

    /  attrs emd_group_type='file', version_major=1, version_minor=0, UUID, authoring_program
    EMD                                  EMD root (python_class Root)
      datacube                           EMD array (python_class DataCube)
        data -> /cbed                    hard link; (Rx, Ry, Qx, Qy) = our (scan_x, scan_y, kx, ky)
        dim0, dim1, dim2, dim3           first two coordinates of each axis: A, A, A^-1, A^-1
      metadatabundle/calibration         py4DSTEM Calibration: R_pixel_size (A), Q_pixel_size
                                         (A^-1), their units, QR_flip False
      metadatabundle/interface4d         both scan steps and origins (A), both samplings in A^-1
                                         and mrad, the zero-frequency pixel, energy (eV), cell

The root is named ``EMD``: HDF5 visits an object with several names once, under the first in
name order, and upper case sorts before ``cbed``, so a reader that walks the file that way
(rosettasciio's EMD reader, which HyperSpy uses) finds the data under its EMD name and reads it
with both scan steps and the detector axes from the ``dim`` vectors.

Axes: abTEM's 4D-STEM array is (scan x, scan y, kx, ky), the order py4DSTEM's DataCube
uses (Rx, Ry, Qx, Qy): nothing is transposed. The detector array is fftshifted: the zero
frequency is pixel ``n // 2`` of each detector axis (``dim2``/``dim3`` start at
``-(n // 2) * dk``; py4DSTEM's in-memory axes start at 0, its origin is left unset).

py4DSTEM has one real-space pixel size, but our scan steps differ along x (across the
interface) and y (along it): ``R_pixel_size`` is the x step; the y step is in ``dim1`` and
``metadatabundle/interface4d``. Its one detector pixel size is the kx sampling (abTEM's square
or uniformly resampled detectors make ky's the same; both are in ``dim2``/``dim3``).

Written through emdfile (pinned 0.0.16): the root, the array group's tags and the metadata
groups (emdfile's typed serialisation, which py4DSTEM reads back) come from emdfile's own
``Node.to_h5`` / ``Metadata.to_h5``. The array's ``data`` and ``dim`` vectors are written here
with h5py, because emdfile's ``Array.to_h5`` always writes its own copy of the array (a second
copy of every simulation); the file header attributes are written here too, because
emdfile writes it only for a file it creates itself.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import h5py
import numpy as np

ROOT = "EMD"  # upper case: sorts before `cbed` (see the module doc)
NODE = "datacube"
INTENSITY_UNITS = "fraction of the incident probe intensity"
EMD_HEADER = (
    "emd_group_type",
    "version_major",
    "version_minor",
    "UUID",
    "authoring_program",
    "authoring_user",
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def calibration(fh: h5py.File, data: str = "cbed") -> dict[str, Any]:
    """The calibrations of the 4D array ``fh[data]`` of a simulation file, from its own
    datasets and attributes: scan steps and origins (A), detector samplings (A^-1 and mrad),
    the zero-frequency pixel, the beam energy (eV) and the cell id."""
    shape = fh[data].shape
    step = [float(s) for s in _json(fh.attrs["scan_sampling_A"])]
    inv_a = [float(s) for s in _json(fh.attrs["reciprocal_sampling_invA"])]
    mrad = [float(s) for s in _json(fh.attrs["angular_sampling_mrad"])]
    settings = _json(fh.attrs["settings"])
    return {
        "cell": str(fh.attrs.get("cell", settings["cell"])),
        "shape": tuple(int(n) for n in shape),
        "scan_step_A": step,
        "scan_origin_A": [float(fh["scan/x"][0]), float(fh["scan/y"][0])],
        "sampling_invA": inv_a,
        "sampling_mrad": mrad,
        "center_px": [shape[2] // 2, shape[3] // 2],
        "energy_eV": float(settings["simulation"]["energy"]),
        "semiangle_cutoff_mrad": float(settings["simulation"]["semiangle_cutoff"]),
    }


def add_datacube(fh: h5py.File, data: str = "cbed") -> None:
    """Make the open simulation file ``fh`` also an EMD 1.0 file whose one tree is a py4DSTEM
    DataCube over ``fh[data]`` (linked, not copied); see the module doc for the layout."""
    import emdfile

    if ROOT in fh:
        raise ValueError(f"{fh.filename}: already holds an EMD tree {ROOT!r}")
    cal = calibration(fh, data)

    class Calibration(emdfile.Metadata):  # python_class 'Calibration': py4DSTEM's
        pass

    class DataCube(emdfile.Node):  # python_class 'DataCube', an EMD array group
        _emd_group_type = "array"

    root = emdfile.Root(name=ROOT)
    root.metadata = Calibration(
        name="calibration",
        data={
            "R_pixel_size": cal["scan_step_A"][0],
            "R_pixel_units": "A",
            "Q_pixel_size": cal["sampling_invA"][0],
            "Q_pixel_units": "A^-1",
            "QR_flip": False,
            "_root_treepath": "",
            "_target_paths": [f"/{NODE}"],
        },
    )
    root.metadata = emdfile.Metadata(
        name="interface4d",
        data={
            "cell": cal["cell"],
            "axes": ["scan_x", "scan_y", "kx", "ky"],
            "R_pixel_size_xy_A": tuple(cal["scan_step_A"]),
            "R_origin_xy_A": tuple(cal["scan_origin_A"]),
            "Q_pixel_size_xy_invA": tuple(cal["sampling_invA"]),
            "Q_pixel_size_xy_mrad": tuple(cal["sampling_mrad"]),
            "Q_center_px": tuple(cal["center_px"]),
            "energy_eV": cal["energy_eV"],
            "semiangle_cutoff_mrad": cal["semiangle_cutoff_mrad"],
        },
    )
    root_group = root.to_h5(fh)
    node = DataCube(name=NODE).to_h5(root_group)
    node["data"] = fh[data]  # a hard link: one dataset, two names
    node["data"].attrs["units"] = INTENSITY_UNITS
    (x0, y0), (dx, dy) = cal["scan_origin_A"], cal["scan_step_A"]
    dims = [
        ("Rx", "A", x0, dx),
        ("Ry", "A", y0, dy),
        ("Qx", "A^-1", -cal["center_px"][0] * cal["sampling_invA"][0], cal["sampling_invA"][0]),
        ("Qy", "A^-1", -cal["center_px"][1] * cal["sampling_invA"][1], cal["sampling_invA"][1]),
    ]
    for n, (name, units, start, step) in enumerate(dims):
        dim = node.create_dataset(f"dim{n}", data=np.array([start, start + step]))
        dim.attrs["name"] = name
        dim.attrs["units"] = units
    fh.attrs["emd_group_type"] = "file"
    fh.attrs["version_major"] = 1
    fh.attrs["version_minor"] = 0
    fh.attrs["UUID"] = str(uuid.uuid4())
    fh.attrs["authoring_program"] = f"interface4d (emdfile {emdfile.__version__})"
    fh.attrs["authoring_user"] = ""
