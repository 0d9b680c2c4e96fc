"""Small helpers shared by the benchmark scripts: the machine header, measured subprocesses,
tables. Standard library only (heavy imports stay in the scripts' functions).

Importing it puts the repository root on ``sys.path`` (a script run as
``python benchmarks/NAME.py`` has only ``benchmarks/`` there), so the scripts import the code
they share with the tests from :mod:`support` (the workflow copy, ``BIN``, the environment)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU's model name: /proc/cpuinfo, else lscpu (VMs often hide it from cpuinfo), else
    vendor / family / model numbers. A VM's name can be as bare as "AMD EPYC", and hosts behind
    the same name have run the demo 1.7x apart, so the family / model numbers and the widest
    vector extension follow it."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if fields.get("model name"):
        flags = set(fields.get("flags", "").split())
        simd = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
        return (
            f"{fields['model name']} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {simd})"
        )
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip() + " (lscpu)"
    except (OSError, subprocess.SubprocessError):
        pass
    if fields:
        return (
            f"{fields.get('vendor_id', '?')} family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}"
        )
    return platform.processor() or "unknown"


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(title: str, packages: tuple[str, ...] = ("abtem", "numpy", "snakemake")) -> None:
    """Print what a result needs beside it: title, date, machine, versions, command line."""
    ncpu = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else ncpu
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# {title}")
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(
        f"machine   {platform.node()}: {ncpu} CPUs ({usable} usable), {cpu_model()}, "
        f"{ram_gib():.1f} GiB RAM; load average (1/5/15 min) {load}"
    )
    print(
        f"versions  Python {platform.python_version()}, "
        + ", ".join(f"{p} {version(p)}" for p in packages)
    )
    print(f"command   {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print()


@dataclass
class Measured:
    returncode: int
    wall_s: float
    peak_rss_mb: float  # the child's own peak resident set (and its waited-for children)
    stdout: str
    stderr: str

    def tail(self, n: int = 3000) -> str:
        return f"{self.stdout[-n:]}\n{self.stderr[-n:]}"


def run_measured(cmd: list[str], timeout: float | None = None, **kw) -> Measured:
    """Run ``cmd``; wall time and the peak RSS of that one process tree, via wait4.

    Output goes to temp files (no pipe to drain while waiting). On timeout the process is
    killed and the returncode is -9.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, **kw)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, wall, usage.ru_maxrss / 1024, out.read(), err.read())


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (pastes straight into RESULTS.md), columns padded to line up."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.3g} PB"
