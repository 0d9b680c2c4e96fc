"""Workflow overhead per cell: our simulate entry point vs a bare abTEM call, same settings.

Each variant runs as a fresh process (both pay Python + abTEM imports), alternating, `--repeats`
times; the medians and their ratio are printed side by side. A third column runs the same cells
through Snakemake (one invocation, `--cores 1`) and divides by the number of cells.

    .venv/bin/python benchmarks/simulate_overhead.py [--config config.yaml] [--cell t100/step-d3]

Target: entry point / bare <= 1.1 (measured in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

from support.workflow import BIN, copy_workflow
from support.workflow import env as venv_env

BARE = r"""
import json, sys, numpy as np, abtem, ase.io
settings = json.loads(open(sys.argv[1]).read())
atoms = ase.io.read(sys.argv[2])
sim = settings["simulation"]
abtem.config.set({"diagnostics.progress_bar": False, "fftw.threads": 1})
fp = abtem.FrozenPhonons(atoms, sim["num_configs"], sigmas=settings["structure"]["phonon_sigmas"],
                         seed=settings["phonon_seed"])
pot = abtem.Potential(fp, gpts=sim["gpts"], slice_thickness=sim["slice_thickness"],
                      projection="infinite", parametrization="lobato")
probe = abtem.Probe(energy=sim["energy"], semiangle_cutoff=sim["semiangle_cutoff"])
a = settings["structure"]["lattice_constant"]; n = settings["structure"]["interface_layer"]
xc = (n - 0.5) * a; w = sim["scan"]["window_x"]
scan = abtem.GridScan(start=(xc + w[0], 0), end=(xc + w[1], a), gpts=sim["scan"]["gpts"],
                      endpoint=False)
m = probe.scan(pot, scan=scan, detectors=abtem.PixelatedDetector(max_angle=sim["detector_max_angle"]),
               max_batch=int(sys.argv[4]))
m = m.compute(scheduler="synchronous")
np.save(sys.argv[3], m.array)
"""


def timed(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--cell", default="t100/step-d3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--snakemake-cells", type=int, default=4)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from ase.io import write

    from interface4d.config import load_config
    from interface4d.grid import enumerate_cells
    from interface4d.settings import cell_settings
    from interface4d.structures import build_from_settings

    config = load_config(args.config)
    settings = cell_settings(config, args.cell)
    max_batch = config["simulation"]["max_batch"]
    env = venv_env(OMP_NUM_THREADS="1")
    tmp = Path(tempfile.mkdtemp(prefix="i4d-overhead-"))
    try:
        (tmp / "settings.json").write_text(json.dumps(settings))
        write(tmp / "atoms.extxyz", build_from_settings(settings))
        (tmp / "bare.py").write_text(BARE)
        bare_cmd = [
            sys.executable,
            str(tmp / "bare.py"),
            str(tmp / "settings.json"),
            str(tmp / "atoms.extxyz"),
            str(tmp / "bare.npy"),
            str(max_batch),
        ]
        ours_cmd = [
            str(BIN / "interface4d"),
            "simulate",
            "--settings",
            json.dumps(settings),
            "-o",
            str(tmp / "ours.h5"),
            "--max-batch",
            str(max_batch),
        ]
        timed(bare_cmd, env=env)  # warm the file cache and FFTW wisdom alike for both
        bare, ours = [], []
        for _ in range(args.repeats):
            bare.append(timed(bare_cmd, env=env))
            ours.append(timed(ours_cmd, env=env))

        # Snakemake: N cells of the same thickness in one invocation, per cell
        t_str = args.cell.split("/")[0]
        cells = [c.id for c in enumerate_cells(config)[0] if c.id.startswith(t_str + "/")]
        cells = cells[: args.snakemake_cells]
        wd = tmp / "wf"
        copy_workflow(wd, Path(args.config))
        targets = [f"results/sims/{c}.h5" for c in cells]
        smk = timed(
            [str(BIN / "snakemake"), *targets, "--cores", "1", "--configfile", "campaign.yaml"],
            cwd=wd,
            env=env,
        ) / len(cells)
        bare_cells = []
        for c in cells:
            s = cell_settings(config, c)
            (tmp / "s.json").write_text(json.dumps(s))
            write(tmp / "a.extxyz", build_from_settings(s))
            bare_cells.append(
                timed(
                    [
                        sys.executable,
                        str(tmp / "bare.py"),
                        str(tmp / "s.json"),
                        str(tmp / "a.extxyz"),
                        str(tmp / "b.npy"),
                        str(max_batch),
                    ],
                    env=env,
                )
            )
        smk_bare = statistics.mean(bare_cells)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    mb, mo = statistics.median(bare), statistics.median(ours)
    print(f"cell {args.cell} ({args.config}), {args.repeats} repeats, median wall seconds:")
    print(f"{'bare abTEM':>14} {'entry point':>12} {'ratio':>7}")
    print(f"{mb:14.2f} {mo:12.2f} {mo / mb:7.3f}")
    print(
        f"snakemake, {len(cells)} cells of {t_str} in one run: per cell {smk:.2f} s vs bare "
        f"{smk_bare:.2f} s per cell: ratio {smk / smk_bare:.3f}"
    )


if __name__ == "__main__":
    main()
