"""The cluster profiles (slurm, frontier, summit) checked without a cluster.

* Each profile parses as Snakemake options, points at the paper-scale campaign beside it, uses
  the greedy scheduler, and is reachable as ``--profile NAME`` from the repository root.
* The three campaigns are one campaign: the same cells and physics, only execution settings
  (device, threads, batching, ranks) differ.
* A dry run over the paper-scale campaign counts the jobs and the submissions after grouping.
* The submission lines are those the executors themselves build: Snakemake really runs each
  profile, with fake ``sbatch``/``bsub`` (and friends) first on PATH that record what they are
  given and refuse it (the job then fails at once, no status polling). Simulations run as
  groups of cells, the training as one job of training.ranks tasks.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.workflow import BIN, ROOT, copy_workflow, env

from .helpers import planned, snakemake, write_config

PROFILES = ("slurm", "frontier", "summit")
SIM_GROUP = 85  # cells per simulation submission (a reduction is a job per block, ungrouped)
LOGIN_CORES = "128"  # a login node's CPU count (the workflow profile's `cores: all` there)
PAPER = "profiles/paper.yaml"  # the one paper-scale campaign of every profile

# Fake scheduler commands: each appends {"cmd", "argv", "stdin", "script", "files"} to $FAKE_LOG
# (script: the file submitted, files: the *.sh it names, read before Snakemake deletes them). The
# submitters refuse the job (exit 1), so Snakemake reports it failed without polling.
FAKE = r"""#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
entry = {{"cmd": name, "argv": sys.argv[1:]}}
if name in ("sbatch", "bsub"):
    entry["stdin"] = "" if sys.stdin.isatty() else sys.stdin.read()
    last = sys.argv[-1] if len(sys.argv) > 1 else ""
    if os.path.isfile(last):
        entry["script"] = open(last).read()
        words = entry["script"].split()
        entry["files"] = {{w: open(w).read() for w in words if w.endswith(".sh") and os.path.isfile(w)}}
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps(entry) + "\n")
replies = {{
    "sinfo": "PARTITION\ndebug*\n",
    "scontrol": "MinJobAge               = 600 sec\n",
}}
sys.stdout.write(replies.get(name, ""))
sys.exit(1 if name in ("sbatch", "bsub", "sacct") else 0)
"""
FAKES = ("sbatch", "sinfo", "squeue", "scontrol", "scancel", "sacct", "sacctmgr", "sshare")
FAKES += ("bsub", "bjobs", "bhist", "bkill", "jsrun")


def profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def campaign() -> dict:
    return yaml.safe_load((ROOT / PAPER).read_text())


def training_ranks(name: str) -> int:
    """The Horovod ranks of a training job under profile ``name``: its set-threads, else the
    campaign's training.ranks."""
    for entry in profile(name).get("set-threads") or []:
        rule, n = entry.split("=")
        if rule == "train_classifier":
            return int(n)
    return campaign()["training"]["ranks"]


# --------------------------------------------------------------------------- the files


@pytest.mark.parametrize("name", PROFILES)
def test_profile_is_valid_and_reachable_by_name(name, capsys):
    from snakemake.cli import get_argument_parser, get_profile_dir

    cfg = profile(name)
    assert cfg["configfile"] == PAPER
    assert cfg["scheduler"] == "greedy"
    assert cfg["groups"] == ["simulate=sim"]
    assert cfg["group-components"] == [f"sim={SIM_GROUP}"]
    # per-job resources are integers (a string is an expression Snakemake evaluates per job)
    assert all(isinstance(v, int) for v in (cfg.get("default-resources") or {}).values()) or (
        name == "frontier"  # the Slurm plugin reads sbatch -A/-p only from resources
    )
    # every key is a Snakemake option (an unknown one exits with "unrecognized arguments")
    args = get_argument_parser(profiles=[ROOT / "profiles" / name / "config.yaml"]).parse_args([])
    assert args.executor == {"summit": "cluster-generic"}.get(name, "slurm")
    # `snakemake --profile NAME` from the repository root: the top-level link
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)
        found = get_profile_dir(name)
    finally:
        os.chdir(cwd)
    assert found is not None, f"no ./{name} link to profiles/{name}"
    assert found[1].resolve() == (ROOT / "profiles" / name / "config.yaml").resolve()
    # and its campaign is a valid campaign
    from interface4d.config import validate_config

    validate_config(campaign())


@pytest.mark.parametrize("name", ("hvd-srun", "gpu-slot"))
def test_launcher_scripts_are_executable(name):
    path = ROOT / "workflow" / "scripts" / name
    assert os.access(path, os.X_OK) and path.read_text().startswith("#!/usr/bin/env python3")


def test_hvd_srun_plan_matches_horovodrun():
    """hvd-srun's slot plan for tasks placed by Slurm equals horovodrun's for the same hosts."""
    import importlib.machinery
    import importlib.util

    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

    path = str(ROOT / "workflow" / "scripts" / "hvd-srun")
    loader = importlib.machinery.SourceFileLoader("hvd_srun", path)
    spec = importlib.util.spec_from_loader("hvd_srun", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    hosts = ["a"] * 8 + ["b"] * 8 + ["c"] * 3
    ours = mod.make_plan(hosts)
    theirs = get_host_assignments(parse_hosts("a:8,b:8,c:3"), len(hosts))
    assert ours == [vars(s) for s in theirs]
    assert mod.split_args(["--gpus-per-task=1", "interface4d", "train", "-v"]) == (
        ["--gpus-per-task=1"],
        ["interface4d", "train", "-v"],
    )


def test_gpu_slot_gives_each_command_its_own_gpu(tmp_path):
    script = ROOT / "workflow" / "scripts" / "gpu-slot"
    e = dict(env(), CUDA_VISIBLE_DEVICES="3,5", TMPDIR=str(tmp_path), SLURM_JOB_ID="7")
    e.pop("ROCR_VISIBLE_DEVICES", None)
    cmd = 'echo "$CUDA_VISIBLE_DEVICES"; sleep 1'
    procs = [
        subprocess.Popen([str(script), "sh", "-c", cmd], env=e, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    seen = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(seen) in (["3", "3", "5"], ["3", "5", "5"])  # the third waits for a free one
    amd = dict(e, ROCR_VISIBLE_DEVICES="4,6")
    out = subprocess.run([str(script), "env"], env=amd, capture_output=True, text=True, timeout=60)
    assert "ROCR_VISIBLE_DEVICES=4\n" in out.stdout and "HIP_VISIBLE_DEVICES=0\n" in out.stdout


def test_gpu_profiles_give_each_simulation_its_own_gpu(tmp_path):
    """Profiles simulating on GPUs start every simulate job through gpu-slot (a cluster group
    runs a node's worth at once); the CPU profile runs the same campaign with no prefix, its
    own device, threads and batch (resources: the cells' settings are the same)."""
    wd = copy_workflow(tmp_path / "wd")
    target = "results/sims/t100/step-d1.h5"
    settings = set()
    for name, device, threads, batch in (
        ("frontier", "gpu", 7, 128),
        ("summit", "gpu", 7, 128),
        ("slurm", "cpu", 4, 32),
    ):
        prof = ("--profile", f"profiles/{name}", "--cores", LOGIN_CORES)
        out = snakemake(wd, "-n", "-p", target, *prof).stdout
        lines = [line for line in out.splitlines() if "interface4d simulate" in line]
        (command,) = [line.split("Shell command:", 1)[-1].strip() for line in lines]
        slot = str(wd / "workflow" / "scripts" / "gpu-slot")
        assert command.startswith(f"{slot} interface4d simulate") == (device == "gpu"), command
        assert f"--device {device} --threads {threads} --max-batch {batch}" in command
        settings.add(shlex.split(command.split("interface4d simulate", 1)[1])[1])
    assert len(settings) == 1  # one cell, the same physics on every machine


def test_simulate_command_passes_any_wisdom_folder_as_one_argument(tmp_path):
    """The simulate job's --fftw-wisdom survives Snakemake's quoting: a folder with a space is
    one argument, and INTERFACE4D_FFTW_WISDOM= (empty: estimated plans, README) gives an empty
    value (Snakemake formats an empty field as nothing), not an error."""
    from interface4d.cli import build_parser

    wd = copy_workflow(tmp_path / "wd")
    target = "results/sims/t100/step-d1.h5"
    for folder in ("", str(tmp_path / "wisdom dir")):
        e = dict(env(), INTERFACE4D_FFTW_WISDOM=folder)
        cmd = [str(BIN / "snakemake"), "-n", "-p", "--cores", "1", target]
        out = subprocess.run(cmd, cwd=wd, env=e, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        (line,) = [x for x in out.stdout.splitlines() if "interface4d simulate" in x]
        launcher, command = line.split("interface4d simulate", 1)
        assert launcher.split()[-1] == "interface4d-warm"  # the local CPU launcher
        argv = shlex.split("simulate" + command.split(" 2> ")[0])
        args = build_parser().parse_args(argv)
        assert args.fftw_wisdom == folder and args.output == target, argv


# --------------------------------------------------------------------------- paper scale


def test_paper_scale_dry_run_counts_jobs_and_submissions(tmp_path):
    """14,209 cells: 14,209 simulations in 168 group submissions, 10 reductions (one per block),
    all submissions <= 200."""
    wd = copy_workflow(tmp_path / "paper")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--profile", "profiles/frontier", "--cores", LOGIN_CORES],
        cwd=wd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    stats = job_stats(out)
    cells = stats["simulate"]
    assert cells >= 14000
    grid = campaign()["grid"]
    blocks = len(grid["thickness"]) * 2  # a thickness's step cells; its intermixed cells
    assert stats["reduce"] == blocks == 10
    sims = out.count("Group job sim (jobs in lexicogr. order)")
    assert sims == math.ceil(cells / SIM_GROUP) and "Group job red" not in out
    local = local_rules()
    single = sum(n for rule, n in stats.items() if rule not in local | {"simulate"})
    assert sims + single <= 200, (sims, single, stats)
    # the other profiles group alike and their campaigns hold the same cells (test above)
    for name in ("slurm", "summit"):
        for key in ("groups", "group-components"):
            assert profile(name)[key] == profile("frontier")[key]


@pytest.mark.slow
def test_changing_one_cell_at_paper_scale_plans_that_cell_and_its_aggregations(tmp_path):
    """The 14,209-cell campaign recorded as done, then one cell's settings changed: the summit
    plan holds that cell's simulation and reduction and the jobs that aggregate it, nothing else.

    "Done" is Snakemake's own record: `--touch --forceall` runs every job through its touch
    executor, which writes each job's metadata (params, code, inputs) as a finished job does. The
    outputs are absent during it (for a present output the executor sleeps 0.1 s a job: 47 min
    here); afterwards each recorded output is created, all with one mtime.
    """
    wd = copy_workflow(tmp_path / "paper")
    campaign_file = PAPER
    touch = ("--configfile", campaign_file, "--touch", "--forceall", "--cores", "100000")
    snakemake(wd, *touch, "--quiet", "all", timeout=1800)
    records = [
        base64.urlsafe_b64decode(r.name).decode() for r in (wd / ".snakemake/metadata").iterdir()
    ]
    for record in records:
        path = wd / record
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (1.8e9, 1.8e9))
    cfg = yaml.safe_load((wd / campaign_file).read_text())
    assert sum(r.startswith("results/sims/") for r in records) > 14000
    assert sum(r.startswith("results/reduced/") for r in records) == 10  # the blocks
    summit = ("--profile", "profiles/summit", "--cores", LOGIN_CORES)
    proc = snakemake(wd, "-n", *summit)
    assert "Nothing to be done" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]

    cell = "t200/step-d24"  # not a thickness's showcase cell (that would replot its scan too)
    cfg["overrides"] = [{"cells": cell, "simulation": {"num_configs": 12}}]
    write_config(wd / "override.yaml", cfg)
    jobs = planned(wd, *summit, "--configfile", "override.yaml")
    by_rule: dict[str, set[str]] = {}
    for out, (rule, _) in jobs.items():
        by_rule.setdefault(rule, set()).add(out)
    assert "Params have changed" in jobs[f"results/sims/{cell}.h5"][1]
    assert by_rule == {
        "simulate": {f"results/sims/{cell}.h5"},
        "reduce": {"results/reduced/t200/step.h5"},  # its block: t200's step cells
        "gather_classify": {"results/datasets/classify.h5"},
        "gather_regress": {"results/datasets/regress_t200.h5"},
        "train_classifier": {"results/models/classifier.keras"},
        "train_regressor": {"results/models/regressor_t200.keras"},
        "evaluate_classifier": {"results/metrics/classifier.json"},
        "evaluate_regressors": {"results/metrics/regression.json"},
        "summarise": {"results/metrics/headline.json"},
        "model_card": {"results/models/model_card.json"},
        "all": by_rule.get("all", set()),
    }, {rule: sorted(outs)[:3] for rule, outs in by_rule.items()}


def local_rules() -> set[str]:
    """The Snakefile's `localrules:` (they run on the submit host, never submitted)."""
    block = (ROOT / "Snakefile").read_text().split("localrules:", 1)[1]
    return set(re.findall(r"^\s+(\w+),", block.split("\n\n", 1)[0], flags=re.M))


def job_stats(out: str) -> dict[str, int]:
    block = out.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


# --------------------------------------------------------------------------- submissions


def small_campaign(name: str) -> dict:
    """The profile's campaign cut to one thickness and ~225 cells: one full group of each kind."""
    cfg = campaign()
    cfg["grid"]["thickness"] = [100]
    cfg["grid"]["ti_fraction"] = [0.1, 0.2]
    cfg["grid"]["seeds"] = list(range(100))  # 25 step depths + 200 intermixed cells
    return cfg


def small_cells(name: str) -> list[str]:
    from interface4d.config import validate_config
    from interface4d.grid import enumerate_cells

    return [c.id for c in enumerate_cells(validate_config(small_campaign(name)))[0]]


BLOCKS = ["t100/diffusion", "t100/step"]  # the small campaign's


def group_sizes(name: str, size: int) -> list[int]:
    """Cells per group job of `size` cells for the small campaign: full ones, then the rest."""
    n = len(small_cells(name))
    assert n > SIM_GROUP
    return [size] * (n // size) + [n % size] * bool(n % size)


def layers(name: str, rule: str, width: int, cells: int) -> int:
    """Minutes of ceil(cells / width) layers of `rule` (its runtime in the profile)."""
    return math.ceil(cells / width) * profile(name)["set-resources"][rule]["runtime"]


@pytest.fixture(scope="module")
def fakes(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fakes")
    for name in FAKES:
        (d / name).write_text(FAKE.format(python=sys.executable))
        (d / name).chmod(0o755)
    return d


def submit(name: str, fakes: Path, tmp_path: Path) -> list[dict]:
    """What `snakemake --profile NAME` sends: the simulations (groups), the reductions
    (groups), then the training."""
    wd = copy_workflow(tmp_path / name)
    write_config(wd / "small.yaml", small_campaign(name))
    log = tmp_path / f"{name}.jsonl"
    e = dict(env(), FAKE_LOG=str(log), PATH=f"{fakes}{os.pathsep}{env()['PATH']}")
    base = [str(BIN / "snakemake"), "--profile", name, "--configfile", "small.yaml"]
    base += ["--cores", LOGIN_CORES, "--latency-wait", "1"]
    if profile(name)["executor"] == "slurm":  # no 40 s wait for a first status check
        base += ["--slurm-init-seconds-before-status-checks", "1"]

    # the simulations; the reductions, the simulations present (as files); the training jobs
    # alone, their datasets present: each step's submissions, nothing upstream redone
    def present(paths: list[str]) -> None:
        for path in paths:
            (wd / path).parent.mkdir(parents=True, exist_ok=True)
            (wd / path).touch()

    sims = [f"results/sims/{c}.h5" for c in small_cells(name)]
    datasets = ["results/datasets/classify.h5", "results/datasets/regress_t100.h5"]
    models = ["results/models/classifier.keras", "results/models/regressor_t100.keras"]
    steps = [([], ["--until", "simulate"]), (sims, ["--until", "reduce"]), (datasets, models)]
    for files, targets in steps:
        present(files)
        cmd = [*base, *targets]
        proc = subprocess.run(cmd, cwd=wd, env=e, capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Error in" in out, out[-4000:]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in entries if e["cmd"] in ("sbatch", "bsub")]


def options(argv: list[str]) -> dict[str, str]:
    """`--key=value` / `--key value` / `-k value` pairs of a command line (flags map to '')."""
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and "=" in arg:
            k, v = arg.split("=", 1)
            out[k] = v
        elif arg.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            out[arg] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            out[arg] = ""
        i += 1
    return out


def sbatch_lines(entries: list[dict]) -> dict[str, list[dict[str, str]]]:
    """{"sim" (the simulation groups) or rule: [sbatch options ...]}; "cells": the cells a
    group runs, "block": the block a reduce job reduces."""
    lines: dict[str, list[dict[str, str]]] = {}
    for e in entries:
        opts = options(e["argv"])
        wrap = opts.get("--wrap", "")
        rule = re.search(r"--target-jobs '?(\w+):", wrap)[1]  # 'rule:wildcards' ...
        if "--local-groupid" in wrap:
            assert rule == "simulate" and "reduce:" not in wrap, wrap  # only simulations
            rule = "sim"
        opts["cells"] = str(len(re.findall(r"\w+:cell=", wrap)))
        block = re.search(r"reduce:block=([\w./-]+)", wrap)
        opts["block"] = block[1] if block else ""
        lines.setdefault(rule, []).append(opts)
    return lines


def by_size(groups: list) -> list:
    return sorted(groups, key=lambda o: -int(o["cells"]))


def test_slurm_submission_lines(fakes, tmp_path):
    lines = sbatch_lines(submit("slurm", fakes, tmp_path))
    sims = by_size(lines["sim"])
    assert [int(g["cells"]) for g in sims] == group_sizes("slurm", SIM_GROUP)  # per submission
    assert sorted(r["block"] for r in lines["reduce"]) == BLOCKS  # one job per block
    g = sims[0]
    # layers of node_slots = 16 cells x 4 threads: 64 cores; 6 layers x 30 min
    assert g["--cpus-per-task"] == "64" and g["--ntasks"] == "1", g
    assert g["-t"] == str(layers("slurm", "simulate", 16, SIM_GROUP))
    mem = int(g["--mem"])  # a layer: 16 simulations, each the rule's estimate (> 1 GB)
    assert mem % 16 == 0 and mem // 16 > 1000, g
    res = profile("slurm")["set-resources"]["reduce"]
    for r in lines["reduce"]:  # the block's cells 8 at once
        assert r["--cpus-per-task"] == "8" and r["--mem"] == str(res["mem_mb"]), r
        assert r["-t"] == str(res["runtime"])
    for job in (g, *lines["reduce"]):
        assert job["-p"] == "debug" and "-A" not in job  # sinfo's default; Slurm's default account
        assert "--gpus" not in job and "--nodes" not in job
    ranks = training_ranks("slurm")
    for rule in ("train_classifier", "train_regressor"):
        (t,) = lines[rule]
        assert t["--ntasks"] == str(ranks) and t["--cpus-per-task"] == "1", t
        assert "--nodes" not in t and "--gpus" not in t


def test_frontier_submission_lines(fakes, tmp_path):
    lines = sbatch_lines(submit("frontier", fakes, tmp_path))
    sims = by_size(lines["sim"])
    assert [int(g["cells"]) for g in sims] == group_sizes("frontier", SIM_GROUP)
    assert sorted(r["block"] for r in lines["reduce"]) == BLOCKS
    g = sims[0]
    # a whole node: 8 GCDs and 8 x 7 cores; 11 layers x 5 min
    assert g["--gpus"] == "8" and g["--cpus-per-task"] == "56", g
    assert "--ntasks-per-gpu" not in g and "--ntasks" not in g  # one task: the group's Snakemake
    assert g["-t"] == str(layers("frontier", "simulate", 8, SIM_GROUP))
    for r in lines["reduce"]:  # a reduction: the node's cores, no GPU
        assert r["--cpus-per-task"] == "56" and "--gpus" not in r, r
        assert r["-t"] == str(profile("frontier")["set-resources"]["reduce"]["runtime"])
    for job in (g, *lines["reduce"]):
        assert job["-A"] == "CHANGE_ME" and job["-p"] == "batch"
    ranks = training_ranks("frontier")
    for rule in ("train_classifier", "train_regressor"):
        (t,) = lines[rule]
        assert t["--ntasks"] == str(ranks) and t["--cpus-per-task"] == "7", t
        assert t["--nodes"] == str(math.ceil(ranks / 8))
        assert t["--gpus-per-task"] == "1" and t["--gpu-bind"] == "closest"
        assert "--gpus" not in t and t["-A"] == "CHANGE_ME"


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def bsub_lines(entries: list[dict]) -> dict[str, list[tuple[dict[str, str], dict, str, str]]]:
    """{rule or group: [(bsub options, job properties, batch script, job script) ...]}."""
    lines: dict[str, list] = {}
    for e in entries:
        script = e["script"]
        last = shlex.split(last_line(script))
        body = e["files"][last[-1]] if last[0] == "jsrun" else script  # jsrun ... sh BODY
        props = json.loads(re.search(r"# properties = (.*)", body)[1])
        key = props["groupid"] if props["type"] == "group" else props["rule"]
        lines.setdefault(key, []).append((options(e["argv"][:-1]), props, script, body))
    return lines


def test_summit_submission_lines(fakes, tmp_path):
    lines = bsub_lines(submit("summit", fakes, tmp_path))
    groups = sorted(lines["sim"], key=lambda g: -g[3].count("simulate:cell="))
    cells = [g[3].count("simulate:cell=") for g in groups]  # the group's --target-jobs
    assert cells == group_sizes("summit", SIM_GROUP)
    assert sorted(re.search(r"reduce:block=([\w./-]+)", g[3])[1] for g in lines["reduce"]) == (
        BLOCKS
    )
    for opts, props, script, body in [groups[0], *lines["reduce"]]:
        rule = props["rule"] if props["type"] == "single" else "simulate"
        # whole node, MPS; simulations: 15 layers of 6 cells x 3 min; a reduction: its runtime
        assert opts["-nnodes"] == "1" and opts["-alloc_flags"] == "gpumps", opts
        assert opts["-P"] == "CHANGE_ME" and opts["-q"] == "batch"  # lsf-submit's arguments
        width = 6 if rule == "simulate" else 1
        assert opts["-W"] == str(layers("summit", rule, width, cells[0] if width > 1 else 1))
        assert "-n" not in opts and "-R" not in opts  # no slot or memory requests
        # the job runs on its compute node through jsrun, its Snakemake with the node's cores
        jsrun = shlex.split(last_line(script))
        assert jsrun[0] == "jsrun" and jsrun[-2:-1] == ["sh"], script
        assert options(jsrun)["--nrs"] == "1" and options(jsrun)["--gpu_per_rs"] == "6"
        assert options(jsrun)["--cpu_per_rs"] == "42"
        assert re.search(r" --cores 42 ", body)
    ranks = training_ranks("summit")
    for rule in ("train_classifier", "train_regressor"):
        ((opts, props, script, body),) = lines[rule]
        assert opts["-nnodes"] == str(math.ceil(ranks / 6)), opts
        assert opts["-alloc_flags"] == "gpumps" and int(opts["-W"]) >= 60
        launcher = shlex.split(props["resources"]["launcher"])
        assert launcher[0] == "jsrun" and options(launcher)["--nrs"] == str(ranks)
        assert options(launcher)["--gpu_per_rs"] == "1"
        assert options(launcher)["--rs_per_host"] == "6"
        assert script == body and not last_line(script).startswith("jsrun")  # launch node
