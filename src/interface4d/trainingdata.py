"""The examples a training run reads: the fit/development split of the training cells, the
input statistics, each rank's shuffled share of an epoch and the augmented batches.

Examples are identified by :func:`interface4d.splits.example_uid` (their cell and line), not
by their row in the file: the shuffle and the augmentation draws of a training example do not
depend on which other cells the file holds. The validation rows of the dataset are never read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SHUFFLE_STREAM = 2
STATS_STREAM = 4
STATS_EXAMPLES = 512
STATS_MIN_DRAWS = 64  # augmented draws the input statistics rest on, at least
SUBSPACE_MIN_DRAWS = 256  # noiseless draws the projected members' subspace rests on (project)


class TrainingData:
    """The training cells of one dataset, split into the cells the gradient steps see (``fit``)
    and the development cells (``dev``); batches read on demand by row number, never the whole
    file. The validation rows are not read."""

    def __init__(self, path: str | Path, task: str, dev_fraction: float, seed: int):
        from interface4d.datasets import H5Examples
        from interface4d.splits import cell_strata, dev_cells

        self.path = Path(path)
        self.task = task
        self.train = H5Examples(self.path, "train")
        self.example_shape = tuple(int(s) for s in self.train.example_shape)
        if len(self.example_shape) != 3:
            self.close()
            raise ValueError(f"{self.path}: examples must be (nx, k, k), not {self.example_shape}")
        rows = self.train.indices
        cells = self.train.cells[rows]
        self.dev_cells: list[str] = []
        if dev_fraction > 0:
            labels = self.train.targets(rows) if task == "classify" else None
            strata = cell_strata(cells, labels)
            self.dev_cells = sorted(dev_cells(sorted(set(cells)), dev_fraction, seed, strata))
        on_dev = np.isin(cells, self.dev_cells)
        self.fit_indices = self._by_uid(rows[~on_dev])
        self.dev_indices = self._by_uid(rows[on_dev])
        self.fit_cells = int(len(set(cells[~on_dev])))

    def _by_uid(self, rows: np.ndarray) -> np.ndarray:
        return rows[np.argsort(self.train.uids(rows), kind="stable")]

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.train.batch(indices)
        if self.task == "classify":
            if not np.isin(y, (0, 1)).all():
                raise ValueError(f"{self.path}: classification labels must be 0 or 1")
            y = y.astype(np.int32)
        else:
            y = y.astype(np.float32)
        return np.asarray(x, dtype=np.float32), y

    def labels(self, indices: np.ndarray) -> np.ndarray:
        return self.train.targets(indices).astype(np.int32)

    def close(self) -> None:
        self.train.close()


def class_weights(labels: np.ndarray, balance: str) -> np.ndarray:
    """Loss weight of each class (0 step, 1 intermixing): ``n / (2 n_c)`` with ``balance ==
    'weights'`` (each class weighs the same in the loss), else 1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2).astype(np.float64)
    if balance == "none" or (counts == 0).any():
        return np.ones(2, np.float32)
    return (counts.sum() / (2.0 * counts)).astype(np.float32)


def input_statistics(
    data: TrainingData,
    seed: int,
    transform_kind: str,
    augment: Mapping[str, Any],
    max_examples: int = STATS_EXAMPLES,
    batch: int = 64,
    min_draws: int = STATS_MIN_DRAWS,
    scale: str = "voxel",
    symmetry: str = "none",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-voxel mean and std (nx, k, k) of the transformed training inputs.

    From the ``fit`` examples (at most ``max_examples`` of them, a seeded subset) as the first
    epochs augment them: as many epochs' draws as make ``min_draws`` augmented examples. A
    regressor has one example per training cell (14 in the demo): one draw each gave per-voxel
    stds from 14 numbers, some voxels' near zero, whose standardised inputs then reached
    gradient norms of ~1000 in the first steps. ``scale``: the std per voxel or one scalar
    (:func:`interface4d.inputs.voxel_statistics`); ``symmetry``: the network's input symmetry,
    applied before the transform as its first layer applies it
    (:func:`interface4d.inputs.symmetrise`). Returns (mean, std, number of draws used).
    """
    from interface4d.inputs import voxel_statistics

    t = training_draws(
        data, seed, transform_kind, augment, max_examples, batch, min_draws, symmetry
    )
    mean, std = voxel_statistics(t, transform_kind, scale=scale)
    return mean, std, len(t)


def training_draws(
    data: TrainingData,
    seed: int,
    transform_kind: str,
    augment: Mapping[str, Any],
    max_examples: int = STATS_EXAMPLES,
    batch: int = 64,
    min_draws: int = STATS_MIN_DRAWS,
    symmetry: str = "none",
    shot_noise: bool = True,
) -> np.ndarray:
    """The transformed ``fit`` examples (at most ``max_examples`` of them, a seeded subset) as
    the first epochs augment them: as many epochs' draws as make ``min_draws`` examples, the
    input symmetry ``symmetry`` applied before the transform; ``shot_noise=False``: the same
    draws' rotations without the noise."""
    from interface4d.augment import augment_batch
    from interface4d.inputs import symmetrise, transform

    idx = data.fit_indices
    if len(idx) > max_examples:
        rng = np.random.default_rng([int(seed), STATS_STREAM])
        idx = idx[np.sort(rng.choice(len(idx), max_examples, replace=False))]
    parts = []
    draws = max(1, math.ceil(min_draws / max(len(idx), 1)))
    for epoch in range(draws):
        for i in range(0, len(idx), batch):
            rows = idx[i : i + batch]
            x, _ = data.read(rows)
            x = augment_batch(
                x,
                data.train.uids(rows),
                split="train",
                seed=seed,
                epoch=epoch,
                dose_range=augment["dose"],
                rotation_deg=augment["rotation_deg"],
                shot_noise=shot_noise,
            )
            parts.append(transform(symmetrise(x, symmetry), transform_kind))
    return np.concatenate(parts)


def input_subspace(draws: np.ndarray, mean: np.ndarray, std, k: int) -> np.ndarray:
    """The ``k`` leading principal directions (D, k), float32, of ``draws`` (transformed
    training draws, :func:`training_draws`) standardised with ``mean`` and ``std``: where the
    training examples vary (step depth, rotation, phonons). Shot noise, spread evenly over all
    D voxels, keeps a fraction k / D of its energy in them."""
    z = ((draws - mean) / std).reshape(len(draws), -1).astype(np.float64)
    z -= z.mean(0)
    k = min(int(k), len(z) - 1)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return vt[:k].T.astype(np.float32)


def shard_indices(indices: np.ndarray, seed: int, epoch: int, rank: int, size: int) -> np.ndarray:
    """This rank's training examples for ``epoch`` (shuffled, equal length on every rank)."""
    perm = np.random.default_rng([int(seed), SHUFFLE_STREAM, int(epoch)]).permutation(indices)
    usable = (len(perm) // size) * size
    return perm[:usable][rank::size]


def augmented_batches(
    data: TrainingData,
    indices: np.ndarray,
    batch_size: int,
    augment_kw: dict[str, Any],
    pool: ThreadPoolExecutor,
    mixup: float = 0.0,
    mix_space: str = "linear",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Augmented batches (x with a channel axis, y), in the order of ``indices``, the next one
    prepared in ``pool``. ``mixup > 0`` (training batches of a regressor): each example mixed
    with a partner from the fit examples first (:func:`interface4d.augment.mixup_draws`), the
    patterns in the space of input transform ``mix_space`` (:func:`interface4d.inputs.mix`)."""
    from interface4d.augment import augment_batch, mixup_draws
    from interface4d.inputs import mix

    def prepare(chunk: np.ndarray):
        x, y = data.read(chunk)
        uids = data.train.uids(chunk)
        if mixup > 0:
            pos, lam = mixup_draws(
                uids,
                seed=augment_kw["seed"],
                epoch=augment_kw["epoch"],
                pool_size=len(data.fit_indices),
                alpha=mixup,
            )
            xp, yp = data.read(data.fit_indices[pos])
            x = mix(x, xp, lam[:, None, None, None], mix_space)
            y = (lam * y + (1 - lam) * yp).astype(np.float32)
        x = augment_batch(x, uids, **augment_kw)
        return x[..., None], y

    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    pending = pool.submit(prepare, chunks[0]) if chunks else None
    for i in range(len(chunks)):
        batch = pending.result()
        pending = pool.submit(prepare, chunks[i + 1]) if i + 1 < len(chunks) else None
        yield batch
