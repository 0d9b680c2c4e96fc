"""A warm interpreter for the simulate jobs of a local run (``interface4d-warm CMD ...``).

Each simulate job is a process of its own, one cell each (so a changed cell reruns alone), and
each spent ~5 s of a ~17 s demo cell importing abTEM with dask, pandas, SciPy and matplotlib
before its first multislice. ``interface4d-warm interface4d simulate ...`` runs the same
command in a child forked from a server that imported all that once: the child gets the job's
argv, working directory, environment and its stdin/stdout/stderr (the job's log), and the
launcher exits with the child's exit status. The command, its output and its log are those of
the plain command (the simulated patterns are bit-identical, ``tests/test_warm.py``).

- The first launcher on a host starts the server (under a lock) and waits for it; the server
  exits after ``IDLE_S`` idle seconds. Its socket is keyed by this interpreter, the package's
  sources, abTEM's, the host and the environment that the libraries read at import, so an
  edited source or another thread setting never reaches a stale server.
- SIGTERM/SIGINT to the launcher are passed on to the child, and a child whose launcher dies
  stops itself, so Snakemake's cancel and ``--keep-going`` behave as with the plain command.
- Local runs only: inside a batch job (Slurm, LSF, PBS, Flux) the scheduler ends a job step's
  processes with the step, a server among them, so there the launcher runs the plain command.
  So it does for anything unexpected (no socket, a server that does not come up,
  ``INTERFACE4D_WARM=0``, a command other than ``interface4d``).

Stdlib only at import: the launcher itself must start in milliseconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

IDLE_S = 60.0  # the server exits after this long with no job (INTERFACE4D_WARM_IDLE_S)
START_S = 120.0  # how long a launcher waits for a server to come up before running plain
_ENV_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "NUMEXPR_", "VECLIB_", "CUDA_", "CUPY_")
_ENV_NAMES = ("PYTHONPATH", "PYTHONHASHSEED", "LD_LIBRARY_PATH", "ABTEM_CONFIG")
_BATCH_JOB_VARS = ("SLURM_JOB_ID", "LSB_JOBID", "PBS_JOBID", "FLUX_JOB_ID", "COBALT_JOBID")
_HEADER = struct.Struct("!Q")


def _import_env() -> dict[str, str]:
    """The environment variables that a library reads once, at import or first use."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES
    }


def _stat_digest(paths) -> list:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([str(p), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(p), None, None])
    return out


def server_key() -> str:
    """What a server must share with a launcher to run its command: the interpreter, the
    package's and abTEM's sources (by size and mtime), the host, the user, and the import-time
    environment."""
    package = Path(__file__).resolve().parent
    spec = importlib.util.find_spec("abtem")
    abtem_init = spec.origin if spec and spec.origin else "none"
    blob = json.dumps(
        [
            sys.executable,
            sys.version,
            sys.path,
            socket.gethostname(),
            os.getuid(),
            _stat_digest(sorted(package.rglob("*.py")) + [abtem_init]),
            _import_env(),
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def socket_path(key: str) -> Path:
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"interface4d-warm-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{folder}: not private to this user")
    return folder / f"{key}.sock"


# --------------------------------------------------------------------------- messages


def _send(sock: socket.socket, obj, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [payload], fds) if fds else 0
    sock.sendall(payload[sent:])


def _recv_request(sock: socket.socket):
    """The server's read of a launcher's one request and the three descriptors sent with it;
    (None, fds) if the stream ends first. A launcher sends nothing else until it is answered."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    while data and (
        len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]
    ):
        more = sock.recv(1 << 16)
        data = data + more if more else b""
    if not data:
        return None, fds
    (n,) = _HEADER.unpack_from(data)
    return json.loads(data[_HEADER.size : _HEADER.size + n]), fds


def _read(stream):
    """The launcher's read of the server's next message (buffered: the child's pid and its exit
    status may arrive in one packet); None if the stream ends first."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack(head)
    body = stream.read(n)
    return json.loads(body) if len(body) == n else None


# --------------------------------------------------------------------------- server


def _preload() -> None:
    """Import what ``interface4d simulate`` imports, abTEM with its cached kernels included."""
    import interface4d.cli  # noqa: F401
    import interface4d.fftplan  # noqa: F401
    import interface4d.simulate  # noqa: F401
    from interface4d.jitcache import import_abtem

    import_abtem()


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the job (its fds, cwd, env, argv), run it, exit."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def orphaned() -> None:  # the launcher died (or was killed): stop the job
            try:
                conn.recv(1)
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=orphaned, daemon=True).start()
        from interface4d import cli

        sys.argv = list(request["argv"])
        code = cli.main(sys.argv[1:])
    except SystemExit as exc:  # as the interpreter treats it: an int, None (0) or a message
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code or 0)


def serve(path: Path, idle_s: float = IDLE_S) -> None:
    """Listen on ``path``; fork one child per request; exit after ``idle_s`` with no job."""
    _preload()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    listener.listen(64)
    os.replace(tmp, path)  # the socket appears only once the server can serve
    inode = os.stat(path).st_ino  # ours, unless a later server replaced it
    children: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    last = time.monotonic()
    try:
        while children or time.monotonic() - last < idle_s:
            for _ in selector.select(timeout=0.05):
                conn, _ = listener.accept()
                try:
                    conn.settimeout(10.0)  # a launcher sends its request at once
                    request, fds = _recv_request(conn)
                    conn.settimeout(None)
                except OSError:
                    conn.close()
                    continue
                if request is None or len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _child(conn, request, fds)
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                try:
                    _send(conn, {"pid": pid})
                except OSError:
                    pass
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is not None:
                    code = os.waitstatus_to_exitcode(status)
                    try:
                        _send(conn, {"exit": code if code >= 0 else 128 - code})
                    except OSError:
                        pass
                    conn.close()
                last = time.monotonic()
    finally:
        try:
            if os.stat(path).st_ino == inode:
                path.unlink()
        except OSError:
            pass
        listener.close()


# --------------------------------------------------------------------------- launcher


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except OSError:
        sock.close()
        return None


def _start_server(path: Path) -> socket.socket | None:
    """Start a server for ``path`` unless another launcher is starting one; wait for it."""
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path)
        if sock is not None:
            return sock
        try:
            path.unlink()  # a dead server's socket
        except FileNotFoundError:
            pass
        with open(path.with_suffix(".log"), "ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "interface4d.warm", "--serve", str(path), str(_idle_s())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd=path.parent,
            )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and server.poll() is None:  # it failed: plain
            if path.exists():
                sock = _connect(path)
                if sock is not None:
                    return sock
            time.sleep(0.05)
    return None


def _idle_s() -> float:
    try:
        return float(os.environ.get("INTERFACE4D_WARM_IDLE_S", IDLE_S))
    except ValueError:
        return IDLE_S


def _std_fds() -> list[int]:
    """This process's stdin, stdout and stderr (``/dev/null`` for any that is closed)."""
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def _plain(argv: list[str]) -> int:
    os.execvp(argv[0], argv)
    return 127  # not reached


def launch(argv: list[str]) -> int:
    """Run ``argv`` (an ``interface4d`` command) in a warm child; its exit status."""
    if not argv:
        print("usage: interface4d-warm interface4d COMMAND [ARGS ...]", file=sys.stderr)
        return 2
    if (
        os.path.basename(argv[0]) != "interface4d"
        or os.environ.get("INTERFACE4D_WARM") == "0"
        or any(v in os.environ for v in _BATCH_JOB_VARS)
    ):
        return _plain(argv)
    try:
        path = socket_path(server_key())
        sock = _connect(path) or _start_server(path)
    except OSError as exc:
        print(f"interface4d-warm: {exc}; running the plain command", file=sys.stderr)
        sock = None
    if sock is None:
        return _plain(argv)
    with sock, sock.makefile("rb") as replies:
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        try:
            _send(sock, request, fds=_std_fds())
            started = _read(replies)
        except OSError:
            started = None
        if not started:  # the server was exiting: nothing ran, so run it here
            return _plain(argv)
        child = int(started["pid"])

        def forward(signum, _frame):
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        done = _read(replies)
    if not done:
        print("interface4d-warm: lost the server before the job ended", file=sys.stderr)
        return 1
    return int(done["exit"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--serve"] and len(argv) == 3:
        serve(Path(argv[1]), float(argv[2]))
        return 0
    return launch(argv)


if __name__ == "__main__":
    sys.exit(main())
