"""Synthetic descriptor datasets in the training format (training and evaluation tests,
benchmarks/train_throughput.py).

Layout (as ``interface4d.datasets`` writes it): ``x`` float32 (N, nx, k, k), each pattern summing
to <= 1; ``y`` int8 class (0 step, 1 diffusion) or float32 step fraction; ``split`` uint8
(0 train, 1 val); ``cell`` strings; ``x`` gzip-chunked one example per chunk; the ``complete``
attribute (:func:`interface4d.h5io.atomic_h5`) that readers require.

Patterns: a bright-field disc (radius k/5) whose centre wanders a little along the scan line,
a faint halo, plus, for class 1 (or with strength y for regression), a thin ring at radius
0.38 k. Separable by construction.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from interface4d.h5io import atomic_h5


def _patterns(rng: np.random.Generator, nx: int, k: int, ring: float) -> np.ndarray:
    c = (k - 1) / 2
    yy, xx = np.mgrid[:k, :k].astype(np.float64)
    rr = np.hypot(yy - c, xx - c)
    out = np.empty((nx, k, k), dtype=np.float32)
    for i in range(nx):
        dy, dx = rng.normal(0, 0.4, 2)
        r = np.hypot(yy - c - dy, xx - c - dx)
        disc = 1.0 / (1.0 + np.exp((r - k / 5) / 0.7))
        halo = 0.02 * np.exp(-rr / (k / 4))
        ring_i = ring * (1 + 0.1 * np.sin(i)) * np.exp(-0.5 * ((rr - 0.38 * k) / 0.9) ** 2)
        p = disc + halo + ring_i
        out[i] = p / p.sum() * 0.98
    return out


def write_dataset(
    path: str | Path,
    n: int = 64,
    nx: int = 4,
    k: int = 12,
    task: str = "classify",
    val_fraction: float = 0.25,
    seed: int = 0,
    ring: float = 0.08,
) -> Path:
    """``n`` examples of ``nx`` patterns of ``k x k`` px; a random ``val_fraction`` is val."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    n_val = max(1, round(n * val_fraction))
    split = np.zeros(n, dtype=np.uint8)
    split[rng.choice(n, n_val, replace=False)] = 1
    if task == "classify":
        y = (np.arange(n) % 2).astype(np.int8)
        rng.shuffle(y)
    else:
        y = rng.uniform(0.05, 0.95, n).astype(np.float32)
    with atomic_h5(path) as f:
        x = f.create_dataset(
            "x",
            (n, nx, k, k),
            dtype=np.float32,
            chunks=(1, nx, k, k),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
        for i in range(n):
            strength = (ring if y[i] else 0.0) if task == "classify" else ring * float(y[i])
            x[i] = _patterns(rng, nx, k, strength)
        f["y"] = y
        f["split"] = split
        f["cell"] = np.array([f"synthetic/{i:05d}" for i in range(n)], dtype=h5py.string_dtype())
    return path
