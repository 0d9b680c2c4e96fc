"""Bytes on disk per cell (raw CBED, reduced, datasets) and their paper-scale extrapolation,
for every storage mode (``simulation.store``: full, cropped, none).

Measured: the files of a results folder (`--results DIR`: every `sims/**.h5`, `reduced/**.h5`,
`datasets/*.h5` in it), or, without `--results`, of a step and a diffusion cell of `--config`
(default config.yaml) run through the real workflow (Snakemake in a temp copy, targets the
reduced cells and the datasets).

Paper scale (`--campaign`, default profiles/paper.yaml, 14,209 cells at gpts 512,
123 x 13 positions, 107 mrad):

* pattern shape and angular sampling from abTEM's own objects for the campaign's settings
  (`interface4d.simulate.build_measurement`, nothing computed);
* bytes per stored pattern measured on a sample: `--paper-sample` probe positions of one cell
  at the campaign's physics (gpts, configs, detector) simulated on the CPU and written by our
  writer (one gzip+shuffle chunk per pattern), so the compression ratio is that of real
  107 mrad patterns, not of the demo's 40 mrad ones;
* raw per cell = bytes per pattern x 1599 patterns + the sample file's other bytes (structure,
  attributes); reduced and dataset shapes from the campaign's `reduction` block with the
  library's own crop/bin/band rules; datasets (whose ``x`` references the reduced files, no
  copy) from the measured datasets' file bytes per example (an upper bound: their fixed bytes
  are spread over few examples).

The paper (Oxley et al. 2020) stored 341 x 341 x 13 x 123 per simulation, ~350 GB in all; the
table sets our figures beside that and beside the same layout uncompressed.

Storage modes (second table). Measured: the 2 cells run through the workflow once per mode
(``--modes``, default all three; each run's simulation files left on disk, and its datasets
compared bit for bit with the full run's). Paper scale: ``full`` as above; ``cropped`` = the
sample's patterns cut to the stored angle by the writer's own rule
(:func:`interface4d.cropping.crop_center`, written by :func:`interface4d.h5io.write_cbed`) x
the positions in the stored band (the campaign's ``store_crop_mrad`` / ``store_window_x``,
null: its reduction's); ``none`` keeps nothing once a block is reduced, and while the cells
of a block wait for their reduction each holds the cropped file (the largest block, and all
cells if every simulation finished before any reduction). The reduced files and the datasets
are the same in every mode.

    .venv/bin/python benchmarks/storage.py [--results results] [--config config.yaml]
        [--campaign profiles/paper.yaml] [--paper-sample 8]
        [--modes full cropped none]
    .venv/bin/python benchmarks/storage.py --quick   # tests/configs/tiny.yaml cells, ~2 min
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from _common import ROOT, fmt_bytes, header, run_measured, table

from support.workflow import BIN, copy_workflow
from support.workflow import env as venv_env

PAPER_BYTES = 350e9  # the paper's stated total
PAPER_PATTERN = (341, 341, 13, 123)  # its stored array per simulation (float32)


def ratio_text(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def h5_stats(path: Path, name: str) -> dict:
    """File size, and of dataset ``name``: shape, uncompressed and stored bytes."""
    import h5py

    with h5py.File(path, "r") as fh:
        d = fh[name]
        raw = d.size * d.dtype.itemsize
        stored = d.id.get_storage_size()
        out = {"file": path.stat().st_size, "shape": d.shape, "raw": raw, "stored": stored}
        out["virtual"] = d.is_virtual  # a dataset's x: the reduced files' arrays, referenced
        if "n_examples" in fh.attrs:
            out["examples"] = int(fh.attrs["n_examples"])
    return out


def reduced_stats(path: Path) -> list[dict]:
    """Per cell of a reduced (block) file: its ``lines`` dataset and its share of the file."""
    import h5py

    from interface4d.reduce import reduced_cells

    cells = reduced_cells(path)
    share = path.stat().st_size / len(cells)
    out = []
    with h5py.File(path, "r") as fh:
        for cell in cells:
            d = fh[cell]["lines"]
            raw = d.size * d.dtype.itemsize
            out.append(
                {"file": share, "shape": d.shape, "raw": raw, "stored": d.id.get_storage_size()}
            )
    return out


MODES = ("full", "cropped", "none")


def simulate_demo_cells(config_path: Path, wd: Path, store: str | None = None) -> tuple[Path, dict]:
    """A step and a diffusion cell of the config, through Snakemake up to the datasets
    (``store``: the simulation's storage mode, else the config's)."""
    from interface4d.config import load_config

    config = load_config(config_path)
    if store:
        config["simulation"]["store"] = store
    grid = config["grid"]
    t = grid["thickness"][0]
    config["grid"] = {
        "thickness": [t],
        "step_fraction": [grid["step_fraction"][len(grid["step_fraction"]) // 2]],
        "ti_fraction": [grid["ti_fraction"][len(grid["ti_fraction"]) // 2]],
        "seeds": [grid["seeds"][0]],
    }
    if config.get("evaluation"):
        config["evaluation"]["reference_thickness"] = t
    copy_workflow(wd)
    with open(wd / "campaign.yaml", "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    from interface4d.grid import fmt

    targets = ["results/datasets/classify.h5", f"results/datasets/regress_t{fmt(t)}.h5"]
    cmd = [str(BIN / "snakemake"), *targets, "--cores", "2", "--configfile", "campaign.yaml"]
    res = run_measured(cmd, cwd=wd, env=venv_env(OMP_NUM_THREADS="1"), timeout=1800)
    if res.returncode:
        logs = "\n".join(p.read_text()[-2000:] for p in (wd / "results/logs").rglob("*.log"))
        sys.exit(f"snakemake failed ({res.returncode}):\n{res.tail()}\n{logs}")
    mode = config["simulation"]["store"]
    print(
        f"simulated 2 cells of {config_path} (store: {mode}) with Snakemake in {res.wall_s:.0f} s"
    )
    return wd / "results", config


def paper_store(campaign: dict) -> dict:
    """What a cropped (or none) store keeps of each paper-scale cell: the campaign's stored
    angle and band (its reduction's where null)."""
    from interface4d.settings import stored_part

    return stored_part({**campaign["simulation"], "store": "cropped"}, campaign["reduction"])


def paper_sample(campaign: dict, positions: int, configs: int | None, wd: Path) -> dict:
    """Simulate a few positions of one paper-scale cell on the CPU, written by our writer."""
    from interface4d.grid import enumerate_cells
    from interface4d.settings import cell_settings
    from interface4d.simulate import simulate_cell

    cells = enumerate_cells(campaign)[0]
    thinnest = [c for c in cells if c.kind == "step" and c.thickness == cells[0].thickness]
    cell = thinnest[len(thinnest) // 2]  # the mid-depth step cell of the first thickness
    settings = copy.deepcopy(cell_settings(campaign, cell))
    settings["stored"] = None  # the whole patterns, whatever the campaign's store
    sim = settings["simulation"]
    sim["scan"]["gpts"] = [positions, 1]
    if configs:
        sim["num_configs"] = configs
    path = wd / "paper_sample.h5"
    simulate_cell(settings, path, device="cpu", threads=min(2, os.cpu_count() or 1), max_batch=4)
    st = h5_stats(path, "cbed")
    st.update(cell=cell.id, configs=sim["num_configs"], positions=positions)
    st["cropped"] = cropped_sample(path, paper_store(campaign)["crop_mrad"], wd)
    return st


def cropped_sample(path: Path, crop_mrad: float, wd: Path) -> dict:
    """The sample's patterns cut to the stored angle and written as the simulation writer
    writes a cropped store (the same crop rule, the same chunks and compression)."""
    import json

    import h5py

    from interface4d.cropping import crop_center
    from interface4d.h5io import write_cbed

    with h5py.File(path, "r") as fh:
        sampling = json.loads(fh.attrs["angular_sampling_mrad"])
        cbed = fh["cbed"][()]
    out = wd / "paper_sample_cropped.h5"
    with h5py.File(out, "w") as fh:
        write_cbed(fh, "cbed", crop_center(cbed, crop_mrad, sampling))
    return h5_stats(out, "cbed")


def paper_shapes(campaign: dict) -> dict:
    """Pattern shape, sampling, kept scan columns and reduced example shape at paper scale,
    from abTEM's objects and the library's reduction rules (nothing simulated)."""
    import numpy as np

    from interface4d.cropping import band_mask
    from interface4d.grid import blocks_of, enumerate_cells
    from interface4d.reduce import _select_x, bin_patterns, crop_center, reduce_params
    from interface4d.settings import cell_settings
    from interface4d.simulate import build_measurement, scan_window
    from interface4d.structures import build_from_settings, interface_x

    cells, _ = enumerate_cells(campaign)
    settings = cell_settings(campaign, cells[0])
    m = build_measurement(settings, build_from_settings(settings), max_batch=128)
    shape = tuple(int(n) for n in m.shape)
    sampling = [float(s) for s in m.angular_sampling]
    red = reduce_params(campaign["reduction"])
    cropped = crop_center(np.zeros((1, 1, *shape[-2:]), np.float32), red["crop_mrad"], sampling)
    k = bin_patterns(cropped, red["bin"]).shape[-2:]
    (x0, _), (x1, _) = scan_window(settings)
    nx, ny = settings["simulation"]["scan"]["gpts"]
    scan_x = x0 + np.arange(nx) * (x1 - x0) / nx
    settings = {**settings, "stored": None}  # the reduction of a full file (the same in every mode)
    keep, _ = _select_x(scan_x, settings, red["window_x"], Path("paper"))
    stored = paper_store(campaign)
    st = settings["structure"]
    xc = interface_x(st["interface_layer"], st["lattice_constant"])
    band = stored["window_x"]
    in_band = int(band_mask(scan_x - xc, band).sum()) if band is not None else nx
    stored_px = crop_center(np.zeros((1, 1, *shape[-2:])), stored["crop_mrad"], sampling).shape
    blocks = blocks_of(c for c in cells if c.kind in ("step", "diffusion"))
    return {
        "stored": stored,
        "stored_shape": (in_band, ny, *stored_px[-2:]),
        "largest_block": max(len(b) for b in blocks.values()),
        "cbed": shape,
        "sampling": sampling,
        "lines": (ny, int(keep.sum()), *k),
        "average": (int(keep.sum()), *k),
        "cells": len(cells),
        "step_cells": sum(c.kind == "step" for c in cells),
        "thicknesses": len(campaign["grid"]["thickness"]),
    }


def mode_stats(results: Path) -> dict:
    """What a run left on disk: its simulation files (count, bytes, array shape)."""
    import h5py

    sims = sorted((results / "sims").rglob("*.h5"))
    shape = None
    if sims:
        with h5py.File(sims[0], "r") as fh:
            shape = fh["cbed"].shape
    return {"sims": len(sims), "bytes": sum(p.stat().st_size for p in sims), "shape": shape}


def same_datasets(a: Path, b: Path) -> bool:
    """Whether two runs' datasets hold the same examples, bit for bit (x, y, cells, lines)."""
    import h5py
    import numpy as np

    names = sorted(p.name for p in (a / "datasets").glob("*.h5"))
    if not names or names != sorted(p.name for p in (b / "datasets").glob("*.h5")):
        return False
    for name in names:
        with h5py.File(a / "datasets" / name) as fa, h5py.File(b / "datasets" / name) as fb:
            for key in ("x", "y", "cell", "line"):
                if not np.array_equal(fa[key][()], fb[key][()]):
                    return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--results", help="an existing results folder to measure (else simulate 2)")
    ap.add_argument("--config", default=str(ROOT / "config.yaml"), help="for the 2 cells")
    ap.add_argument("--campaign", default=str(ROOT / "profiles/paper.yaml"))
    ap.add_argument("--paper-sample", type=int, default=8, help="positions (default 8)")
    ap.add_argument("--paper-sample-configs", type=int, help="default: the campaign's")
    ap.add_argument(
        "--quick", action="store_true", help="a check: tiny config, 2-position 2-config sample"
    )
    ap.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES),
        help="storage modes the 2 cells run in (full always: the reference)",
    )  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    if args.quick:  # where not given explicitly
        if args.config == ap.get_default("config"):
            args.config = str(ROOT / "tests/configs/tiny.yaml")
        if args.paper_sample == ap.get_default("paper_sample"):
            args.paper_sample = 2
        args.paper_sample_configs = args.paper_sample_configs or 2
    sys.path.insert(0, str(ROOT / "src"))
    header("bytes on disk per cell and at paper scale (benchmarks/storage.py)", ("abtem", "h5py"))
    import numpy as np

    from interface4d.config import load_config

    campaign = load_config(args.campaign)
    tmp = Path(tempfile.mkdtemp(prefix="i4d-storage-"))
    measured: dict[str, dict] = {}  # per storage mode, the 2 cells' run
    try:
        if args.results:
            results = Path(args.results)
            source = f"{results} (existing)"
            cfg_cells = None
        else:
            for mode in dict.fromkeys(["full", *args.modes]):
                out, _ = simulate_demo_cells(Path(args.config), tmp / f"wf-{mode}", store=mode)
                measured[mode] = mode_stats(out)
            results = tmp / "wf-full" / "results"
            for mode in measured:
                measured[mode]["same_datasets"] = same_datasets(results, tmp / f"wf-{mode}/results")
            source = f"2 cells of {args.config}"
            from interface4d.grid import enumerate_cells

            cfg_cells = len(enumerate_cells(load_config(args.config))[0])
        sims = sorted((results / "sims").rglob("*.h5"))
        reduced = sorted((results / "reduced").rglob("*.h5"))
        datasets = sorted((results / "datasets").glob("*.h5"))
        if not sims:
            sys.exit(f"no simulations under {results / 'sims'}")
        raw = [h5_stats(p, "cbed") for p in sims]
        red = [cell for p in reduced for cell in reduced_stats(p)]  # per cell of each block
        dsets = {p.name: h5_stats(p, "x") for p in datasets}
        sample = paper_sample(campaign, args.paper_sample, args.paper_sample_configs, tmp)
        paper = paper_shapes(campaign)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    def mean(xs):
        return float(np.mean(xs)) if xs else float("nan")

    n_cells = paper["cells"]
    patterns = math.prod(paper["cbed"][:2])
    px = math.prod(paper["cbed"][2:])
    rows = []

    # raw, measured
    per_pattern = [r["stored"] / math.prod(r["shape"][:2]) for r in raw]
    rows.append(
        [
            f"raw sims, measured ({source})",
            len(raw),
            "x".join(map(str, raw[0]["shape"])),
            fmt_bytes(mean([r["raw"] for r in raw])),
            fmt_bytes(mean([r["file"] for r in raw])),
            f"{mean([r['raw'] / r['stored'] for r in raw]):.2f}",
            fmt_bytes(mean(per_pattern)),
            fmt_bytes(sum(r["file"] for r in raw)),
            "",
        ]
    )
    # raw, paper settings sample
    s_patterns = math.prod(sample["shape"][:2])
    s_ratio = sample["raw"] / sample["stored"]
    s_per_pattern = sample["stored"] / s_patterns
    s_other = sample["file"] - sample["stored"]
    rows.append(
        [
            f"raw, paper settings sample ({sample['cell']}, {s_patterns} positions, "
            f"{sample['configs']} configs)",
            1,
            "x".join(map(str, sample["shape"])),
            fmt_bytes(sample["raw"]),
            fmt_bytes(sample["file"]),
            f"{s_ratio:.2f}",
            fmt_bytes(s_per_pattern),
            "",
            "",
        ]
    )
    # raw, paper scale extrapolated
    per_cell = s_per_pattern * patterns + s_other
    raw_paper_uncompressed = patterns * px * 4
    rows.append(
        [
            "raw sims, paper scale (extrapolated)",
            n_cells,
            "x".join(map(str, paper["cbed"])),
            fmt_bytes(raw_paper_uncompressed),
            fmt_bytes(per_cell),
            f"{raw_paper_uncompressed / (s_per_pattern * patterns):.2f}",
            fmt_bytes(s_per_pattern),
            fmt_bytes(per_cell * n_cells),
            ratio_text(per_cell * n_cells / PAPER_BYTES),
        ]
    )
    paper_layout = math.prod(PAPER_PATTERN) * 4
    rows.append(
        [
            "paper's layout 341x341x13x123 float32, uncompressed",
            n_cells,
            "x".join(map(str, PAPER_PATTERN)),
            fmt_bytes(paper_layout),
            fmt_bytes(paper_layout),
            "1.00",
            fmt_bytes(341 * 341 * 4),
            fmt_bytes(paper_layout * n_cells),
            ratio_text(paper_layout * n_cells / PAPER_BYTES),
        ]
    )
    rows.append(
        ["paper's stated total (Oxley et al. 2020)", "", "", "", "", "", "", "~350 GB", "1"]
    )

    # reduced
    paper_reduced = paper_datasets = float("nan")
    if red:
        r_raw = mean([r["raw"] for r in red])
        r_file = mean([r["file"] for r in red])
        r_other = r_file - r_raw  # average dataset + attributes (uncompressed datasets)
        rows.append(
            [
                "reduced (lines), measured",
                len(red),
                "x".join(map(str, red[0]["shape"])),
                fmt_bytes(r_raw),
                fmt_bytes(r_file),
                f"{mean([r['raw'] / r['stored'] for r in red]):.2f}",
                "",
                fmt_bytes(sum(r["file"] for r in red)),
                "",
            ]
        )
        lines_b = math.prod(paper["lines"]) * 4
        avg_b = math.prod(paper["average"]) * 4
        # the measured files' other bytes: the average array (scales) + attributes (fixed)
        fixed = r_other - math.prod(red[0]["shape"][1:]) * 4
        p_red = lines_b + avg_b + fixed
        paper_reduced = p_red * n_cells
        rows.append(
            [
                "reduced, paper scale (extrapolated)",
                n_cells,
                "x".join(map(str, paper["lines"])),
                fmt_bytes(lines_b),
                fmt_bytes(p_red),
                "1.00",
                "",
                fmt_bytes(p_red * n_cells),
                ratio_text(p_red * n_cells / PAPER_BYTES),
            ]
        )

    # datasets: `x` references the reduced files (a virtual dataset, no bytes of its own); a
    # dataset's bytes are its small arrays (y, split, cell, line), the mapping, the sources table
    # and the attributes. Paper scale: the measured file bytes per example x the examples (the
    # fixed bytes, attributes and layout text, spread over the few measured examples: an
    # upper bound).
    per_example: dict[str, list[float]] = {"classify": [], "regress": []}
    for name, d in dsets.items():
        ex = d.get("examples") or d["shape"][0]
        per_example["classify" if name.startswith("classify") else "regress"].append(d["file"] / ex)
        rows.append(
            [
                f"dataset {name}, measured",
                f"{ex} ex.",
                "x".join(map(str, d["shape"])),
                fmt_bytes(d["raw"] / ex),
                fmt_bytes(d["file"] / ex),
                "referenced" if d["virtual"] else f"{d['raw'] / d['stored']:.2f}",
                "per example",
                fmt_bytes(d["file"]),
                "",
            ]
        )
    if dsets:
        ex_raw = math.prod(paper["average"]) * 4
        n_cls = n_cells * paper["lines"][0]
        n_reg = paper["step_cells"]
        paper_datasets = 0.0
        for name, n, key in (
            ("classify.h5", n_cls, "classify"),
            (f"regress_t*.h5 (all {paper['thicknesses']})", n_reg, "regress"),
        ):
            each = max(per_example[key] or per_example["classify"] or per_example["regress"])
            paper_datasets += n * each
            rows.append(
                [
                    f"dataset {name}, paper scale (extrapolated)",
                    f"{n} ex.",
                    f"{n}x" + "x".join(map(str, paper["average"])),
                    fmt_bytes(ex_raw),
                    fmt_bytes(each),
                    "referenced",
                    "per example",
                    fmt_bytes(n * each),
                    ratio_text(n * each / PAPER_BYTES),
                ]
            )

    print(
        f"paper scale: {args.campaign}, {n_cells} cells, patterns {paper['cbed'][2]}x"
        f"{paper['cbed'][3]} px at {paper['sampling'][0]:.4f} mrad/px (abTEM's objects), "
        f"{patterns} per cell; reduction {campaign['reduction']['crop_mrad']} mrad, bin "
        f"{campaign['reduction']['bin']}, window_x {campaign['reduction']['window_x']}"
    )
    if cfg_cells:
        per = mean([r["file"] for r in raw]) + (mean([r["file"] for r in red]) if red else 0)
        print(
            f"the whole {args.config} campaign ({cfg_cells} cells): raw + reduced {fmt_bytes(per * cfg_cells)}"
        )
    print()
    print(
        table(
            [
                "what",
                "files / cells",
                "array (per cell; dataset: all)",
                "uncompressed per cell",
                "on disk per cell",
                "compression",
                "on disk per pattern",
                "total on disk",
                "x paper's 350 GB",
            ],
            rows,
        )
    )
    print()
    print(
        "compression = uncompressed array bytes / its stored bytes (gzip+shuffle level 1; "
        "reduced files are not compressed; a dataset's x references the reduced files, its "
        "bytes are its own small arrays, mapping and attributes). Units: 1 kB = 1000 B."
    )

    # storage modes at paper scale
    c = sample["cropped"]
    c_per_pattern = c["stored"] / math.prod(c["shape"][:2])
    stored = paper["stored"]
    cropped_cell = c_per_pattern * math.prod(paper["stored_shape"][:2]) + s_other
    whole_scan_cell = c_per_pattern * patterns + s_other
    band = stored["window_x"] or "the whole scan"
    kept = {"full": per_cell, "cropped": cropped_cell, "none": 0.0}
    layout = {
        "full": "x".join(map(str, paper["cbed"])),
        "cropped": "x".join(map(str, paper["stored_shape"])),
        "none": "(the cropped file until its block is reduced)",
    }
    peak = {
        "full": fmt_bytes(per_cell * n_cells),
        "cropped": fmt_bytes(cropped_cell * n_cells),
        "none": f"{fmt_bytes(cropped_cell * paper['largest_block'])} (largest block, "
        f"{paper['largest_block']} cells) .. {fmt_bytes(cropped_cell * n_cells)} (all cells)",
    }
    mode_rows = []
    for mode in MODES:
        m = measured.get(mode)
        demo = ""
        if m:
            demo = f"{m['sims']} files, {fmt_bytes(m['bytes'])}"
            if m["shape"]:
                demo += f" ({'x'.join(map(str, m['shape']))})"
            demo += f"; datasets {'=' if m['same_datasets'] else 'DIFFER from'} full's"
        total = kept[mode] * n_cells + paper_reduced
        mode_rows.append(
            [
                mode,
                demo,
                layout[mode],
                fmt_bytes(kept[mode]),
                fmt_bytes(kept[mode] * n_cells),
                peak[mode],
                fmt_bytes(total),
                fmt_bytes(total + paper_datasets),
                ratio_text(total / PAPER_BYTES),
            ]
        )
    mode_rows.append(
        [
            f"(cropped to +-{stored['crop_mrad']:g} mrad, whole scan)",
            "",
            "x".join(map(str, (*paper["cbed"][:2], *paper["stored_shape"][2:]))),
            fmt_bytes(whole_scan_cell),
            fmt_bytes(whole_scan_cell * n_cells),
            "",
            fmt_bytes(whole_scan_cell * n_cells + paper_reduced),
            "",
            ratio_text((whole_scan_cell * n_cells + paper_reduced) / PAPER_BYTES),
        ]
    )
    print()
    print(
        f"storage modes (simulation.store), paper scale: stored angle +-{stored['crop_mrad']:g} "
        f"mrad, band {band} (the campaign's store_crop_mrad / store_window_x, null: its "
        f"reduction's); cropped patterns {c_per_pattern / 1e3:.1f} kB on disk each "
        f"(compression {c['raw'] / c['stored']:.2f}, the sample's patterns cropped)"
    )
    print()
    print(
        table(
            [
                "store",
                "measured: 2 cells' simulation files left after the run",
                "paper: a cell's file",
                "per cell",
                "simulations kept",
                "simulations on disk at peak",
                "kept + reduced",
                "+ datasets",
                "kept + reduced, x paper's 350 GB",
            ],
            mode_rows,
        )
    )


if __name__ == "__main__":
    main()
