"""The install: one pinned stack in pyproject.toml, envs/ and the Makefile; the README's commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line.strip())
        if m:
            out[m[1].lower().split("[")[0]] = m[2]
    return out


def test_conda_env_pins_agree_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _pins(project["dependencies"])
    env = yaml.safe_load((ROOT / "envs/interface4d.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins(pip)
    assert pyproject == conda
    assert "python=3.11" in env["dependencies"]
    assert project["requires-python"].startswith(">=3.11")
    assert pyproject["tensorflow-cpu"] == "2.18.1" and pyproject["abtem"] == "1.0.11"
    assert pyproject["numpy"].startswith("2.0.")


def test_horovod_pin_is_the_one_the_makefile_builds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    hvd = _pins(project["optional-dependencies"]["horovod"])["horovod"]
    makefile = (ROOT / "Makefile").read_text()
    assert f"'horovod=={hvd}'" in makefile
    assert "--no-build-isolation" in makefile and "HOROVOD_WITH_TENSORFLOW=1" in makefile


def test_installed_versions_match_pins():
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, pin in _pins(project["dependencies"]).items():
        assert version(name) == pin, name


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```bash"
    assert lines[1].startswith("make demo") and lines[2].startswith("make test")
    assert lines[3] == "```"
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_every_rule_has_log_and_conda():
    text = "\n".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    rules = re.findall(r"^rule (\w+):", text, flags=re.M)
    assert rules
    blocks = re.split(r"^rule \w+:", text, flags=re.M)[1:]
    for name, block in zip(rules, blocks, strict=True):
        assert "log:" in block, name
        assert "conda:" in block, name


def test_snakefile_imports_no_heavy_library():
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'src');"
        "import interface4d.physics, interface4d.config, interface4d.grid, interface4d.settings;"
        "bad = [m for m in ('abtem', 'tensorflow', 'ase', 'h5py', 'emdfile') if m in sys.modules];"
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_simulation_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, interface4d.simulate, interface4d.cli, abtem;"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_second_install_is_a_no_op():
    """`make test` installed first; asking again must find nothing to do (no rebuild)."""
    import shutil
    import subprocess

    if shutil.which("make") is None or not (ROOT / ".venv").exists():
        import pytest

        pytest.skip("not run through the Makefile")
    proc = subprocess.run(["make", "-q", "install"], cwd=ROOT)
    assert proc.returncode == 0
