"""Training throughput (samples/s) of ``interface4d.train`` with 1 and 2 Horovod ranks.

A synthetic classification dataset of demo-like size (default 240 examples of nx = 20 patterns of
38 x 38 px, the file format of ``interface4d.datasets``) is written to a temp folder; then each
configuration ``RANKSxTHREADS`` trains the default network (training block defaults) for
``--epochs`` epochs, as a fresh process (``horovodrun -np 2 -H localhost:2 --gloo`` for 2
ranks). The throughput is the training samples of all ranks per second of the training loop,
taken from the provenance JSON, averaged over the epochs after the first (which includes the
tf.function tracing).

    .venv/bin/python benchmarks/train_throughput.py [--configs 1x1,1x2,2x1] [--epochs 3]
        [--onednn on|off|both]

``--onednn`` sets ``TF_ENABLE_ONEDNN_OPTS`` for the runs (``on``: the package's default;
``both``: each configuration with oneDNN on, then off, side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 (puts the repository root on sys.path, for support)

from support.cnn_synthetic import write_dataset
from support.workflow import BIN
from support.workflow import env as venv_env


def run_config(data: Path, work: Path, ranks: int, threads: int, onednn: str, args) -> dict:
    out = work / f"r{ranks}t{threads}-{onednn}"
    training = {
        "ranks": ranks,
        "classifier": {"epochs": args.epochs, "batch_size": args.batch_size},
    }
    cmd = [
        sys.executable,
        "-m",
        "interface4d.train",
        "--dataset",
        str(data),
        "--task",
        "classify",
        "--training-json",
        json.dumps(training),
        "--out-dir",
        str(out),
        "--checkpoint-dir",
        str(out / "ckpt"),
        "--threads",
        str(threads),
    ]
    env = venv_env(OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn == "on" else "0"
    full = (
        [str(BIN / "horovodrun"), "-np", str(ranks), "-H", f"localhost:{ranks}", "--gloo", *cmd]
        if ranks > 1
        else cmd
    )
    t0 = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(full)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    prov = json.loads((out / "provenance.json").read_text())
    steady = [t["samples_per_s"] for t in prov["timing"][1:]] or [
        prov["timing"][0]["samples_per_s"]
    ]
    return {
        "ranks": ranks,
        "threads": threads,
        "onednn": onednn,
        "samples_per_s": sum(steady) / len(steady),
        "first_epoch_s": prov["timing"][0]["epoch_s"],
        "process_wall_s": wall,
        "dev_accuracy": prov["final"].get("dev_accuracy", float("nan")),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=240)
    p.add_argument("--nx", type=int, default=20)
    p.add_argument("--k", type=int, default=38)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--configs", default="1x1,1x2,2x1", help="RANKSxTHREADS, comma separated")
    p.add_argument("--onednn", choices=("on", "off", "both"), default="on")
    args = p.parse_args()
    onednn = ("on", "off") if args.onednn == "both" else (args.onednn,)
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        data = write_dataset(
            work / "data.h5", n=args.examples, nx=args.nx, k=args.k, val_fraction=0.2, seed=0
        )
        print(
            f"dataset: {args.examples} examples of ({args.nx}, {args.k}, {args.k}), "
            f"{data.stat().st_size / 1e6:.1f} MB gzip, written in {time.perf_counter() - t0:.1f} s"
        )
        print(
            f"machine: {platform.node()}, {os.cpu_count()} cores; epochs {args.epochs}, "
            f"batch {args.batch_size} per rank, default network"
        )
        print(
            "| ranks | threads/rank | oneDNN | samples/s | first epoch (s) | process wall (s) "
            "| val acc |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for (ranks, threads), one in [(c, o) for c in configs for o in onednn]:
            r = run_config(data, work, ranks, threads, one, args)
            print(
                f"| {r['ranks']} | {r['threads']} | {r['onednn']} | {r['samples_per_s']:.1f} | "
                f"{r['first_epoch_s']:.1f} | {r['process_wall_s']:.1f} | {r['dev_accuracy']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
