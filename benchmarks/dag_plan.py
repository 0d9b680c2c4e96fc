"""Planning time of the paper-scale campaign: `snakemake -n` over >= 14,000 cells.

Prints, in one run, the wall time and peak memory of the dry run through the summit profile
(grouped submissions) and the number of simulate jobs and group submissions it plans.

    .venv/bin/python benchmarks/dag_plan.py [--profile profiles/summit]

Target: <= 30 s, <= 200 cluster submissions (measured in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="profiles/summit")
    args = ap.parse_args()
    cmd = [
        str(BIN / "snakemake"),
        "-n",
        "--profile",
        args.profile,
        "--until",
        "simulate",
    ]
    t = time.perf_counter()
    quiet = subprocess.run(cmd + ["-q"], cwd=ROOT, capture_output=True, text=True)
    t_quiet = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    t = time.perf_counter()
    full = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    t_stats = time.perf_counter() - t
    if quiet.returncode or full.returncode:
        sys.exit(quiet.stderr[-3000:] + full.stderr[-3000:])
    out = full.stdout + full.stderr
    jobs = int(next(r.split()[1] for r in out.splitlines() if r.startswith("simulate ")))
    submissions = len(re.findall(r"Group job sim ", out))  # one per grouped submission
    print(
        f"{'profile':>16} {'simulate jobs':>14} {'plan -q (s)':>12} {'plan+print (s)':>15} "
        f"{'peak MB':>8} {'submissions':>12}"
    )
    print(
        f"{args.profile:>16} {jobs:>14} {t_quiet:12.1f} {t_stats:15.1f} {peak_mb:8.0f} "
        f"{submissions:>12}"
    )


if __name__ == "__main__":
    main()
