"""A temp copy of the workflow to run real Snakemake in, and the environment to run it with.

Standard library only: the benchmark scripts import it before anything heavy.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What a run of the workflow needs from the checkout (benchmarks/dag_scaling.py also archives
# these paths at an older git revision).
WORKFLOW = ("Snakefile", "workflow", "profiles", "envs", "src", "config.yaml", "pyproject.toml")
# The README's `--profile NAME` links at the top of the checkout (symlinks into profiles/).
PROFILE_LINKS = ("slurm", "frontier", "summit")


def copy_workflow(dest: Path, campaign: Path | None = None, as_name: str = "campaign.yaml") -> Path:
    """A copy of the workflow in ``dest`` (created if missing), the profile links included, and
    with ``campaign`` a copy of that config file as ``dest/as_name``. Returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src = ROOT / name
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(src, dest / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    for link in PROFILE_LINKS:
        if (ROOT / link).is_symlink():
            (dest / link).symlink_to(os.readlink(ROOT / link))
    if campaign is not None:
        shutil.copy2(campaign, dest / as_name)
    return dest


def env(**extra: str) -> dict[str, str]:
    """The environment with the venv's console scripts (snakemake, interface4d) first on PATH,
    plus ``extra`` variables."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
