"""Time interface4d.simulate.run on one cell of a campaign config (GPU or CPU).

One measurement per process (so `timeout` can bound it), results merged into a JSON file:

  python3 benchmarks/gpu/time_cells.py --label demo-gpu --config config.yaml --cell t200/step-d26 \
      --device gpu --repeat 2 --json $OUT/gpu_timings.json --save /tmp/i4d/demo-gpu.npy
  python3 benchmarks/gpu/time_cells.py --compare demo-gpu=/tmp/i4d/demo-gpu.npy \
      demo-cpu1=/tmp/i4d/demo-cpu1.npy --json $OUT/gpu_timings.json

Settings are built as the CLI builds them (load_config -> check_grid -> cell_settings).
Execution choices (device, threads, max_batch) default to the config's simulation block.
Imports neither TensorFlow nor Snakemake.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import sys
import time
import traceback
from pathlib import Path

T_START = time.perf_counter()


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record(path: Path | None, label: str, entry: dict) -> None:
    """Merge ``entry`` under runs[label] in the JSON file (written atomically) and print it."""
    brief = {k: v for k, v in entry.items() if k not in ("traceback", "env", "host", "python")}
    print(f"[{label}] " + json.dumps(brief, default=str), flush=True)
    if path is None:
        return
    from interface4d.checkpoints import write_text_atomic

    data = _load(path)
    data.setdefault("runs", {})[label] = entry
    write_text_atomic(path, json.dumps(data, indent=1, default=str))


def gpu_info() -> dict:
    info: dict = {}
    with contextlib.suppress(Exception):
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        info["gpu_name"] = name.decode() if isinstance(name, bytes) else str(name)
        info["cupy"] = cupy.__version__
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        pool = cupy.get_default_memory_pool()
        info["mempool_used_bytes"] = int(pool.used_bytes())
        info["mempool_total_bytes"] = int(pool.total_bytes())
    return info


def make_settings(args) -> tuple[dict, dict]:
    from interface4d.config import load_config
    from interface4d.grid import check_grid
    from interface4d.settings import cell_settings

    config = check_grid(load_config(args.config))
    settings = cell_settings(config, args.cell)
    # execution keys (device, threads, max_batch) are not in a cell's settings: the config's
    execution = {k: config["simulation"].get(k) for k in ("device", "threads", "max_batch")}
    sim = settings["simulation"]
    if args.num_configs is not None:
        sim["num_configs"] = args.num_configs
    if args.scan_gpts is not None:
        sim["scan"]["gpts"] = list(args.scan_gpts)
    return settings, execution


def measure(args) -> int:
    label = args.label
    out = Path(args.json) if args.json else None
    entry: dict = {
        "label": label,
        "config": args.config,
        "cell": args.cell,
        "device": args.device,
        "threads": args.threads,
        "status": "started",
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NUMBA_CACHE_DIR")},
    }
    record(out, label, entry)
    try:
        t0 = time.perf_counter()
        from interface4d.jitcache import import_abtem

        abtem = import_abtem()  # as `interface4d simulate` does (Numba cache on)
        import numpy as np

        from interface4d import simulate
        from interface4d.structures import build_from_settings

        entry["import_s"] = round(time.perf_counter() - t0, 3)
        entry["versions"] = {"abtem": abtem.__version__, "numpy": np.__version__}
        with contextlib.suppress(Exception):
            import numba

            entry["versions"]["numba"] = numba.__version__

        settings, execution = make_settings(args)
        sim = settings["simulation"]
        max_batch = args.max_batch if args.max_batch is not None else execution["max_batch"]
        threads = args.threads if args.threads is not None else execution["threads"]
        entry.update(
            threads=threads,
            max_batch=max_batch,
            gpts=sim["gpts"],
            scan_gpts=list(sim["scan"]["gpts"]),
            num_configs=sim["num_configs"],
            nz=settings["nz"],
            thickness=settings["thickness"],
            detector_max_angle=sim["detector_max_angle"],
            method=sim["method"],
            runs=[],
        )
        t0 = time.perf_counter()
        atoms = build_from_settings(settings)
        entry["n_atoms"] = len(atoms)
        entry["n_slices"] = int(np.ceil(atoms.cell[2, 2] / sim["slice_thickness"]))
        entry["structure_build_s"] = round(time.perf_counter() - t0, 3)
        entry["status"] = "running"
        record(out, label, entry)

        result = None
        for i in range(args.repeat):
            t0 = time.perf_counter()
            result = simulate.run(
                settings, atoms=atoms, device=args.device, threads=threads, max_batch=max_batch
            )
            wall = time.perf_counter() - t0
            entry["runs"].append(
                {
                    "i": i,
                    "wall_s": round(wall, 3),
                    "simulate_s": round(result.timings["simulate_s"], 3),
                }
            )
            record(out, label, entry)  # incrementally: a timeout keeps what finished

        cbed = result.cbed
        entry["cbed_shape"] = list(cbed.shape)
        entry["cbed_sum"] = float(cbed.sum(dtype=np.float64))
        entry["cbed_max"] = float(cbed.max())
        entry["pattern_sum_mean"] = float(cbed.sum(axis=(2, 3), dtype=np.float64).mean())
        entry["finite"] = bool(np.isfinite(cbed).all())
        n = cbed.shape[0] * cbed.shape[1]
        best = min(r["wall_s"] for r in entry["runs"])
        entry["best_wall_s"] = best
        entry["ms_per_probe_position_per_config"] = round(
            1e3 * best / (n * entry["num_configs"]), 4
        )
        if args.device == "gpu":
            entry.update(gpu_info())
        if args.save:
            Path(args.save).parent.mkdir(parents=True, exist_ok=True)
            np.save(args.save, cbed)
            entry["saved"] = args.save
        entry["status"] = "ok"
        entry["process_s"] = round(time.perf_counter() - T_START, 3)
        record(out, label, entry)
        return 0
    except Exception as exc:
        entry["status"] = "error"
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc()[-4000:]
        entry["process_s"] = round(time.perf_counter() - T_START, 3)
        record(out, label, entry)
        traceback.print_exc()
        return 1


def compare(args) -> int:
    """Per-pattern agreement of saved arrays (first = reference) -> runs["compare:..."]."""
    import numpy as np

    out = Path(args.json) if args.json else None
    items = [c.split("=", 1) for c in args.compare]
    ref_label, ref_path = items[0]
    rc = 0
    for lab, path in items[1:]:
        key = f"compare:{lab}-vs-{ref_label}"
        try:
            a = np.load(ref_path).astype(np.float64)
            b = np.load(path).astype(np.float64)
            if a.shape != b.shape:
                raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
            flat_a = a.reshape(-1, *a.shape[2:])
            flat_b = b.reshape(-1, *b.shape[2:])
            diff = np.abs(flat_a - flat_b)
            per = np.linalg.norm(
                (flat_a - flat_b).reshape(len(flat_a), -1), axis=1
            ) / np.linalg.norm(flat_a.reshape(len(flat_a), -1), axis=1)
            scale = flat_a.max(axis=(1, 2))[:, None, None]
            entry = {
                "reference": ref_label,
                "other": lab,
                "shape": list(a.shape),
                "rel_l2_total": float(np.linalg.norm(a - b) / np.linalg.norm(a)),
                "rel_l2_per_pattern_max": float(per.max()),
                "rel_l2_per_pattern_mean": float(per.mean()),
                "max_abs_diff_over_pattern_max": float((diff / scale).max()),
                # the test's tolerance: rtol 1e-4, atol 1e-4 * pattern max
                "within_test_tolerance": bool((diff <= 1e-4 * np.abs(flat_a) + 1e-4 * scale).all()),
                "status": "ok",
            }
        except Exception as exc:
            entry = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            rc = 1
        record(out, key, entry)
    return rc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--label", default="run")
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--cell", default="t200/step-d26")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--num-configs", type=int, default=None, help="override (extrapolate)")
    p.add_argument("--scan-gpts", type=int, nargs=2, default=None, help="override NX NY")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", default=None)
    p.add_argument("--save", default=None, help="save the 4D array (.npy)")
    p.add_argument("--compare", nargs="+", default=None, metavar="LABEL=NPY")
    p.add_argument(
        "--configs-that-fit",
        nargs=2,
        default=None,
        metavar=("LABEL", "SECONDS"),
        help="print how many phonon configs fit in SECONDS, from LABEL's per-config time",
    )
    p.add_argument("--mark-timeout", nargs=2, default=None, metavar=("LABEL", "SECONDS"))
    args = p.parse_args(argv)
    if args.mark_timeout:
        label, seconds = args.mark_timeout
        entry = _load(Path(args.json)).get("runs", {}).get(label, {"label": label})
        entry.update(status="timeout", timeout_s=float(seconds))
        record(Path(args.json), label, entry)
        return 0
    if args.configs_that_fit:
        label, seconds = args.configs_that_fit[0], float(args.configs_that_fit[1])
        r = _load(Path(args.json)).get("runs", {}).get(label, {})
        if r.get("status") != "ok":
            print(0)
            return 0
        per_config = r["best_wall_s"] / r["num_configs"]
        # 25 % margin, plus the import and setup the new process pays again
        n = int((seconds - r.get("import_s", 10) - 5) / (1.25 * per_config))
        print(max(0, min(8, n)))
        return 0
    if args.compare:
        return compare(args)
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
