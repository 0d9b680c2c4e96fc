# Config validation, the parameter grid and input functions. Imports only pure-Python parts of
# the library (no ASE, abTEM or TensorFlow): planning 14,000 cells must stay fast.
import copy
import functools
import shlex
import sys
import tempfile
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from interface4d import headline  # noqa: E402
from interface4d.config import ConfigError, training_for, validate_config  # noqa: E402
from interface4d.fftplan import workflow_wisdom_dir  # noqa: E402
from interface4d.grid import (  # noqa: E402
    CELL_PATTERN,
    BLOCK_PATTERN,
    blocks_of,
    check_grid,
    enumerate_cells,
    fmt,
    parse_cell,
)
from interface4d.settings import (  # noqa: E402
    EVAL_MODULES,
    EXECUTION_KEYS,
    GATHER_MODULES,
    REDUCE_KEYS,
    REDUCE_MODULES,
    STORE_KEYS,
    TRAIN_MODULES,
    JsonDict,
    code_hash,
    settings_maker,
)

# The library's check first: its messages name the key path and value (and it adds the
# physics checks the schema cannot express, and those that need the grid's cells); then
# Snakemake's own validation of the same schema.
# A config error ends the run with its one line (it names the key and value), no traceback.
try:
    validate_config(config)
    check_grid(config)
except ConfigError as exc:
    sys.exit(f"interface4d: {exc}")
validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
CELLS, DUPLICATES = enumerate_cells(config)
CELL_IDS = [c.id for c in CELLS]
THICKNESSES = [fmt(t) for t in config["grid"]["thickness"]]
PACKAGE = Path(workflow.basedir) / "src" / "interface4d"
CODE = code_hash(PACKAGE)
REDUCE_CODE = code_hash(PACKAGE, REDUCE_MODULES)
GATHER_CODE = code_hash(PACKAGE, GATHER_MODULES)
TRAIN_CODE = code_hash(PACKAGE, TRAIN_MODULES)
EVAL_CODE = code_hash(PACKAGE, EVAL_MODULES)
LEARNED_KINDS = ("step", "diffusion")

# The report's top page (workflow/report/workflow.rst) reads these through Jinja; the schema
# forbids a user key of this name, and no job's params include it.
config["_report"] = {
    "n_cells": len(CELLS),
    "headline": headline.lines(headline.load(f"{RESULTS}/metrics/headline.json")),
}

if DUPLICATES:
    logger.warning(
        f"grid: {len(DUPLICATES)} step fractions land on a depth already in the grid and are "
        f"simulated once, e.g. {DUPLICATES[0]} (interface4d validate lists them all)"
    )


wildcard_constraints:
    cell=CELL_PATTERN,
    block=BLOCK_PATTERN,
    thickness=r"[0-9]+(?:\.[0-9]+)?",


MAKE_SETTINGS = settings_maker(config, code=CODE)


@functools.cache
def settings_of(cell_id):
    """Every physical setting of one cell: the single dict param of its jobs (built once per
    cell: Snakemake asks for it more than once per job, and JsonDict is never changed).
    """
    return JsonDict(MAKE_SETTINGS(cell_id))


def cell_params(wildcards):
    return settings_of(wildcards.cell)


# Cells by (thickness, kind) and by thickness, built once: input functions run per job.
CELLS_BY = {}
for _c in CELLS:
    CELLS_BY.setdefault((fmt(_c.thickness), _c.kind), []).append(_c)
    CELLS_BY.setdefault((fmt(_c.thickness), None), []).append(_c)


def cells_of_thickness(thickness, kind=None):
    return list(CELLS_BY.get((thickness, kind), []))


def sim_output(path):
    """A simulation file: a temp() output with `store: none` (removed by Snakemake once every
    job reading it is done: its block's reduction, the thickness's scan figure)."""
    return temp(path) if config["simulation"]["store"] == "none" else path


def showcase_cell(wildcards):
    """The cell whose scan illustrates a thickness (Fig. 2d-e): its middle step."""
    steps = cells_of_thickness(wildcards.thickness, "step")
    cells = steps or cells_of_thickness(wildcards.thickness)
    return cells[len(cells) // 2].id


def showcase_sim(wildcards):
    return f"{RESULTS}/sims/{showcase_cell(wildcards)}.h5"


def drawn_structures():
    """A few structures per kind from the first thickness, for the report."""
    n = config["report"]["structures_per_kind"]
    first = THICKNESSES[0]
    chosen = []
    for kind in ("step", "diffusion"):
        cells = cells_of_thickness(first, kind)
        if n and cells:
            idx = sorted(
                {round(i * (len(cells) - 1) / max(n - 1, 1)) for i in range(n)}
            )
            chosen += [cells[i].id for i in idx]
    return JsonDict(cells=[settings_of(c) for c in chosen])


def dataset_outputs():
    out = [f"{RESULTS}/datasets/classify.h5"]
    out += [
        f"{RESULTS}/datasets/regress_t{t}.h5"
        for t in THICKNESSES
        if cells_of_thickness(t, "step")
    ]
    return out


def model_outputs():
    out = [f"{RESULTS}/models/classifier.keras"]
    out += [
        f"{RESULTS}/models/regressor_t{t}.keras"
        for t in THICKNESSES
        if cells_of_thickness(t, "step")
    ]
    return out


def figure_outputs():
    out = [f"{RESULTS}/figures/scan/t{t}.png" for t in THICKNESSES]
    if config["report"]["structures_per_kind"]:
        out.append(f"{RESULTS}/figures/structures.png")
    return out


def sim_mem_mb():
    """Rough peak memory of a simulate job (MB) at the grid's largest thickness: one constant
    for every cell (a resource Snakemake need not evaluate per job: 14,000 cells plan faster).
    """
    sim = config["simulation"]
    waves = sim["max_batch"] * sim["gpts"] ** 2 * 8 * 4
    thickest = max(config["grid"]["thickness"])
    potential = sim["gpts"] ** 2 * 4 * thickest / sim["slice_thickness"]
    return int(1000 + (waves + potential) / 1e6)


# The system temporary folder of the host that parses the Snakefile (a cluster job parses it
# again on its node), as Snakemake's default `tmpdir` resource would give; set per rule as a
# constant because Snakemake evaluates the default's expression for every job (4 s of the
# paper-scale dry run). A site's own tmpdir for simulations: --set-resources simulate:tmpdir=...
SYSTEM_TMPDIR = tempfile.gettempdir()

# Where CPU simulations share their measured FFTW plans (interface4d.fftplan: the first cell
# of a CPU type measures them, every other reuses them, so all compute the same bits, ~1.5x
# faster than estimated plans on AMD EPYC). $INTERFACE4D_FFTW_WISDOM overrides; empty: none.
FFTW_WISDOM = workflow_wisdom_dir()


def sim_launcher():
    """The simulate job's prefix: with GPUs, each cell takes a GPU of its own (gpu-slot), so
    the cells a cluster group runs at once on a node do not all land on device 0. On CPUs,
    interface4d-warm runs the job in a child of a server that imported abTEM once (~5 s a
    cell; interface4d.warm). Cluster profiles set their own launcher."""
    if config["simulation"]["device"] == "gpu":
        return shlex.quote(
            str(Path(workflow.basedir) / "workflow" / "scripts" / "gpu-slot")
        )
    return "interface4d-warm"


# Reduction blocks: the learned cells of one kind and thickness (its buried steps; its
# intermixed cells of every Ti fraction and seed); one reduce job and one file each.
BLOCKS = blocks_of(c for c in CELLS if c.kind in LEARNED_KINDS)


def block_sims(wildcards):
    return [f"{RESULTS}/sims/{c.id}.h5" for c in BLOCKS[wildcards.block]]


def reduced_blocks(blocks):
    return [f"{RESULTS}/reduced/{b}.h5" for b in blocks]


# What a cell's reduction depends on (not the split: that is the gathers' business); the same
# for every cell, so built once.
REDUCTION = JsonDict(
    reduction={k: config["reduction"][k] for k in REDUCE_KEYS},
    code=REDUCE_CODE,
)


def reduction_params(wildcards):
    return REDUCTION


def gather_params(thickness=None):
    """How a dataset gathers its reduced blocks (its input files): the split protocol. Not the
    grid: a new cell reaches a dataset only through a changed input block."""
    spec = {
        "reduction": config["reduction"],
        "thickness": thickness,
        "code": GATHER_CODE,
    }
    return JsonDict(spec)


def classify_inputs(wildcards):
    return reduced_blocks(BLOCKS)


def regress_inputs(wildcards):
    return reduced_blocks([f"t{wildcards.thickness}/step"])


def training_params(task):
    """The training block as one network sees it (the other network's optimiser and the
    per-thickness overrides left out). A plain value, not a function of the job's threads:
    Snakemake leaves a param that reads threads out of its rerun check, so a changed training
    block would retrain nothing. The rule passes its threads (the Horovod ranks, which a profile
    may set) as ``--ranks``.
    """
    return JsonDict(training_for(config["training"], task))


def regressor_training(wildcards):
    """The training block of one thickness's regressor: its ``regressor_overrides`` merged."""
    return JsonDict(
        training_for(config["training"], "regressor", float(wildcards.thickness))
    )


def regress_thicknesses():
    """Thicknesses with step cells: each has a step-position model."""
    return [t for t in THICKNESSES if cells_of_thickness(t, "step")]


def evaluation_params():
    """The evaluation block (doses, reference thickness, examples)."""
    return JsonDict(config["evaluation"])


def regression_inputs(kind):
    pattern = {
        "models": "models/regressor_t{t}.keras",
        "histories": "models/regressor_t{t}_history.csv",
        "datasets": "datasets/regress_t{t}.h5",
        "manifests": "datasets/regress_t{t}.csv",
    }[kind]
    return [f"{RESULTS}/{pattern.format(t=t)}" for t in regress_thicknesses()]


def summary_inputs(wildcards):
    out = {
        "classifier": f"{RESULTS}/metrics/classifier.json",
        "classifier_predictions": f"{RESULTS}/metrics/classifier_predictions.csv",
    }
    if regress_thicknesses():
        out["regression"] = f"{RESULTS}/metrics/regression.json"
        out["regression_predictions"] = f"{RESULTS}/metrics/regression_predictions.csv"
    return out


def evaluation_outputs():
    return [f"{RESULTS}/metrics/headline.json", f"{RESULTS}/models/model_card.json"]


CARD_BLOCKS = (
    "campaign",
    "grid",
    "structure",
    "simulation",
    "overrides",
    "reduction",
    "training",
)


def _canonical(x):
    """Numbers spelled one way (40.0 -> 40, 0.30 -> 0.3), so respelling reruns nothing."""
    if isinstance(x, float):
        return int(x) if x.is_integer() else round(x, 10)
    if isinstance(x, dict):
        return {k: _canonical(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_canonical(v) for v in x]
    return x


def card_params():
    """The config blocks the model card reads (beam, lattice, scan, augmentation), canonical
    and without the execution settings (device, threads, batching) and what the simulation
    files keep (simulation.store), which change no model.
    """
    blocks = copy.deepcopy({k: config[k] for k in CARD_BLOCKS if k in config})
    for sim in [blocks["simulation"]] + [
        o.get("simulation", {}) for o in blocks.get("overrides") or []
    ]:
        for key in (*EXECUTION_KEYS, *STORE_KEYS):
            sim.pop(key, None)
    return JsonDict(_canonical(blocks))


def card_regress_args(wildcards, input):
    return " ".join(
        f"--regress {t} {d} {m}"
        for t, d, m in zip(
            regress_thicknesses(), input.datasets, input.models, strict=True
        )
    )


def network_ranks(network):
    """Horovod ranks of one network's training job (its own ``ranks``, else training.ranks)."""
    training = config["training"]
    return (training.get(network) or {}).get("ranks") or training["ranks"]


def launcher(wildcards, threads):
    """How a training job starts its Horovod ranks (the rule's threads): horovodrun here;
    profiles set jsrun/srun."""
    return (
        f"horovodrun -np {threads} -H localhost:{threads} --gloo" if threads > 1 else ""
    )


CLASSIFIER_FIGURES = (
    "training",
    "performance",
    "accuracy_by_group",
    "examples",
    "saliency",
)
REGRESSION_FIGURES = (
    "training",
    "predicted_vs_true",
    "examples",
    "error_vs_thickness",
    "transfer_predicted_vs_true",
    "transfer_error",
)


def eval_figure(group, name, caption, category, subcategory=None):
    """An evaluation figure (PNG) marked for the report; its SVG twin is a plain output."""
    return report(
        f"{RESULTS}/figures/{group}/{name}.png",
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=subcategory,
    )
