"""FFTW plans for CPU simulations: measured once, then shared between processes.

abTEM's CPU multislice spends most of its time in batched 2D FFTs (waves of ``batch x gpts x
gpts``). FFTW can pick their algorithm by an estimate (``FFTW_ESTIMATE``: no timing, so every
process picks the same plan and computes the same bits) or by timing candidates
(``FFTW_MEASURE``/``FFTW_PATIENT``: faster code, but the choice depends on timing noise, so two
processes may pick different plans and differ in the last bits). On the project's AMD EPYC VM
one 80 x 224 x 224 complex64 transform took 34.8 ms estimated, 18.5 ms measured and 15.7 ms
patient (benchmarks/RESULTS.md); on the Intel VM of November the estimate was as fast.

:func:`shared_plans` keeps both properties: the first process of a *key* (the CPU, the FFTW
build and every setting that decides the transform shapes) plans with ``FFTW_PATIENT`` while
holding an exclusive lock on ``<wisdom dir>/<key>.wisdom.lock``, simulates its cell, and writes
the plans it made to ``<key>.wisdom`` (atomically). Every later process of that key, and every
process that waited on the lock, imports that file before its first transform, so all of them
run the same plans. Without a wisdom folder (or when it cannot be written) it falls back to
``FFTW_ESTIMATE``. Only the CPU path uses FFTW: GPU simulations (cuFFT) ignore all this.

Pure standard library at import; pyfftw and abTEM are imported inside the functions.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("interface4d.fftplan")

ENV = "INTERFACE4D_FFTW_WISDOM"  # a wisdom folder for processes not given one
PATIENT = "FFTW_PATIENT"
ESTIMATE = "FFTW_ESTIMATE"
# the simulation settings that decide which transforms abTEM plans (grid, batch, scan, method)
SHAPE_KEYS = ("gpts", "scan", "precision", "method", "prism_interpolation", "detector_max_angle")


@dataclass(frozen=True)
class Planning:
    """How a cell's FFTs were planned: the FFTW flag, and the wisdom file (None: estimated)."""

    effort: str
    wisdom: Path | None = None
    created: bool = False  # this process measured the plans and wrote the file

    def describe(self) -> str:
        if self.wisdom is None:
            return self.effort
        how = "measured here, written to" if self.created else "read from"
        return f"{self.effort} plans {how} {self.wisdom}"


def cpu_signature() -> str:
    """The CPU model and its instruction-set flags (FFTW's codelets depend on both)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or "unknown"
    flags = fields.get("flags", "")
    return f"{platform.machine()}|{model}|{hashlib.sha256(flags.encode()).hexdigest()[:12]}"


def wisdom_key(simulation: Mapping[str, Any], max_batch: int) -> str:
    """The wisdom file's name: CPU, FFTW build and the transform shapes' settings."""
    import pyfftw

    spec = {
        "cpu": cpu_signature(),
        "pyfftw": pyfftw.__version__,
        "max_batch": int(max_batch),
        **{k: simulation.get(k) for k in SHAPE_KEYS},
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
    return f"fftw-{digest}"


def default_wisdom_dir() -> Path | None:
    """``$INTERFACE4D_FFTW_WISDOM`` if set (empty: none), else None (estimated plans)."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def workflow_wisdom_dir() -> str:
    """The folder the workflow's CPU simulations share: ``$INTERFACE4D_FFTW_WISDOM`` if set
    (empty: "", estimated plans), else ``$XDG_CACHE_HOME/interface4d/fftw`` (default
    ``~/.cache``)."""
    if ENV in os.environ:
        return os.environ[ENV]
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return str(Path(cache) / "interface4d" / "fftw")


@contextlib.contextmanager
def shared_plans(wisdom_dir: str | Path | None, key: str) -> Iterator[Planning]:
    """Plan the FFTs of the block inside (module doc) and yield how; sets abTEM's
    ``fftw.planning_effort`` accordingly. ``wisdom_dir`` None: ``FFTW_ESTIMATE``."""
    if wisdom_dir is None:
        _set_effort(ESTIMATE)
        yield Planning(ESTIMATE)
        return
    wisdom_dir = Path(wisdom_dir)
    path = wisdom_dir / f"{key}.wisdom"
    try:
        wisdom_dir.mkdir(parents=True, exist_ok=True)
        lock = open(wisdom_dir / f"{key}.wisdom.lock", "a")  # noqa: SIM115 (held below)
    except OSError as exc:
        log.warning("FFTW wisdom folder %s not writable (%s): estimated plans", wisdom_dir, exc)
        _set_effort(ESTIMATE)
        yield Planning(ESTIMATE)
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.exists():
                _import(path)
                fcntl.flock(lock, fcntl.LOCK_UN)
                _set_effort(PATIENT)
                yield Planning(PATIENT, path)
                return
            # the first process of this key: plan (and simulate) while the others wait
            _set_effort(PATIENT)
            yield Planning(PATIENT, path, created=True)
            _export(path, key)
        finally:
            with contextlib.suppress(OSError, ValueError):
                fcntl.flock(lock, fcntl.LOCK_UN)


def _set_effort(effort: str) -> None:
    import abtem

    abtem.config.set({"fftw.planning_effort": effort})


def _import(path: Path) -> None:
    import pyfftw

    record = json.loads(path.read_text())
    wisdom = tuple(base64.b64decode(w) for w in record["wisdom"])
    pyfftw.import_wisdom(wisdom)


def _export(path: Path, key: str) -> None:
    import pyfftw

    from interface4d.h5io import atomic_path

    record = {
        "key": key,
        "cpu": cpu_signature(),
        "pyfftw": pyfftw.__version__,
        "wisdom": [base64.b64encode(w).decode() for w in pyfftw.export_wisdom()],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record))
    log.info("FFTW plans written to %s", path)
