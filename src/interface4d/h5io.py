"""Atomic HDF5 outputs.

A file is written under a temporary name beside its final path (``<name>.h5.part-<pid>``, which
no rule or glob accepts as an output) and renamed into place only after it is complete and
closed. A killed job therefore leaves at most a ``.part`` file, never a half-written ``.h5``.
Readers additionally require the ``complete`` attribute that is set last.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT = "interface4d-sim/1"


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, fsync it and rename it
    to ``path``, otherwise delete it. ``suffix`` keeps an extension writers insist on (.keras).
    Stale temporaries of a killed earlier attempt are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.part-*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    tmp = path.with_name(f"{path.name}.part-{os.getpid()}{suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as raw:
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """Open a temporary HDF5 file; on success mark it complete, close and rename it to ``path``."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        yield fh
        fh.attrs["complete"] = True
        fh.flush()


def set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Store a mapping as HDF5 attributes; nested values and None go in as JSON text."""
    for key, value in attrs.items():
        if value is None or isinstance(value, (dict, list, tuple)):
            obj.attrs[key] = json.dumps(value, sort_keys=True)
        else:
            obj.attrs[key] = value


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: every parameter as its own attribute."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def require_complete(fh: h5py.File, path: str | Path) -> None:
    if not fh.attrs.get("complete", False):
        raise OSError(f"{path} is incomplete (no 'complete' mark): delete it and rerun its job")


def write_cbed(group: h5py.Group, name: str, array: np.ndarray, compression: int = 1) -> None:
    """A 4D (scan x, scan y, kx, ky) float32 dataset, one chunk per probe position."""
    array = np.asarray(array, dtype=np.float32)
    group.create_dataset(
        name,
        data=array,
        chunks=(1, 1) + array.shape[2:],
        compression="gzip",
        compression_opts=compression,
        shuffle=True,
    )
