"""Command-line entry points (``interface4d <command>``). Each is thin glue to one library call.

Heavy imports (ASE, abTEM, matplotlib) happen inside the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from interface4d.config import ConfigError


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )


def _settings(args) -> dict:
    from interface4d.simulate import settings_from_json

    if args.settings:
        return settings_from_json(args.settings)
    if not (args.config and args.cell):
        raise SystemExit("give --settings JSON, or --config FILE and --cell ID")
    from interface4d.config import load_config
    from interface4d.grid import check_grid
    from interface4d.settings import cell_settings

    return cell_settings(check_grid(load_config(args.config)), args.cell)


def cmd_validate(args) -> int:
    from interface4d.config import load_config
    from interface4d.grid import check_grid, enumerate_cells

    config = check_grid(load_config(args.config))
    cells, duplicates = enumerate_cells(config)
    for d in duplicates:
        print(f"note: {d}")
    kinds: dict[str, int] = {}
    for c in cells:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    print(
        f"{args.config}: valid; {len(cells)} cells ({', '.join(f'{v} {k}' for k, v in kinds.items())})"
    )
    if args.list:
        for c in cells:
            print(c.id)
    return 0


def cmd_structure(args) -> int:
    from ase.io import write

    from interface4d.structures import build_from_settings

    settings = _settings(args)
    atoms = build_from_settings(settings)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write(out, atoms, format="extxyz")
    print(f"{settings['cell']}: {len(atoms)} atoms -> {out}")
    return 0


def cmd_simulate(args) -> int:
    from interface4d.fftplan import default_wisdom_dir
    from interface4d.jitcache import import_abtem
    from interface4d.simulate import simulate_cell

    import_abtem()  # abTEM's Numba kernels compiled once per machine, not once per cell

    _setup_logging(args.verbose)
    simulate_cell(
        _settings(args),
        args.output,
        device=args.device,
        threads=args.threads,
        max_batch=args.max_batch,
        fftw_wisdom=args.fftw_wisdom or default_wisdom_dir(),
    )
    return 0


def cmd_reduce(args) -> int:
    from interface4d.reduce import reduce_cells

    _setup_logging()
    spec = json.loads(args.reduction)
    reduce_cells(args.inputs, args.output, spec.get("reduction", spec), workers=args.workers)
    print(f"reduce: {len(args.inputs)} cells -> {args.output}", file=sys.stderr)
    return 0


def cmd_gather(args) -> int:
    from interface4d.datasets import gather_classify, gather_regress

    _setup_logging()
    spec = json.loads(args.spec)
    if args.task == "classify":
        gather_classify(args.inputs, args.output, args.manifest, spec["reduction"])
    else:
        if spec.get("thickness") is None:
            raise SystemExit("gather regress: --spec needs a 'thickness'")
        gather_regress(
            args.inputs, spec["thickness"], args.output, args.manifest, spec["reduction"]
        )
    print(f"{args.task}: {len(args.inputs)} reduced files -> {args.output}", file=sys.stderr)
    return 0


def cmd_plot_structures(args) -> int:
    from interface4d.figures.campaign import plot_structures

    plot_structures(json.loads(args.settings)["cells"], args.output)
    return 0


def cmd_plot_scan(args) -> int:
    from interface4d.figures.campaign import plot_scan_montage

    plot_scan_montage(args.input, args.output, n_patterns=args.patterns)
    return 0


def cmd_model_card(args) -> int:
    from interface4d.modelcard import write_model_card

    config = json.loads(args.config_json)
    regress = {t: (d, m) for t, d, m in (args.regress or [])}
    out = write_model_card(
        args.output,
        classify_h5=args.classify_dataset,
        classifier_model=args.classifier,
        regress=regress,
        config=config,
    )
    logging.getLogger("interface4d").info("model card written: %s", out)
    return 0


def cmd_export(args) -> int:
    from interface4d.export import ExportError, export_cell
    from interface4d.resimulate import ResimulationError

    _setup_logging()  # a re-simulation's progress on stderr
    try:
        out = export_cell(
            args.cell,
            args.format,
            args.output,
            results=args.results,
            configfile=args.configfile,
            full=args.full,
            device=args.device,
        )
    except (ExportError, ResimulationError, ConfigError, OSError) as exc:
        print(f"interface4d export: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.cell} -> {out} ({args.format})")
    return 0


EXPORT_EPILOG = """\
what a cell's export reads, by simulation.store of the campaign:
  full     its file <results>/sims/<cell>.h5: the whole detector and scan
  cropped  its file, which holds the stored CBED centre and probe band only; with --full
           the cell is simulated again (the whole detector and scan)
  none     (the default store) the campaign keeps no file: the cell is simulated again,
           the whole detector and scan
A re-simulation runs the campaign's simulate job in this process (the settings, seeds,
device, threads, max_batch and FFTW wisdom folder the workflow uses, from --configfile) into
a temporary file beside the output, removed once exported; progress goes to stderr, and the
export's provenance ('resimulated') records why and how. With the same device and FFT plans
it is bit for bit what the campaign computed. Where the campaign's reduced block holds the
cell, the config's settings are checked against those it recorded. Valid cells:
interface4d validate CONFIG --list.
"""


# Commands whose modules import TensorFlow or pandas: each brings its own parser, loaded only
# when that command runs (a simulate job does not pay for their imports).
LAZY = {
    "train": ("interface4d.train", "train a network (Horovod-aware)"),
    "evaluate": ("interface4d.evaluate", "evaluate networks, headline numbers, dose study"),
    "predict": ("interface4d.predict", "classify / regress your own 4D-STEM data"),
}


def _add_lazy(sub, name: str, module: str, text: str, load: bool) -> None:
    """The subcommand ``name`` with ``module.build_parser()``'s arguments and ``module.run`` as
    its function when ``load``; otherwise only its line in ``interface4d --help``."""
    if not load:
        sub.add_parser(name, help=f"{text}; see interface4d {name} --help", add_help=False)
        return
    import importlib

    mod = importlib.import_module(module)
    own = mod.build_parser()
    sp = sub.add_parser(
        name,
        help=text,
        parents=[own],
        add_help=False,
        description=own.description,
        epilog=own.epilog,
    )
    sp.set_defaults(func=mod.run)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``interface4d`` parser; ``command`` (the first argument) loads that lazy command."""
    p = argparse.ArgumentParser(prog="interface4d", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate a campaign config and count its cells")
    v.add_argument("config")
    v.add_argument("--list", action="store_true", help="print every cell id")
    v.set_defaults(func=cmd_validate)

    def cell_args(sp):
        sp.add_argument("--settings", help="the cell's settings as JSON (what the workflow passes)")
        sp.add_argument("--config", help="campaign config (with --cell)")
        sp.add_argument("--cell", help="cell id, e.g. t100/step-d8")

    s = sub.add_parser("structure", help="write one cell's structure as extxyz")
    cell_args(s)
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_structure)

    m = sub.add_parser("simulate", help="simulate one cell to HDF5")
    cell_args(m)
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--max-batch", type=int, default=48)
    m.add_argument(
        "--fftw-wisdom",
        metavar="DIR",
        nargs="?",
        const="",  # given empty (the workflow's INTERFACE4D_FFTW_WISDOM=): estimated plans
        help="share measured FFTW plans through this folder (CPU; default $INTERFACE4D_FFTW_WISDOM;"
        " none or empty: estimated plans)",
    )
    m.add_argument("-v", "--verbose", action="store_true")
    m.set_defaults(func=cmd_simulate)

    r = sub.add_parser(
        "reduce", help="crop, band and cut simulated cells into examples (one file for all)"
    )
    r.add_argument("inputs", nargs="+", metavar="SIM", help="simulated cells (.h5)")
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--reduction", required=True, help="the reduction block as JSON")
    r.add_argument("--workers", type=int, default=1, help="cells reduced at once (processes)")
    r.set_defaults(func=cmd_reduce)

    g = sub.add_parser("gather", help="gather reduced cells into a split dataset")
    g.add_argument("task", choices=["classify", "regress"])
    g.add_argument("inputs", nargs="+", metavar="REDUCED", help="reduced blocks (.h5)")
    g.add_argument(
        "--spec", required=True, help='JSON {"reduction": {...}, "thickness": A (regress)}'
    )
    g.add_argument("-o", "--output", required=True)
    g.add_argument("--manifest", required=True)
    g.set_defaults(func=cmd_gather)

    ps = sub.add_parser("plot-structures", help="draw structures (beam projection, side view)")
    ps.add_argument(
        "--settings", required=True, help='JSON {"cells": [settings of each structure]}'
    )
    ps.add_argument("-o", "--output", required=True)
    ps.set_defaults(func=cmd_plot_structures)

    for name, (module, text) in LAZY.items():
        _add_lazy(sub, name, module, text, load=name == command)

    mc = sub.add_parser(
        "model-card", help="write the model card interface4d predict reads beside the models"
    )
    mc.add_argument("--config-json", required=True, help="the campaign config as JSON")
    mc.add_argument("--classify-dataset", required=True)
    mc.add_argument("--classifier", required=True)
    mc.add_argument(
        "--regress",
        nargs=3,
        action="append",
        metavar=("THICKNESS", "DATASET", "MODEL"),
        help="one step-position model and its dataset (repeat per thickness)",
    )
    mc.add_argument("-o", "--output", required=True)
    mc.set_defaults(func=cmd_model_card)

    pm = sub.add_parser("plot-scan", help="mean-intensity image and CBED montage of one cell")
    pm.add_argument("input")
    pm.add_argument("-o", "--output", required=True)
    pm.add_argument("--patterns", type=int, default=8)
    pm.set_defaults(func=cmd_plot_scan)

    ex = sub.add_parser(
        "export",
        help="one simulated cell as EMD 1.0 (py4DSTEM, rosettasciio) or an abTEM zarr store",
        description="Export one cell of the campaign (simulated again where the campaign kept "
        "no file for it: see below).",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ex.add_argument("cell", help="cell id, e.g. t100/step-d5 (the file <results>/sims/<cell>.h5)")
    ex.add_argument("--format", required=True, choices=["emd", "zarr"])
    ex.add_argument("-o", "--output", help="default: <results>/export/<cell>.emd|.zarr")
    ex.add_argument(
        "--configfile",
        "--config",
        dest="configfile",
        metavar="FILE",
        help="the campaign config, as given to snakemake --configfile (default: config.yaml)",
    )
    ex.add_argument(
        "--results", help="the campaign's results folder (default: the config's 'results')"
    )
    ex.add_argument(
        "--full",
        action="store_true",
        help="the whole detector and scan: simulate the cell again if its file is cropped",
    )
    ex.add_argument(
        "--device",
        choices=["cpu", "gpu"],
        help="where a re-simulation runs (default: the config's simulation.device; the "
        "campaign's bits need the campaign's device)",
    )
    ex.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"interface4d: {exc}", file=sys.stderr)
        return 2
