"""The demo campaign end to end on this machine, from an empty results folder.

Runs `snakemake --cores N` on config.yaml in a temp copy of the workflow (so results/ of the
checkout is untouched) and prints the wall time, the number of cells, and the per-rule CPU
seconds from the jobs' own benchmark files.

    .venv/bin/python benchmarks/demo_campaign.py [--cores 2] [--config config.yaml]

Target (issue 2): >= 60 cells over >= 3 thicknesses simulated in <= 15 min on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import copy_workflow  # noqa: E402

BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    wd = Path(tempfile.mkdtemp(prefix="i4d-demo-"))
    copy_workflow(wd, Path(args.config))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    t = time.perf_counter()
    subprocess.run(
        [str(BIN / "snakemake"), "--cores", str(args.cores), "--configfile", "campaign.yaml"],
        cwd=wd,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t
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
    for rule, secs in sorted(per_rule.items()):
        print(
            f"  {rule}: {len(secs)} jobs, mean {sum(secs) / len(secs):.1f} s, "
            f"min {min(secs):.1f} s, max {max(secs):.1f} s (job wall, each on 1 core)"
        )
    if args.keep:
        print(f"kept {wd}")
    else:
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
