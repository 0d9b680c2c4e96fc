"""Run real Snakemake in a temp copy of the workflow (:func:`support.workflow.copy_workflow`)
and read what it plans."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from support.workflow import BIN, env


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """``snakemake ARGS`` started in ``workdir`` in its own process group (so that a test can
    kill the whole run), its output merged into one text pipe."""
    return subprocess.Popen(
        [str(BIN / "snakemake"), *args],
        cwd=workdir,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 600):
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", *args],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    return proc


def planned(workdir: Path, *args: str) -> dict[str, tuple[str, str]]:
    """Dry run: {first output of each planned job: (rule, reason)}."""
    proc = snakemake(workdir, "-n", *args)
    text = proc.stdout + proc.stderr
    jobs: dict[str, tuple[str, str]] = {}
    rule = output = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("rule ") and s.endswith(":"):
            rule, output = s[5:-1], None
        elif s.startswith("localrule ") and s.endswith(":"):
            rule, output = s[10:-1], None
        elif rule and s.startswith("output:") and output is None:
            output = s.split(":", 1)[1].strip().split(",")[0]
        elif rule and s.startswith("reason:"):
            jobs[output or rule] = (rule, s.split(":", 1)[1].strip())
            rule = None
    return jobs


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
