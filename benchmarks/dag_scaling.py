"""How planning scales with the campaign: `snakemake -n` at ~1k, ~5k and ~15k cells.

For each size, the paper-scale campaign (profiles/paper.yaml) is shrunk (seeds first,
then Ti fractions and step fractions, all five thicknesses kept) to about that many cells and
written over profiles/paper.yaml in a temp copy of the workflow (support/workflow.py
`copy_workflow`; the checkout's results/ are untouched and every job is planned). There, the
whole campaign DAG (simulate, reduce, gather, train, evaluate) is planned twice through the
summit profile:

* `snakemake -n -q --profile profiles/summit`: wall time and peak RSS of the snakemake
  process (wait4 rusage of that process tree);
* `snakemake -n --profile profiles/summit` (every job printed): wall time, and from its job
  list the jobs, the simulate group submissions (`Group job sim`, as benchmarks/dag_plan.py
  counts them) and all cluster submissions (group jobs plus every ungrouped job that is not a
  `localrules` entry of the Snakefile).

    .venv/bin/python benchmarks/dag_scaling.py [--cells 1000 5000 full] [--repeats 1]
    .venv/bin/python benchmarks/dag_scaling.py --quick        # 100 and 300 cells, ~1 min
    .venv/bin/python benchmarks/dag_scaling.py --cells full --baseline fdfc031 --repeats 3

`--baseline REV` also plans the largest size with the workflow as it was at git revision REV
(Snakefile, rules, profiles and library from `git archive`, the same campaign), interleaved
with the current one in the same run: this machine's speed varies from hour to hour, so only
figures taken side by side compare.

`full` is the campaign file as it is (14,209 cells). A size above it adds seeds (0, 1, 2, ...).
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from _common import ROOT, header, run_measured, table

from support.workflow import BIN, WORKFLOW, copy_workflow
from support.workflow import env as venv_env

PROFILE = "profiles/summit"


def campaign_path(wd: Path) -> Path:
    """Where the summit profile of the workflow in ``wd`` reads its campaign (its configfile:
    profiles/paper.yaml now, profiles/summit/campaign.yaml in older revisions)."""
    import yaml

    return wd / yaml.safe_load((wd / PROFILE / "config.yaml").read_text())["configfile"]


TOLERANCE = 0.03  # a shrunk grid within 3 % of the target keeps as many grid axes as it can


def count_cells(config: dict) -> int:
    from interface4d.grid import enumerate_cells

    return len(enumerate_cells(config)[0])


def shrink(campaign: dict, target: int) -> dict:
    """A copy of ``campaign`` with about ``target`` cells.

    Among (every s-th step fraction, the first k Ti fractions, n seeds), prefer the least shrunk
    step and Ti axes that come within TOLERANCE of the target, else the closest.
    """
    grid = campaign["grid"]
    fractions, tis, seeds = grid["step_fraction"], grid["ti_fraction"], list(grid["seeds"])
    n_t = len(grid["thickness"])
    best = None
    for stride in range(1, len(fractions) + 1):
        for k in range(len(tis), 0, -1):
            trial = copy.deepcopy(campaign)
            trial["grid"].update(step_fraction=fractions[::stride], ti_fraction=tis[:k], seeds=[])
            steps = count_cells(trial)
            n = max(1, round((target - steps) / (n_t * k)))
            more = [s for s in range(max(seeds) + 1, max(seeds) + 1 + n - len(seeds))]
            trial["grid"]["seeds"] = (seeds + more)[:n]
            err = abs(steps + n_t * k * n - target)
            key = (err > TOLERANCE * target, stride, -k, err)
            if best is None or key < best[0]:
                best = (key, trial)
        if best[0][0] is False:
            break  # the least shrunk step axis already fits
    return best[1]


def localrules(snakefile: Path) -> set[str]:
    """Rule names of the Snakefile's `localrules:` blocks (they never go to the cluster)."""
    names: set[str] = set()
    inside = False
    for line in snakefile.read_text().splitlines():
        if line.startswith("localrules:"):
            inside = True
            names.update(re.findall(r"\w+", line.split(":", 1)[1]))
        elif inside and (not line.strip() or line[0] in " \t"):
            names.update(re.findall(r"\w+", line.split("#", 1)[0]))
        else:
            inside = False
    return names


def parse_plan(text: str, local: set[str]) -> dict[str, int]:
    """Jobs, simulate jobs and submissions from a printed dry run."""
    stats = Counter()
    in_stats = False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            in_stats = True
        elif in_stats and re.match(r"^\w+\s+\d+$", line):
            name, n = line.split()
            stats[name] = int(n)
        elif in_stats and not line.strip():
            in_stats = bool(not stats)  # the table ends at its first blank line after rows
    groups = len(re.findall(r"Group job (\S+) \(", text))
    sim_groups = len(re.findall(r"Group job sim \(", text))
    red_groups = len(re.findall(r"Group job red \(", text))
    top = re.findall(r"^(?:local)?rule (\w+):$", text, re.M)  # unindented: not inside a group
    grouped = len(re.findall(r"^\s+(?:local)?rule \w+:$", text, re.M))
    ungrouped_remote = sum(1 for r in top if r not in local)
    return {
        "jobs": stats["total"],
        "simulate": stats["simulate"],
        "grouped": grouped,
        "sim_groups": sim_groups,
        "red_groups": red_groups,
        "submissions": groups + ungrouped_remote,
        "ungrouped_by_rule": dict(Counter(r for r in top if r not in local)),
    }


def plan(wd: Path, quiet: bool, timeout: float, extra: Sequence[str] = ()):
    cmd = [str(BIN / "snakemake"), "-n", "--profile", PROFILE, *extra]
    if quiet:
        cmd.append("-q")
    res = run_measured(cmd, cwd=wd, env=venv_env(), timeout=timeout)
    if res.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {wd} ({res.returncode}):\n{res.tail()}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--cells",
        nargs="+",
        default=["1000", "5000", "full"],
        help="target cell counts, or 'full' for the campaign as is (default: 1000 5000 full)",
    )
    ap.add_argument("--campaign", default=str(campaign_path(ROOT)))
    ap.add_argument("--repeats", type=int, default=1, help="runs per size; medians reported")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per snakemake run")
    ap.add_argument("--quick", action="store_true", help="100 and 300 cells (a check, ~1 min)")
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also plan the largest size with the workflow at git revision REV, side by side",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp folders")
    ap.add_argument(
        "--grouping",
        action="append",
        default=[],
        metavar="ARGS",
        help="also plan the largest size with these extra snakemake arguments (another grouping),"
        " e.g. --grouping='--groups simulate=sim reduce=sim --group-components sim=100'",
    )
    args = ap.parse_args()
    if args.quick:
        args.cells = ["100", "300"]
    sys.path.insert(0, str(ROOT / "src"))
    import yaml

    header("snakemake dry-run scaling through the summit profile (benchmarks/dag_scaling.py)")
    with open(args.campaign) as fh:
        campaign = yaml.safe_load(fh)
    local = localrules(ROOT / "Snakefile")
    rows, notes, alt_rows = [], [], []
    for i, target in enumerate(args.cells):
        config = campaign if target == "full" else shrink(campaign, int(target))
        cells = count_cells(config)
        wd = Path(tempfile.mkdtemp(prefix=f"i4d-dag{cells}-"))
        try:
            copy_workflow(wd)
            with open(campaign_path(wd), "w") as fh:
                yaml.safe_dump(config, fh, sort_keys=False)
            quiet, full = [], []
            for _ in range(args.repeats):
                quiet.append(plan(wd, True, args.timeout))
                full.append(plan(wd, False, args.timeout))
            last = i == len(args.cells) - 1
            groupings = args.grouping if last else []
            for extra in groupings:  # the largest size, planned with other groupings
                q = [plan(wd, True, args.timeout, extra.split()) for _ in range(args.repeats)]
                f = [plan(wd, False, args.timeout, extra.split()) for _ in range(args.repeats)]
                c = parse_plan(f[-1].stdout + f[-1].stderr, local)
                alt_rows.append([extra, *medians(q, f), c["jobs"], c["submissions"]])
            if last and args.baseline:
                base = baseline_workflow(args.baseline, wd.parent / f"{wd.name}-base", config)
                try:
                    bq, bf, cq, cf = [], [], [], []
                    for _ in range(args.repeats):  # interleaved: the same machine state
                        bq.append(plan(base, True, args.timeout))
                        cq.append(plan(wd, True, args.timeout))
                        bf.append(plan(base, False, args.timeout))
                        cf.append(plan(wd, False, args.timeout))
                    c = parse_plan(bf[-1].stdout + bf[-1].stderr, local)
                    alt_rows.append([f"baseline {args.baseline}", *medians(bq, bf), c["jobs"],
                                     c["submissions"]])  # fmt: skip
                    c = parse_plan(cf[-1].stdout + cf[-1].stderr, local)
                    alt_rows.append(
                        ["this checkout", *medians(cq, cf), c["jobs"], c["submissions"]]
                    )
                finally:
                    shutil.rmtree(base, ignore_errors=True)
        finally:
            if args.keep:
                print(f"kept {wd}")
            else:
                shutil.rmtree(wd, ignore_errors=True)
        counts = parse_plan(full[-1].stdout + full[-1].stderr, local)
        if counts["simulate"] != cells:
            sys.exit(
                f"{cells} cells but {counts['simulate']} simulate jobs planned: check the plan"
            )
        g = config["grid"]
        rows.append(
            [
                cells,
                counts["jobs"],
                f"{statistics.median(r.wall_s for r in quiet):.1f}",
                f"{max(r.peak_rss_mb for r in quiet):.0f}",
                f"{statistics.median(r.wall_s for r in full):.1f}",
                f"{max(r.peak_rss_mb for r in full):.0f}",
                f"{counts['sim_groups']} + {counts['red_groups']}",
                counts["submissions"],
            ]
        )
        notes.append(
            f"{cells} cells: {len(g['thickness'])} thicknesses x {len(g['step_fraction'])} step "
            f"fractions, {len(g['ti_fraction'])} Ti fractions x {len(g['seeds'])} seeds; "
            f"ungrouped cluster jobs by rule: {counts['ungrouped_by_rule']}"
        )
    print(
        table(
            [
                "cells",
                "jobs",
                "plan -n -q (s)",
                "peak RSS (MB)",
                "plan+print (s)",
                "peak RSS print (MB)",
                "sim + red submissions",
                "all submissions",
            ],
            rows,
        )
    )
    print()
    print(
        f"profile {PROFILE}; the whole DAG (default target), outputs missing; {args.repeats} run(s)"
    )
    print(f"localrules (never submitted): {', '.join(sorted(local))}")
    for n in notes:
        print(n)
    if alt_rows:
        print()
        alt_rows.insert(
            0, ["(the profile as it is)", rows[-1][2], rows[-1][4], rows[-1][1], rows[-1][-1]]
        )
        print(
            f"{rows[-1][0]} cells, other groupings (extra arguments after --profile {PROFILE}) "
            "and other revisions of the workflow (medians; baseline rows interleaved with the "
            "checkout's):"
        )
        headers = ["workflow / grouping", "plan -n -q (s)", "plan+print (s)", "jobs"]
        print(table([*headers, "all submissions"], alt_rows))


def medians(quiet, full) -> list[str]:
    return [
        f"{statistics.median(r.wall_s for r in quiet):.1f}",
        f"{statistics.median(r.wall_s for r in full):.1f}",
    ]


def baseline_workflow(rev: str, dest: Path, config: dict) -> Path:
    """The workflow at git revision ``rev`` in ``dest``, with ``config`` as its summit campaign."""
    import subprocess

    import yaml

    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, *WORKFLOW], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    with open(campaign_path(dest), "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    return dest


if __name__ == "__main__":
    main()
