"""py4DSTEM in a virtual environment of its own, for the interoperability tests.

py4DSTEM 0.14.18 pins ``numpy<2`` and abTEM 1.0.11 needs NumPy 2, so they cannot share the
project's environment. :func:`python` makes (once, under a file lock) ``.venv-py4dstem`` beside
``.venv`` with py4DSTEM and rosettasciio in it, and returns its interpreter; :func:`run` runs a
Python snippet there. ``INTERFACE4D_PY4DSTEM_VENV`` moves the folder.

Standard library only.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from support.workflow import ROOT

PY4DSTEM = "py4dstem==0.14.18"
PACKAGES = (PY4DSTEM, "rosettasciio==0.15.0")


def venv_dir() -> Path:
    return Path(os.environ.get("INTERFACE4D_PY4DSTEM_VENV", ROOT / ".venv-py4dstem"))


def python() -> Path:
    """The venv's interpreter, the venv made first if it is missing (about 1-2 min)."""
    folder = venv_dir()
    exe = folder / "bin" / "python"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".complete"
        if not done.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
            pip = [str(exe), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, *PACKAGES], check=True)
            done.write_text("\n".join(PACKAGES) + "\n")
    return exe


def run(code: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``code`` (``python -c``) in the py4DSTEM venv with ``args``; raise with its stderr
    if it fails."""
    proc = subprocess.run(
        [str(python()), "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"py4DSTEM venv: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc
