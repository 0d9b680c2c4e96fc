"""FFTW planning of a CPU simulation: estimated plans vs measured plans shared through wisdom.

One demo cell (config.yaml, default t100/step-d3) through the real entry point
`interface4d simulate` (a fresh process each: imports, structure, simulation, HDF5 write), one
after another on an otherwise idle machine:

* `estimate`: FFTW_ESTIMATE (no wisdom folder), at the demo's max_batch and at half of it;
* `patient, first`: an empty wisdom folder: this process measures the plans (FFTW_PATIENT) and
  writes them (interface4d.fftplan);
* `patient, shared`: the same folder again: the plans are read, nothing is measured.

Printed side by side: wall times, the ratio to `estimate`, whether the shared runs reproduce the
first bit for bit, and the largest difference to the estimated patterns (relative to the
pattern maximum). Also the bare transform: one (max_batch, gpts, gpts) complex64 FFT with each
planner.

    .venv/bin/python benchmarks/fft_planning.py [--cell t100/step-d3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, header, run_measured, table

from support.workflow import BIN
from support.workflow import env as venv_env


def simulate(cell: str, out: Path, max_batch: int, wisdom: Path | None) -> float:
    cmd = [str(BIN / "interface4d"), "simulate", "--config", str(ROOT / "config.yaml")]
    cmd += ["--cell", cell, "--max-batch", str(max_batch), "-o", str(out)]
    if wisdom is not None:
        cmd += ["--fftw-wisdom", str(wisdom)]
    env = venv_env(OMP_NUM_THREADS="1")
    env.pop("INTERFACE4D_FFTW_WISDOM", None)
    res = run_measured(cmd, env=env, timeout=1800)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.tail()}")
    return res.wall_s


def bare_fft(batch: int, gpts: int) -> list[list[str]]:
    import numpy as np
    import pyfftw

    rng = np.random.default_rng(0)
    a = (rng.random((batch, gpts, gpts)) + 1j * rng.random((batch, gpts, gpts))).astype(
        np.complex64
    )
    rows = []
    for effort in ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT"):
        x = pyfftw.empty_aligned(a.shape, dtype="complex64")
        t = time.perf_counter()
        plan = pyfftw.FFTW(x, x, axes=(1, 2), flags=(effort,), threads=1)
        t_plan = time.perf_counter() - t
        x[:] = a
        plan()
        t = time.perf_counter()
        for _ in range(10):
            plan()
        rows.append([effort, f"{t_plan:.2f}", f"{(time.perf_counter() - t) / 10 * 1e3:.1f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="t100/step-d3")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each shared/estimate case")
    args = ap.parse_args()
    import h5py
    import numpy as np
    import yaml

    header("FFTW planning of a CPU simulation (benchmarks/fft_planning.py)", ("abtem", "pyfftw"))
    sim = yaml.safe_load((ROOT / "config.yaml").read_text())["simulation"]
    batch, gpts = int(sim["max_batch"]), int(sim["gpts"])
    with tempfile.TemporaryDirectory(prefix="i4d-fft-") as tmp:
        tmp = Path(tmp)
        wisdom = tmp / "wisdom"
        runs: dict[str, list[float]] = {}
        files: dict[str, Path] = {}

        def case(name: str, max_batch: int, wis: Path | None, i: int) -> None:
            out = tmp / f"{name.replace(' ', '_').replace(',', '')}-{i}.h5"
            runs.setdefault(name, []).append(simulate(args.cell, out, max_batch, wis))
            files.setdefault(name, out)

        case("patient, first (measures, writes wisdom)", batch, wisdom, 0)
        for i in range(args.repeats):  # interleaved, so drifts in machine speed hit both
            case(f"estimate, max_batch {batch}", batch, None, i)
            case("patient, shared (reads wisdom)", batch, wisdom, i)
            case(f"estimate, max_batch {batch // 2}", batch // 2, None, i)
        ref_name = f"estimate, max_batch {batch}"
        ref = statistics.median(runs[ref_name])
        with h5py.File(files[ref_name]) as fh:
            reference = fh["cbed"][()]
        first = files["patient, first (measures, writes wisdom)"]
        with h5py.File(first) as fh:
            measured = fh["cbed"][()]
        rows = []
        for name, walls in runs.items():
            with h5py.File(files[name]) as fh:
                cbed = fh["cbed"][()]
                planning = fh.attrs["fft_planning"]
            diff = float(np.abs(cbed - reference).max() / reference.max())
            same = "yes" if np.array_equal(cbed, measured) else "no"
            rows.append(
                [
                    name,
                    len(walls),
                    f"{statistics.median(walls):.1f}",
                    f"{statistics.median(walls) / ref:.2f}",
                    same,
                    f"{diff:.1e}",
                    planning.split(" plans ")[0],
                ]
            )
    print(f"cell {args.cell} of config.yaml ({gpts} gpts, {batch} positions a batch), 1 thread")
    headers = ["case", "runs", "wall (s, median)", "vs estimate", "= first bit for bit"]
    print(table([*headers, "max diff vs estimate", "planner"], rows))
    print()
    print(f"one ({batch}, {gpts}, {gpts}) complex64 2D FFT, in place, 1 thread:")
    print(table(["planner", "plan (s)", "transform (ms)"], bare_fft(batch, gpts)))


if __name__ == "__main__":
    main()
