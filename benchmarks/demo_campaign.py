"""The demo campaign end to end on this machine, from an empty results folder.

Runs what `make demo` runs after the install -- `snakemake --cores N` (simulations, reduction,
training, evaluation) then `snakemake --report results/report.html` -- on config.yaml in a temp
copy of the workflow (so results/ of the checkout is untouched), and prints the wall time of
each, the number of cells, the per-rule job times from the jobs' own benchmark files and the
campaign's headline numbers (results/metrics/headline.json).

    .venv/bin/python benchmarks/demo_campaign.py [--cores 2] [--config config.yaml]

Targets: >= 60 cells over >= 3 thicknesses simulated in <= 15 min on 2 cores (issue 2); the whole
campaign with evaluation and report in <= 20 min (issue 5).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import ROOT, header

from support.workflow import BIN, copy_workflow
from support.workflow import env as venv_env


def empty_caches() -> None:
    """Remove the FFTW wisdom folder and abTEM's Numba cache files (a fresh machine has none)."""
    from importlib.util import find_spec

    shutil.rmtree(Path.home() / ".cache/interface4d/fftw", ignore_errors=True)
    n = 0
    for f in Path(find_spec("abtem").origin).parent.rglob("__pycache__/*.nb[ic]"):
        f.unlink()
        n += 1
    print(f"emptied FFTW wisdom and {n} Numba cache files")


def digests(wd: Path) -> dict:
    """sha256 of each dataset file and of each trained network's weights: equal between two runs
    exactly when their simulations (and so everything downstream) are equal."""
    import hashlib

    out = {}
    import h5py

    for p in sorted((wd / "results/datasets").glob("*.h5")):
        with h5py.File(p, "r") as f:
            out[p.name] = hashlib.sha256(f["x"][()].tobytes()).hexdigest()[:16]
    for p in sorted((wd / "results/models").glob("*_provenance.json")):
        out[p.name] = json.loads(p.read_text())["weights"]["sha256"][:16]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--warm-caches", action="store_true",
                    help="keep FFTW wisdom and abTEM's Numba cache (default: empty them first, "
                         "as on a fresh machine)")  # fmt: skip
    args = ap.parse_args()
    header("the demo campaign end to end (benchmarks/demo_campaign.py)")
    if not args.warm_caches:
        empty_caches()
    wd = Path(tempfile.mkdtemp(prefix="i4d-demo-"))
    copy_workflow(wd, Path(args.config))
    env = venv_env()
    t = time.perf_counter()
    subprocess.run(
        [str(BIN / "snakemake"), "--cores", str(args.cores), "--configfile", "campaign.yaml"],
        cwd=wd,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(
        [str(BIN / "snakemake"), "--cores", str(args.cores), "--configfile", "campaign.yaml",
         "--report", "results/report.html"],
        cwd=wd, env=env, check=True, capture_output=True,
    )  # fmt: skip
    wall_report = time.perf_counter() - t
    per_rule: dict[str, list[float]] = defaultdict(list)
    for tsv in (wd / "results/benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(wd / "results/benchmarks").parts[0].removesuffix(".tsv")
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
            per_rule[rule].append(float(row["s"]))
    cells = len(list((wd / "results/sims").rglob("*.h5")))
    print(
        f"demo campaign ({args.config}) on {args.cores} cores: {cells} cells, "
        f"wall {wall:.0f} s ({wall / 60:.1f} min)"
    )
    print(
        f"  load average after the run (1/5/15 min): {' / '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"  report: {wall_report:.1f} s, {(wd / 'results/report.html').stat().st_size / 1e6:.1f} MB;"
        f" total {wall + wall_report:.0f} s ({(wall + wall_report) / 60:.1f} min)"
    )
    for rule, secs in sorted(per_rule.items()):
        print(
            f"  {rule}: {len(secs)} jobs, mean {sum(secs) / len(secs):.1f} s, "
            f"min {min(secs):.1f} s, max {max(secs):.1f} s (job wall, each on 1 core)"
        )
    head = wd / "results/metrics/headline.json"
    if head.exists():
        print("headline numbers (results/metrics/headline.json):")
        print(json.dumps(json.loads(head.read_text()), indent=1)[:4000])
    print("digests:", json.dumps(digests(wd)))
    if args.keep:
        print(f"kept {wd}")
    else:
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
