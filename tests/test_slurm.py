"""The tiny campaign end to end through a real Slurm, with the ``slurm`` profile as written.

The module installs Debian's slurm-wlm and munge (apt-get, as root; CI is a fresh Debian machine)
with service starts blocked, runs munged, slurmctld and slurmd in the foreground on loopback
from a temp directory (its own munge key and socket, its own slurm.conf and ports), and stops
them (and any job step they left) when the module ends. Every wait is bounded.

Slurm client commands find that slurm.conf through small wrappers early on PATH: the Snakemake
job step drops ``SLURM_CONF`` before its own ``srun``, so the variable alone does not reach it.
The cluster has no accounting database, so the runs add ``--slurm-status-command squeue``
(MinJobAge is 600 s); they also check job states from 1 s on (not 40 s) and keep the Slurm
logs. Everything else comes from ``profiles/slurm``, reached as ``--profile slurm`` through the
top-level link, as the README has it. The local reference run starts first and runs while apt
and the Slurm run wait, so the module takes about as long as the Slurm run.

The campaign is tiny.yaml with 2 Horovod ranks (training as one 2-task Slurm job started by
``workflow/scripts/hvd-srun``), one thickness and four step depths (each dataset then has at
least two training examples, one per rank). Its results are compared with a local run of the
same campaign (horovodrun for the 2 ranks): simulations, reduced blocks and datasets bit for bit
(the project guarantees bit-identical simulations across processes, FFTW_ESTIMATE), trained
weights by their sha256 and the training history exactly (interface4d.train: fixed seeds, op
determinism, gradients averaged over the ranks, so 2 ranks give one result whatever starts them).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from support.workflow import BIN, ROOT, copy_workflow, env

from .helpers import write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("apt-get") is None,
        reason="needs root and apt-get to install and run a loopback Slurm (CI: fresh Debian)",
    ),
]

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/slurmstepd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel", "sacct", "salloc")
STATUS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-keep-successful-logs",
)
CELLS = (
    "t40/step-d2",
    "t40/step-d4",
    "t40/step-d6",
    "t40/step-d8",
    "t40/diffusion-ti0.2-s1",
    "t40/diffusion-ti0.5-s1",
)
BLOCKS = ("t40/step", "t40/diffusion")  # one reduce job each
MODELS = ("results/models/classifier.keras", "results/models/regressor_t40.keras")


def run(cmd, timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(what: str, check, timeout: float, step: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(step)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def install_slurm() -> None:
    """apt-get install the daemons and clients, with service starts blocked (policy-rc.d)."""
    if all(shutil.which(p) for p in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:  # no daemon started by a package's postinst: the test starts its own
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        proc = run(install, 600, env=apt_env)
        if proc.returncode != 0:  # a fresh machine may have no package lists yet
            run(["apt-get", "update", "-q"], 600, env=apt_env)
            proc = run(install, 600, env=apt_env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    finally:
        if ours:
            policy.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_pids() -> dict[int, str]:
    """Running munged/slurm daemons and job steps on this machine: {pid: executable}."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                exe = os.readlink(proc / "exe")
            except OSError:
                continue
            if exe in {os.path.realpath(d) for d in DAEMONS}:  # Debian: slurmd -> slurmd-wlm
                found[int(proc.name)] = exe
    return found


class Cluster:
    """munged + slurmctld + slurmd in the foreground, one node (this host) on loopback."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.bin = root / "bin"
        self.procs: list[subprocess.Popen] = []
        self.before = daemon_pids()
        self.node = socket.gethostname().split(".")[0]

    def env(self) -> dict[str, str]:
        e = env()
        e["PATH"] = f"{self.bin}{os.pathsep}{e['PATH']}"
        e["SLURM_CONF"] = str(self.conf)
        e.update({"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
        for var in [v for v in e if v.startswith(("SLURM_JOB", "SBATCH_", "SRUN_"))]:
            del e[var]
        return e

    def write_config(self) -> None:
        r = self.root
        for d in ("munge", "state", "spool", "log", "run", "bin"):
            (r / d).mkdir()
        (r / "munge").chmod(0o755)
        key = r / "munge" / "key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        for cmd in CLIENTS:
            wrapper = self.bin / cmd
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec /usr/bin/{cmd} "$@"\n')
            wrapper.chmod(0o755)
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=loopback",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={r}/munge/sock",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool",
                    f"SlurmctldPidFile={r}/run/slurmctld.pid",
                    f"SlurmdPidFile={r}/run/slurmd.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    "MpiDefault=none",
                    "SwitchType=switch/none",
                    "SchedulerType=sched/backfill",
                    "MinJobAge=600",
                    "ReturnToService=2",
                    "KillWait=5",
                    "InactiveLimit=0",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
                    f"RealMemory={int(kib / 1024 * 0.8)} State=UNKNOWN",
                    f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def start(self) -> None:
        r = self.root
        self.write_config()
        munge = r / "munge"
        self._spawn(
            "/usr/sbin/munged",
            "--foreground",
            "--force",
            f"--key-file={munge}/key",
            f"--socket={munge}/sock",
            f"--pid-file={munge}/pid",
            f"--log-file={munge}/log",
            f"--seed-file={munge}/seed",
        )
        wait_for("munged socket", (munge / "sock").exists, 20)
        self._spawn("/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf))
        self._spawn("/usr/sbin/slurmd", "-D", "-N", self.node, "-f", str(self.conf))
        wait_for("an idle node", lambda: "idle" in self.cmd("sinfo", "-h", "-o", "%T"), 60)

    def _spawn(self, *cmd: str) -> None:
        log = open(self.root / "log" / f"{Path(cmd[0]).name}.out", "w")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
        log.close()
        time.sleep(0.2)
        if self.procs[-1].poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited at start: {self.logs()}")

    def cmd(self, *args: str, timeout: float = 60) -> str:
        proc = run([str(self.bin / args[0]), *args[1:]], timeout, env=self.env())
        return proc.stdout + proc.stderr

    def job(self, job_id: str) -> dict[str, str]:
        out = self.cmd("scontrol", "show", "job", "-o", job_id)
        return dict(m.groups() for m in re.finditer(r"(\S+?)=(\S*)", out))

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((self.root / "log").glob("*"))
        )

    def stop(self) -> list[str]:
        """Cancel every job, stop the daemons (newest first), kill job steps they left."""
        if self.procs and self.procs[-1].poll() is None:
            self.cmd("scancel", "--user", "root", "--full")
            try:
                wait_for("no jobs", lambda: not self.cmd("squeue", "-h").strip(), 30, 0.5)
            except TimeoutError:
                pass
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(15)
        left = [f"{pid} {exe}" for pid, exe in daemon_pids().items() if pid not in self.before]
        for entry in left:
            try:
                os.kill(int(entry.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


@pytest.fixture(scope="module")
def cluster():
    t0 = time.monotonic()
    install_slurm()
    t1 = time.monotonic()
    c = Cluster(Path(tempfile.mkdtemp(prefix="i4d-slurm-")))  # short: munge's socket path
    try:
        c.start()
        print(f"slurm: install {t1 - t0:.0f} s, daemons up {time.monotonic() - t1:.0f} s")
        yield c
    finally:
        left = c.stop()
        shutil.rmtree(c.root, ignore_errors=True)
    assert not daemon_pids().keys() - c.before.keys(), daemon_pids()
    assert not left, f"daemons or job steps outlived the cluster: {left}"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """tiny.yaml with 2 Horovod ranks, one thickness, four step depths."""
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["training"]["ranks"] = 2
    cfg["grid"]["thickness"] = [40]
    cfg["grid"]["step_fraction"] = [0.2, 0.4, 0.6, 0.8]
    return write_config(tmp_path_factory.mktemp("campaign") / "tiny2.yaml", cfg)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, campaign):
    """The reference, started first: the same campaign here (horovodrun for the 2 ranks).

    It runs while apt installs Slurm and while the Slurm run waits on its jobs, so the module
    takes about the longer of the two runs, not their sum. Yields (workdir, process).
    """
    wd = copy_workflow(tmp_path_factory.mktemp("local"), campaign)
    log = open(wd / "snakemake.log", "w")  # noqa: SIM115
    cmd = [str(BIN / "snakemake"), *MODELS, "--cores", "2", "--configfile", "campaign.yaml"]
    e = dict(env(), OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, cwd=wd, env=e, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        yield wd, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


@pytest.fixture(scope="module")
def local(local_run) -> Path:
    wd, proc = local_run
    t0 = time.monotonic()
    code = proc.wait(900)
    print(f"local run: done {time.monotonic() - t0:.0f} s after the Slurm run")
    assert code == 0, (wd / "snakemake.log").read_text()[-6000:]
    return wd


def loopback_profile(wd: Path) -> None:
    """The copy's slurm profile for the loopback cluster: the simulations run as the campaign
    says (its device, threads and batch, as in the local run), not as the profile's CPU nodes
    would (4 threads, 32 probe positions a batch, NumPy forced): the profile's other settings,
    its groups, reductions and Horovod training jobs, stay as shipped."""
    path = wd / "profiles" / "slurm" / "config.yaml"
    prof = yaml.safe_load(path.read_text())
    for key in ("sim_device", "max_batch", "mem_mb", "launcher"):
        del prof["set-resources"]["simulate"][key]
    prof["set-threads"] = [t for t in prof["set-threads"] if not t.startswith("simulate=")]
    path.write_text(yaml.safe_dump(prof, sort_keys=False))


def through_slurm(cluster: Cluster, wd: Path, *targets: str, timeout: float):
    """`snakemake [targets] --profile slurm` with the campaign, on the loopback cluster."""
    loopback_profile(wd)
    return subprocess.run(
        [str(BIN / "snakemake"), *targets, "--cores", "2", "--profile", "slurm"]
        + ["--configfile", "campaign.yaml", *STATUS],
        cwd=wd,
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def submissions(log: str) -> list[tuple[str, str]]:
    """(rule or group log folder, Slurm job id) of each submission the plugin reported."""
    pattern = r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(\w+)/"
    return [(m[2], m[1]) for m in re.finditer(pattern, log)]


@pytest.fixture(scope="module")
def on_slurm(tmp_path_factory, campaign, local_run, cluster):
    """The whole campaign through `--profile slurm`: (workdir, snakemake's output)."""
    wd = copy_workflow(tmp_path_factory.mktemp("slurm"), campaign)
    t0 = time.monotonic()
    proc = through_slurm(cluster, wd, timeout=900)
    out = proc.stdout + proc.stderr
    print(f"campaign through slurm: {time.monotonic() - t0:.0f} s")
    assert proc.returncode == 0, f"{out[-6000:]}\n{cluster.logs()}"
    return wd, out


def test_campaign_runs_as_grouped_slurm_jobs_with_a_two_task_training_job(on_slurm, cluster):
    wd, out = on_slurm
    subs = submissions(out)
    kinds = [name for name, _ in subs]
    # the six cells' simulations: one submission; their reductions: one job per block (the
    # step cells, the intermixed cells), each cell computed in them
    assert kinds.count("group_sim_simulate") == 1, subs
    assert "rule_simulate" not in kinds, subs
    assert kinds.count("rule_reduce") == len(BLOCKS), subs
    for cell in CELLS:
        assert (wd / "results/sims" / f"{cell}.h5").exists()
    for block in BLOCKS:
        assert (wd / "results/reduced" / f"{block}.h5").exists()
    group = cluster.job(dict(subs)["group_sim_simulate"])
    assert group["JobState"] == "COMPLETED" and group["NumCPUs"] == "2", group
    for name, job_id in subs:
        if name == "rule_reduce":  # the profile's 8 threads, capped by --cores 2
            job = cluster.job(job_id)
            assert job["JobState"] == "COMPLETED" and job["NumCPUs"] == "2", job
    # training: one Slurm job of two tasks each, ranks started by hvd-srun
    for name in ("rule_train_classifier", "rule_train_regressor"):
        job = cluster.job(dict(subs)[name])
        assert job["JobState"] == "COMPLETED" and job["NumTasks"] == "2", job
    for log in ("train_classifier.log", "train_regressor/t40.log"):  # the rules' own logs
        assert "hvd-srun: 2 ranks on 1 node(s)" in (wd / "results/logs" / log).read_text()
    assert "steps (100%) done" in out


def test_slurm_results_equal_a_local_run(on_slurm, local):
    wd, _ = on_slurm
    for cell in CELLS:
        with (
            h5py.File(local / f"results/sims/{cell}.h5") as a,
            h5py.File(wd / f"results/sims/{cell}.h5") as b,
        ):
            assert a["cbed"].dtype == b["cbed"].dtype
            assert np.array_equal(a["cbed"][()], b["cbed"][()]), cell  # bit for bit
            assert np.array_equal(a["scan/x"][()], b["scan/x"][()])
    for block in BLOCKS:
        assert_same_h5(local / f"results/reduced/{block}.h5", wd / f"results/reduced/{block}.h5")
    for name in ("classify", "regress_t40"):
        assert_same_h5(local / f"results/datasets/{name}.h5", wd / f"results/datasets/{name}.h5")
        assert read_csv(local / f"results/datasets/{name}.csv") == read_csv(
            wd / f"results/datasets/{name}.csv"
        )
    for model in ("classifier", "regressor_t40"):
        a = json.loads((local / f"results/models/{model}_provenance.json").read_text())
        b = json.loads((wd / f"results/models/{model}_provenance.json").read_text())
        assert a["ranks"] == b["ranks"] == 2
        assert a["dataset"]["sha256"] == b["dataset"]["sha256"]
        assert a["weights"]["sha256"] == b["weights"]["sha256"], model
        assert read_csv(local / f"results/models/{model}_history.csv") == read_csv(
            wd / f"results/models/{model}_history.csv"
        )


def assert_same_h5(a: Path, b: Path) -> None:
    """Every dataset of two HDF5 files equal, bit for bit (attributes hold times and hosts)."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names: list[str] = []
        fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
        other: list[str] = []
        fb.visit(lambda n: other.append(n) if isinstance(fb[n], h5py.Dataset) else None)
        assert names == other, (a, names, other)
        for n in names:
            x, y = fa[n][()], fb[n][()]
            assert x.dtype == y.dtype and np.array_equal(x, y), (a, n)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_failing_job_fails_the_run(tmp_path, campaign, cluster):
    """GPU simulations on a CPU-only node: the grouped simulate jobs fail inside Slurm."""
    cfg = yaml.safe_load(campaign.read_text())
    cfg["simulation"]["device"] = "gpu"  # valid config; fails in the job (no CuPy here)
    wd = copy_workflow(tmp_path / "wd", write_config(tmp_path / "gpu.yaml", cfg))
    targets = [f"results/sims/{c}.h5" for c in CELLS[:2]]  # one group of two cells
    proc = through_slurm(cluster, wd, *targets, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    (name, job_id), *rest = submissions(out)
    assert name == "group_sim_simulate" and not rest, out[-4000:]
    # reported: the group, the Slurm job's log (show-failed-logs prints it), the job's error
    assert "Error in group sim" in out, out[-4000:]
    assert f"slurm_logs/group_sim_simulate/{job_id}.log" in out
    assert "RuntimeError: CuPy is not installed" in out
    assert "Exiting because a job execution failed" in out
    assert cluster.job(job_id)["JobState"] == "FAILED"
    assert not list((wd / "results/sims").rglob("*.h5"))
    logs = [(wd / "results/logs/simulate" / f"{cell}.log") for cell in CELLS[:2]]
    assert any("CuPy is not installed" in p.read_text() for p in logs if p.exists())
    assert not cluster.cmd("squeue", "-h").strip()  # nothing left queued or running
