"""Reading a gathered dataset whose ``x`` references the reduced files (an HDF5 virtual dataset,
issue 14) against the same examples copied (the earlier layout: one gzip+shuffle chunk per
example): bytes on disk, and the time to read every training batch of one epoch with
:class:`interface4d.datasets.H5Examples` (rows in a seeded random order, as training draws
them), best of ``--repeats`` (the files are in the page cache after the first pass).

The reduced files of ``--results`` (default results/) are copied into a temp folder and
gathered there by the library (``gather_classify``, the config's reduction block); the copied
layout is written from the same arrays.

    .venv/bin/python benchmarks/dataset_reads.py [--results results] [--config config.yaml]
        [--batch 32] [--repeats 3] [--paper-mappings 14209]

``--paper-mappings CELLS`` adds batch reads over a virtual ``x`` with the paper's mapping count
(one per cell), synthetic small arrays, against the same rows copied.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, fmt_bytes, header, table


def copy_layout(virtual: Path, out: Path) -> Path:
    """``virtual`` with ``x`` copied as the copying gather wrote it (everything else as is)."""
    import h5py

    with h5py.File(virtual) as src, h5py.File(out, "w") as dst:
        x = src["x"]
        d = dst.create_dataset(
            "x", shape=x.shape, dtype=x.dtype, chunks=(1, *x.shape[1:]),
            compression="gzip", compression_opts=4, shuffle=True,
        )  # fmt: skip
        for i in range(x.shape[0]):
            d[i] = x[i]
        for name in src:
            if name != "x":
                src.copy(src[name], dst, name)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    return out


def epoch_reads(path: Path, batch: int, repeats: int) -> tuple[float, int]:
    """Best wall time (s) of reading every training batch once, and the batches read."""
    import numpy as np

    from interface4d.datasets import H5Examples

    best = float("inf")
    with H5Examples(path, "train") as data:
        order = np.random.default_rng(0).permutation(data.indices)
        steps = max(1, len(order) // batch)
        for _ in range(repeats):
            t0 = time.perf_counter()
            for idx in np.array_split(order, steps):
                data.batch(idx)
            best = min(best, time.perf_counter() - t0)
    return best, steps


def paper_mappings(tmp: Path, cells: int, batch: int, draws: int) -> list[list[str]]:
    """The paper's mapping count: ``cells`` cells of 13 lines in 10 block files (small arrays:
    the count, not the bytes, is what a virtual read walks), ``x`` laid out by the library's
    own rule (:func:`interface4d.reducedrefs.x_layout`, one mapping per cell) and copied; the
    median time of reading ``batch`` random rows: through HDF5's virtual dataset, with
    H5Examples (straight from the reduced files), and from the copy."""
    import h5py
    import numpy as np

    from interface4d.datasets import H5Examples
    from interface4d.reduce import ReducedCell
    from interface4d.reducedrefs import x_layout

    shape = (13, 47, 5, 5)
    files = [tmp / "results/reduced" / f"b{i}.h5" for i in range(10)]
    files[0].parent.mkdir(parents=True)
    stubs = []
    handles = [h5py.File(f, "w") for f in files]
    for c in range(cells):
        d = handles[c % 10].create_dataset(f"c{c}/lines", data=np.full(shape, c, np.float32))
        d.parent.attrs["data_sha256"] = f"h{c}"
        stubs.append(ReducedCell(files[c % 10], {"cell": f"c{c}"}, {}, shape, (1, 1), None, {}))
    for h in handles:
        h.attrs["complete"] = True
        h.close()
    out = tmp / "results/datasets/paper.h5"
    out.parent.mkdir()
    examples = [(c, line, "train", 0.0) for c in range(cells) for line in range(shape[0])]
    layout, names = x_layout(out, stubs, examples)
    with h5py.File(out, "w") as fh:
        fh.create_virtual_dataset("x", layout, fillvalue=np.float32(np.nan))
        fh["y"] = np.zeros(len(examples), np.int8)
        fh["split"] = np.zeros(len(examples), np.uint8)
        fh["cell"] = np.array([f"c{c}" for c, *_ in examples], dtype=h5py.string_dtype())
        fh["line"] = np.array([line for _, line, *_ in examples], np.int16)
        text = h5py.string_dtype()
        fh["sources/cell"] = np.array([s.cell for s in stubs], dtype=text)
        fh["sources/file"] = np.array(names, dtype=text)
        fh["sources/data_sha256"] = np.array([f"h{c}" for c in range(cells)], dtype=text)
        fh.attrs["complete"] = True
    copied = copy_layout(out, tmp / "results/datasets/paper-copied.h5")
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"virtual": [], "H5Examples": [], "copied": []}
    with h5py.File(out) as fv, h5py.File(copied) as fc, H5Examples(out, "all") as data:
        readers = {
            "virtual": lambda rows: fv["x"][rows],
            "H5Examples": lambda rows: data.batch(rows)[0],
            "copied": lambda rows: fc["x"][rows],
        }
        for _ in range(draws):
            rows = np.sort(rng.choice(len(examples), batch, replace=False))
            for name, read in readers.items():
                t0 = time.perf_counter()
                x = read(rows)
                times[name].append(time.perf_counter() - t0)
                assert np.array_equal(x[:, 0, 0, 0], rows // shape[0]), name
    med = {k: float(np.median(v)) for k, v in times.items()}
    size = {"virtual": out, "H5Examples": out, "copied": copied}
    return [
        [f"{name} ({cells} cells, {len(examples)} rows)", fmt_bytes(size[name].stat().st_size),
         f"{med[name]:.4f}", f"{med[name] / med['copied']:.2f}"]
        for name in times
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="a results folder with reduced/")
    ap.add_argument("--config", default=str(ROOT / "config.yaml"), help="its reduction block")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--paper-mappings", type=int, default=0, metavar="CELLS",
        help="also time batches over a virtual x of CELLS cells (14209: the paper's), ~5 min",
    )  # fmt: skip
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    header("reading a referenced (virtual) dataset vs a copied one", ("h5py", "numpy"))
    import numpy as np

    from interface4d.config import load_config
    from interface4d.datasets import H5Examples, gather_classify

    reduction = load_config(args.config)["reduction"]
    tmp = Path(tempfile.mkdtemp(prefix="i4d-reads-"))
    try:
        shutil.copytree(Path(args.results) / "reduced", tmp / "results/reduced")
        blocks = sorted((tmp / "results/reduced").rglob("*.h5"))
        out = tmp / "results/datasets/classify.h5"
        gather_classify(blocks, out, out.with_suffix(".csv"), reduction)
        copied = copy_layout(out, tmp / "results/datasets/classify-copied.h5")
        with H5Examples(out, "all") as v, H5Examples(copied, "all") as c:
            same = np.array_equal(v.batch(v.indices)[0], c.batch(c.indices)[0])
            n, n_train = len(v), int(v.attrs["n_train"])
        rows, times = [], {}
        for name, path in (("copied (gzip chunk per example)", copied), ("referenced", out)):
            times[name], steps = epoch_reads(path, args.batch, args.repeats)
            rows.append([name, fmt_bytes(path.stat().st_size), f"{times[name]:.3f}", f"{steps}"])
        reduced = sum(p.stat().st_size for p in blocks)
        if args.paper_mappings:
            paper = paper_mappings(tmp / "paper", args.paper_mappings, args.batch, 9)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{args.results}: {len(blocks)} reduced files ({fmt_bytes(reduced)}), {n} examples "
        f"({n_train} training), batches of {args.batch}; x bit-identical: {same}"
    )
    print()
    print(table(["classify.h5", "on disk", "one epoch's reads, s (best)", "batches"], rows))
    ratio = times["referenced"] / times["copied (gzip chunk per example)"]
    print()
    print(f"referenced / copied read time: {ratio:.2f}")
    if args.paper_mappings:
        print()
        heads = [f"{args.batch} random rows", "on disk", "median s (9 draws)", "/ copied"]
        print(table(heads, paper))


if __name__ == "__main__":
    main()
