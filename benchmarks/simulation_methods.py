"""Multislice vs PRISM on one demo cell, and multislice wall time vs thickness.

1. Methods. One cell (default t100/step-d13 of config.yaml) is simulated through our path
   (`interface4d.simulate.simulate_cell`, in this process, after a warm-up on a thin cell) with
   `simulation.method: multislice` and with `prism` at each `--interpolation` (the schema's
   `simulation.prism_interpolation`), same structure, same phonon seed and configurations; then,
   as a yardstick, multislice with another phonon seed (the frozen-phonon noise floor). Each
   file is reduced with `interface4d.reduce.reduce_cell` and the config's `reduction` block, as
   the workflow does; the native reduced shapes are printed.
   PRISM with interpolation f samples the CBED f times more coarsely, so its reduced patterns
   have another shape. For the comparison the multislice patterns are first integrated onto
   PRISM's pixels (each coarse pixel sums the fine pixels it covers: f x f blocks centred on
   it, half weights on the edges for even f); both are then cropped to +-crop_mrad and binned
   exactly as `interface4d.reduce` does, and the scan columns the reduction keeps are used.
   Errors against multislice: relative L2 (||a - b|| / ||b||) and the max absolute error
   (also as a fraction of the multislice maximum) of the reduced `lines` (the classifier's
   input) and of the unit-cell `average` (the regressor's input), and the median per-pattern
   relative L2 of the raw patterns on the common grid.
2. Thickness. Multislice wall time of a step cell (step at half the thickness) at each of
   `--thicknesses` with the lateral settings fixed, and the time per slice.

    .venv/bin/python benchmarks/simulation_methods.py [--config config.yaml] [--cell t100/step-d13]
        [--interpolation 1 2] [--thicknesses 100 150 200 250 300] [--threads 1] [--repeats 1]
    .venv/bin/python benchmarks/simulation_methods.py --quick   # tests/configs/tiny.yaml, ~1 min

Wall times are of `simulate_cell` (structure, simulation, compressed HDF5 write); `simulate`
is abTEM's compute alone (the file's `simulate_s`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, header, table

QUICK = {
    "config": str(ROOT / "tests/configs/tiny.yaml"),
    "cell": "t40/step-d3",
    "interpolation": [2],
    "thicknesses": [40.0, 60.0],
}


def integrate_onto(x, f: int, n_coarse: int):
    """Fine patterns (last two axes, zero frequency at n // 2) integrated onto a grid f times
    coarser with ``n_coarse`` pixels (zero frequency at n_coarse // 2), as float64."""
    import numpy as np

    n_fine = x.shape[-1]
    if x.shape[-2] != n_fine:
        raise ValueError(f"square patterns expected, got {x.shape[-2:]}")
    if f % 2:
        offsets = {o: 1.0 for o in range(-(f // 2), f // 2 + 1)}
    else:
        offsets = {o: (0.5 if abs(o) == f // 2 else 1.0) for o in range(-(f // 2), f // 2 + 1)}
    w = np.zeros((n_coarse, n_fine))
    for j in range(n_coarse):
        centre = n_fine // 2 + f * (j - n_coarse // 2)
        for o, weight in offsets.items():
            if 0 <= centre + o < n_fine:
                w[j, centre + o] = weight
    return np.einsum("...ij,ai,bj->...ab", x.astype(np.float64), w, w, optimize=True)


def reduce_like_workflow(cbed, sampling, keep, reduction):
    """crop + bin of `interface4d.reduce`, on the kept scan columns: (lines, average)."""
    import numpy as np

    from interface4d.reduce import bin_patterns, crop_center

    cropped = crop_center(cbed[keep], float(reduction["crop_mrad"]), sampling)
    binned = bin_patterns(np.asarray(cropped, dtype=np.float32), int(reduction["bin"]))
    lines = binned.transpose(1, 0, 2, 3).astype(np.float64)
    return lines, lines.mean(axis=0)


def errors(test, ref) -> tuple[float, float, float]:
    """(relative L2, max abs error, max abs error / max |ref|)."""
    import numpy as np

    diff = np.abs(test - ref)
    return (
        float(np.linalg.norm(test - ref) / np.linalg.norm(ref)),
        float(diff.max()),
        float(diff.max() / np.abs(ref).max()),
    )


def plane_waves(settings) -> int:
    """Plane waves in PRISM's S-matrix for these settings (abTEM's own count)."""
    import abtem

    st, sim = settings["structure"], settings["simulation"]
    extent = (st["cells_x"] * st["lattice_constant"], st["cells_y"] * st["lattice_constant"])
    s = abtem.SMatrix(
        extent=extent,
        gpts=sim["gpts"],
        energy=sim["energy"],
        semiangle_cutoff=sim["semiangle_cutoff"],
        interpolation=sim["prism_interpolation"],
    )
    return len(s.wave_vectors)


def n_slices(settings) -> int:
    t = settings["nz"] * settings["structure"]["lattice_constant"]
    return math.ceil(t / settings["simulation"]["slice_thickness"] - 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument(
        "--cell", default="t100/step-d13", help="the cell compared (default: %(default)s)"
    )
    ap.add_argument("--interpolation", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--thicknesses", type=float, nargs="+", default=[100.0, 150.0, 200.0, 250.0, 300.0]
    )
    ap.add_argument("--threads", type=int, default=1, help="abTEM threads (dask) per simulation")
    ap.add_argument("--max-batch", type=int, help="default: the config's simulation.max_batch")
    ap.add_argument("--repeats", type=int, default=1, help="runs per variant; medians reported")
    ap.add_argument("--no-floor", action="store_true", help="skip the other-phonon-seed row")
    ap.add_argument("--quick", action="store_true", help=f"a check; defaults become {QUICK}")
    args = ap.parse_args()
    if args.quick:  # the check's settings, where not given explicitly
        for k, v in QUICK.items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)

    sys.path.insert(0, str(ROOT / "src"))
    header("multislice vs PRISM, and multislice vs thickness (benchmarks/simulation_methods.py)")
    import h5py
    import numpy as np

    from interface4d.config import load_config
    from interface4d.grid import Cell, parse_cell
    from interface4d.physics import nz_for_thickness, snap_depth
    from interface4d.reduce import read_reduced, reduce_cell
    from interface4d.settings import cell_settings, stable_seed
    from interface4d.simulate import read_cell, simulate_cell

    config = load_config(args.config)
    reduction = config["reduction"]
    max_batch = args.max_batch or config["simulation"]["max_batch"]
    cell = parse_cell(args.cell)
    if cell.kind == "flat":
        sys.exit("--cell: pick a step or diffusion cell")

    def settings_for(method: str, f: int | None = None, c: Cell | str = cell) -> dict:
        cfg = copy.deepcopy(config)
        cfg["simulation"]["method"] = method
        if f is not None:
            cfg["simulation"]["prism_interpolation"] = f
        return cell_settings(cfg, c)

    tmp = Path(tempfile.mkdtemp(prefix="i4d-methods-"))
    try:

        def simulate(name: str, settings: dict) -> tuple[Path, float, float]:
            walls, sims = [], []
            for _ in range(args.repeats):
                path = tmp / f"{name}.h5"
                t = time.perf_counter()
                simulate_cell(settings, path, threads=args.threads, max_batch=max_batch)
                walls.append(time.perf_counter() - t)
                with h5py.File(path, "r") as fh:
                    sims.append(float(fh.attrs["simulate_s"]))
            return path, statistics.median(walls), statistics.median(sims)

        # warm-up: imports, FFTW plans, first dask compute, on a two-unit-cell slab
        thin = Cell("step", 2 * config["structure"]["lattice_constant"], depth=1)
        for method, f in [("multislice", None)] + [("prism", f) for f in args.interpolation]:
            s = settings_for(method, f, thin)
            s["simulation"]["num_configs"] = 1
            simulate_cell(s, tmp / "warmup.h5", threads=args.threads, max_batch=max_batch)

        variants = [("multislice", None, settings_for("multislice"))]
        variants += [(f"prism f={f}", f, settings_for("prism", f)) for f in args.interpolation]
        if not args.no_floor:
            s = settings_for("multislice")
            s["phonon_seed"] = stable_seed("phonons", cell.id, "other")
            variants.append(("multislice, other phonon seed", None, s))

        ref_lines = ref_avg = ref_cbed = ref_sampling = keep_x = None
        ref_wall = None
        method_rows = []
        for i, (name, f, settings) in enumerate(variants):
            sim_path, wall, sim_s = simulate(f"v{i}", settings)
            red = read_reduced(reduce_cell(sim_path, tmp / f"v{i}-reduced.h5", reduction))
            cbed, attrs = read_cell(sim_path)
            sampling = [float(v) for v in json.loads(attrs["angular_sampling_mrad"])]
            with h5py.File(sim_path, "r") as fh:
                xs = fh["scan/x"][()]
            if ref_cbed is None:  # the multislice reference
                ref_cbed, ref_sampling, ref_wall = cbed, sampling, wall
                ref_lines, ref_avg = red.lines.astype(np.float64), red.average.astype(np.float64)
                keep_x = json.loads(red.attrs["scan_x_A"])
            positions = cbed.shape[0] * cbed.shape[1]
            ratio = sampling[0] / ref_sampling[0]
            fc = round(ratio)
            if abs(ratio - fc) > 1e-6 or fc < 1:
                sys.exit(f"{name}: angular sampling {sampling} vs {ref_sampling}: not a multiple")
            keep = np.isin(np.round(xs, 9), np.round(keep_x, 9))
            if fc == 1:
                test_l, test_a = red.lines.astype(np.float64), red.average.astype(np.float64)
                base_l, base_a = ref_lines, ref_avg
                base_raw, grid = ref_cbed.astype(np.float64), "native"
            else:
                base_raw = integrate_onto(ref_cbed, fc, cbed.shape[-1])
                base_l, base_a = reduce_like_workflow(base_raw, sampling, keep, reduction)
                test_l, test_a = reduce_like_workflow(cbed, sampling, keep, reduction)
                grid = f"{fc}x coarser"
            raw = cbed.astype(np.float64)
            per_pattern = np.linalg.norm(raw - base_raw, axis=(-2, -1)) / np.linalg.norm(
                base_raw, axis=(-2, -1)
            )
            el, ea = errors(test_l, base_l), errors(test_a, base_a)
            compared = [
                f"{el[0]:.4f}",
                f"{el[1]:.3g} ({el[2]:.3f})",
                f"{ea[0]:.4f}",
                f"{ea[1]:.3g} ({ea[2]:.3f})",
                f"{np.median(per_pattern):.4f}",
            ]
            if i == 0:
                grid, compared = "reference", ["-"] * len(compared)
            method_rows.append(
                [
                    name,
                    plane_waves(settings) if f else "-",
                    positions,
                    settings["simulation"]["num_configs"],
                    f"{wall:.1f}",
                    f"{sim_s:.1f}",
                    f"{ref_wall / wall:.2f}",
                    f"{cbed.shape[-2]}x{cbed.shape[-1]} @ {sampling[0]:.3g}",
                    "x".join(str(n) for n in red.lines.shape),
                    grid,
                    *compared,
                ]
            )

        # thickness scaling, multislice, lateral settings fixed
        scale_rows = []
        for t in args.thicknesses:
            nz = nz_for_thickness(t, config["structure"]["lattice_constant"])
            c = Cell("step", float(t), depth=snap_depth(0.5, nz))
            s = settings_for("multislice", c=c)
            _, wall, sim_s = simulate(f"t{t:g}", s)
            sl = n_slices(s)
            pos = math.prod(s["simulation"]["scan"]["gpts"])
            cfgs = s["simulation"]["num_configs"]
            work = s["simulation"]["gpts"] ** 2 * sl * pos * cfgs
            scale_rows.append(
                [
                    f"{t:g}",
                    c.id,
                    sl,
                    f"{wall:.1f}",
                    f"{sim_s:.1f}",
                    f"{1e3 * sim_s / sl:.0f}",
                    f"{1e9 * sim_s * args.threads / work:.1f}",
                ]
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    sim = config["simulation"]
    print(
        f"cell {cell.id} of {args.config}: gpts {sim['gpts']}, {sim['num_configs']} phonon "
        f"configs, scan {sim['scan']['gpts']}, detector {sim['detector_max_angle']} mrad; "
        f"reduction crop {reduction['crop_mrad']} mrad, bin {reduction['bin']}, window_x "
        f"{reduction['window_x']}; threads {args.threads}, max_batch {max_batch}, "
        f"{args.repeats} run(s), medians"
    )
    print()
    print(
        table(
            [
                "variant",
                "plane waves",
                "positions",
                "configs",
                "wall (s)",
                "simulate (s)",
                "speed vs multislice",
                "raw pattern (px @ mrad/px)",
                "reduced lines (native)",
                "compared on",
                "lines rel L2",
                "lines max abs (/max)",
                "average rel L2",
                "average max abs (/max)",
                "median per-pattern rel L2 (raw)",
            ],
            method_rows,
        )
    )
    print()
    print(
        table(
            [
                "thickness (A)",
                "cell",
                "slices",
                "wall (s)",
                "simulate (s)",
                "ms per slice",
                "ns per px*slice*position*config",
            ],
            scale_rows,
        )
    )


if __name__ == "__main__":
    main()
