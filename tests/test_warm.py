"""interface4d-warm, for real: the simulate job run in a child of a server that imported abTEM
once gives the plain command's bits, log and exit status, and Snakemake's cancel still stops it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from interface4d import simulate, warm
from interface4d.settings import cell_settings

BIN = Path(sys.executable).parent
CELL = "t40/step-d3"


@contextlib.contextmanager
def _private_runtime(**extra: str):
    """A private runtime folder (short: a socket path has ~100 bytes) and the environment that
    points the launcher there, free of batch-job and off-switch variables; any server started
    there is stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="i4dw", dir="/tmp"))
    env = dict(os.environ, XDG_RUNTIME_DIR=str(folder), **extra)
    for var in (*warm._BATCH_JOB_VARS, "INTERFACE4D_WARM", "INTERFACE4D_FFTW_WISDOM"):
        env.pop(var, None)
    try:
        yield folder, env
    finally:
        for pid in _pids_with(str(folder)):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime():
    with _private_runtime(OMP_NUM_THREADS="1") as folder_env:
        yield folder_env


def _processes() -> dict[int, tuple[int, str]]:
    """Every process: {pid: (parent pid, command line)}."""
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            out[int(proc.name)] = (ppid, cmdline)
    return out


def _pids_with(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (the server's names its socket)."""
    return [pid for pid, (_, cmdline) in _processes().items() if text in cmdline]


def _children(pid: int) -> list[int]:
    return [p for p, (ppid, _) in _processes().items() if ppid == pid]


def _server(folder: Path) -> int:
    """The one server for this folder (its forked jobs share its command line)."""
    procs = _processes()
    pids = [p for p, (_, cmdline) in procs.items() if str(_socket(folder)) in cmdline]
    (server,) = [p for p in pids if procs[p][0] not in pids]
    return server


def _command(settings, output: Path, warm_launcher: bool) -> list[str]:
    cmd = [
        str(BIN / "interface4d"),
        "simulate",
        "--settings",
        json.dumps(settings),
        "-o",
        str(output),
    ]
    return [str(BIN / "interface4d-warm"), *cmd] if warm_launcher else cmd


def _run(cmd, env, log: Path, cwd: Path) -> int:
    with open(log, "w") as err:
        return subprocess.run(cmd, env=env, cwd=cwd, stderr=err, timeout=300).returncode


def _socket(folder: Path) -> Path:
    (sock,) = folder.glob("interface4d-warm-*/*.sock")
    return sock


@pytest.mark.slow
def test_warm_jobs_give_the_plain_commands_bits_log_and_status(tiny_config, tmp_path, runtime):
    """Two jobs through one warm server (started by the first) write the same patterns as the
    plain command, each job's stderr lands in its own log, and a bad command fails in the
    warm child with the plain command's status and message."""
    folder, env = runtime
    settings = cell_settings(tiny_config, CELL)
    assert (
        _run(
            _command(settings, tmp_path / "plain.h5", False), env, tmp_path / "plain.log", tmp_path
        )
        == 0
    )
    inodes = []
    for i in (1, 2):
        log = tmp_path / f"warm{i}.log"
        assert _run(_command(settings, tmp_path / f"warm{i}.h5", True), env, log, tmp_path) == 0, (
            log.read_text()
        )
        assert f"cell {CELL} done" in log.read_text() and f"warm{i}.h5" in log.read_text()
        inodes.append(_socket(folder).stat().st_ino)
    assert inodes[0] == inodes[1]  # the second job found the first one's server
    server = _server(folder)
    plain, attrs = simulate.read_cell(tmp_path / "plain.h5")
    for i in (1, 2):
        patterns, warm_attrs = simulate.read_cell(tmp_path / f"warm{i}.h5")
        assert np.array_equal(plain, patterns)
        assert warm_attrs["settings"] == attrs["settings"]
    # a failing command: the same exit status and message, from a child of the same server
    bad = dict(settings, simulation={**settings["simulation"], "gpts": -1})
    codes, messages = [], []
    for launcher in (False, True):
        log = tmp_path / f"bad-{launcher}.log"
        codes.append(
            _run(_command(bad, tmp_path / f"bad-{launcher}.h5", launcher), env, log, tmp_path)
        )
        messages.append(log.read_text().strip().splitlines()[-1])
    assert codes[0] != 0 and codes[0] == codes[1] and messages[0] == messages[1], messages
    assert not (tmp_path / "bad-True.h5").exists()
    assert _pids_with(str(_socket(folder))) == [server] and _children(server) == []


@pytest.mark.slow
def test_a_cancelled_or_killed_launcher_stops_its_job(tiny_config, tmp_path, runtime):
    """SIGTERM to the launcher (Snakemake's cancel) reaches the job: the launcher exits 143 and
    nothing is written; a launcher killed outright leaves no job running either."""
    folder, env = runtime
    settings = cell_settings(tiny_config, CELL)
    settings["simulation"]["num_configs"] = 200  # minutes: long enough to be stopped midway
    for sig in (signal.SIGTERM, signal.SIGKILL):
        log = tmp_path / f"long-{sig.name}.log"
        out = tmp_path / f"long-{sig.name}.h5"
        with open(log, "w") as err:
            proc = subprocess.Popen(
                _command(settings, out, True), env=env, cwd=tmp_path, stderr=err
            )
        deadline = time.monotonic() + 120
        while "multislice on cpu" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        server = _server(folder)
        (child,) = _children(server)
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        assert code == (143 if sig == signal.SIGTERM else -9)
        deadline = time.monotonic() + 30
        while _children(server):
            assert time.monotonic() < deadline, f"job {child} still running after {sig.name}"
            time.sleep(0.1)
        assert not out.exists()


def test_the_launcher_runs_the_plain_command_outside_a_local_run(tmp_path, runtime, monkeypatch):
    """Off switch, batch jobs, and other commands: the plain command, no server; and the
    server's key follows the environment that libraries read at import."""
    folder, env = runtime
    private = tmp_path / "run"
    private.mkdir()
    for extra in ({"INTERFACE4D_WARM": "0"}, {"SLURM_JOB_ID": "42"}):
        proc = subprocess.run(
            [str(BIN / "interface4d-warm"), str(BIN / "interface4d"), "validate", "--help"],
            env={**env, "XDG_RUNTIME_DIR": str(private), **extra},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0 and "usage: interface4d validate" in proc.stdout
    assert list(private.iterdir()) == []  # no server was started
    proc = subprocess.run([str(BIN / "interface4d-warm"), "true"], env=env, timeout=60)
    assert proc.returncode == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = warm.server_key()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert warm.server_key() != before


def test_an_idle_server_exits_and_removes_its_socket(tmp_path):
    """After ``INTERFACE4D_WARM_IDLE_S`` with no job the server exits and takes its socket with
    it; the next job starts a new one."""
    cmd = [str(BIN / "interface4d-warm"), str(BIN / "interface4d"), "validate", "--help"]
    with _private_runtime(INTERFACE4D_WARM_IDLE_S="1") as (folder, env):
        for _ in range(2):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0 and "usage: interface4d validate" in proc.stdout
            sock = _socket(folder)
            server = _server(folder)
            deadline = time.monotonic() + 30
            while sock.exists() or _pids_with(str(sock)):
                assert time.monotonic() < deadline, f"server {server} still up"
                time.sleep(0.1)


def test_messages_keep_their_boundaries_and_descriptors(tmp_path):
    """The launcher reads the child's pid and its exit status as two messages even when the
    server's two replies arrive in one packet; a request carries the three descriptors."""
    import socket

    server, launcher = socket.socketpair()
    with server, launcher, launcher.makefile("rb") as replies:
        packet = b""
        for message in ({"pid": 12345}, {"exit": 143}):
            body = json.dumps(message).encode()
            packet += warm._HEADER.pack(len(body)) + body
        server.sendall(packet)
        assert warm._read(replies) == {"pid": 12345}
        assert warm._read(replies) == {"exit": 143}
        log = tmp_path / "job.log"
        with open(log, "w") as fh:
            request = {"argv": ["interface4d", "simulate"], "env": {"X": "y" * 100_000}}
            sender = threading.Thread(
                target=warm._send, args=(launcher, request, [0, 1, fh.fileno()])
            )
            sender.start()
            got, fds = warm._recv_request(server)
            sender.join()
        assert got == request and len(fds) == 3
        os.write(fds[2], b"through the passed descriptor\n")
        assert log.read_text() == "through the passed descriptor\n"
        for fd in fds:
            os.close(fd)
        server.shutdown(socket.SHUT_WR)
        assert warm._read(replies) is None
