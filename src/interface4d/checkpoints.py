"""Training checkpoints, the run fingerprint they are resumed by, and the history CSV.

A checkpoint (``ckpt-epochNNNN.npz``: weights, optimizer state, the best epoch's weights,
epoch, history, fingerprint and the selection state) is written atomically; the last
``CKPT_KEEP`` are kept. A run resumes from the latest one whose fingerprint matches and whose
epoch is within its ``epochs`` (:func:`resume`); the others are deleted. The schedule and the
broadcasting between ranks are :mod:`interface4d.train`'s.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interface4d.h5io import atomic_path

log = logging.getLogger("interface4d.checkpoints")

CKPT_PREFIX = "ckpt-epoch"
CKPT_KEEP = 2
CKPT_PER_RUN = 30  # checkpoints every epochs // 30 epochs (every epoch for runs under 60)


def checkpoint_interval(epochs: int) -> int:
    """Epochs between checkpoints in a run of ``epochs`` (the last epoch always gets one)."""
    return max(1, epochs // CKPT_PER_RUN)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def fingerprint(
    task: str, cfg: Mapping[str, Any], optimiser: Mapping[str, Any], ranks: int, dataset_sha: str
) -> str:
    """sha256 of what a checkpoint must share with a run to be resumed by it: the task, model,
    ``optimiser`` block of ``cfg`` (less ``epochs``), seed, input, class balance,
    augmentation, rank count and dataset."""
    opt = dict(optimiser)
    opt.pop("epochs", None)
    key = {
        "task": task,
        "model": cfg["model"],
        "optimiser": opt,
        "seed": cfg["seed"],
        "input": cfg["input"],
        "class_balance": cfg["class_balance"],
        "augment": cfg["augment"],
        "ranks": ranks,
        "dataset_sha256": dataset_sha,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _checkpoint_path(checkpoint_dir: Path, epoch: int) -> Path:
    return checkpoint_dir / f"{CKPT_PREFIX}{epoch:04d}.npz"


def list_checkpoints(checkpoint_dir: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the complete checkpoints in ``checkpoint_dir``, oldest first."""
    d = Path(checkpoint_dir)
    out = []
    for p in d.glob(f"{CKPT_PREFIX}*.npz"):
        digits = p.name[len(CKPT_PREFIX) : -len(".npz")]
        if digits.isdigit():
            out.append((int(digits), p))
    return sorted(out)


def save_checkpoint(
    checkpoint_dir: str | Path,
    epoch: int,
    model,
    optimizer,
    history,
    fingerprint: str,
    best: Sequence[np.ndarray] | None = None,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``ckpt-epochNNNN.npz`` atomically (temp file + rename); keep the last two.

    ``best``: the weights of the best development epoch so far; ``state``: JSON-able training
    state (best epoch and score, whether early stopping ended the run)."""
    d = Path(checkpoint_dir)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "history": history, "fingerprint": fingerprint, **(state or {})}
    arrays = {f"model_{i:04d}": v.numpy() for i, v in enumerate(model.trainable_variables)}
    arrays.update({f"opt_{i:04d}": v.numpy() for i, v in enumerate(optimizer.variables)})
    arrays.update({f"best_{i:04d}": np.asarray(a) for i, a in enumerate(best or [])})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = _checkpoint_path(d, epoch)
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    for _, old in list_checkpoints(d)[:-CKPT_KEEP]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, model, optimizer) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Restore weights and optimizer state; return the checkpoint's meta (epoch, history, ...)
    and the best epoch's weights it holds."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        mv, ov = model.trainable_variables, optimizer.variables
        if sum(k.startswith("model_") for k in z.files) != len(mv) or sum(
            k.startswith("opt_") for k in z.files
        ) != len(ov):
            raise ValueError(f"{path}: does not match the model/optimizer")
        for i, v in enumerate(mv):
            v.assign(z[f"model_{i:04d}"])
        for i, v in enumerate(ov):
            v.assign(z[f"opt_{i:04d}"])
        best = [z[k] for k in sorted(k for k in z.files if k.startswith("best_"))]
    return meta, best


def _peek_meta(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z["meta"].tobytes().decode())
    except Exception as exc:  # a damaged file: ignore it, it will be replaced
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None


def initial_state() -> dict[str, Any]:
    """The selection state of a run that has not started: no best epoch yet, not stopped."""
    return {"best_epoch": 0, "best_score": float("inf"), "stopped": False}


def resume(checkpoint_dir: Path, fingerprint: str, epochs: int, model, optimizer):
    """Load the latest checkpoint of this fingerprint (others are removed) into ``model`` and
    ``optimizer``: (start epoch, history, best weights or None, state)."""
    state = initial_state()
    for ep, path in reversed(list_checkpoints(checkpoint_dir)):
        meta = _peek_meta(path)
        if meta is not None and meta.get("fingerprint") == fingerprint and ep <= epochs:
            meta, best = load_checkpoint(path, model, optimizer)
            log.info("resuming from checkpoint %s (epoch %d done)", path, ep)
            state.update({k: meta[k] for k in state if k in meta})
            return int(meta["epoch"]), list(meta["history"]), best or None, state
        log.warning(
            "removing checkpoint %s: another config, dataset or rank count, or beyond epoch %d",
            path,
            epochs,
        )
        path.unlink(missing_ok=True)
    return 0, [], None, state


def write_history_csv(path: str | Path, history: Sequence[Mapping[str, Any]], metric: str) -> None:
    """The history CSV: ``epoch, loss, <metric>, dev_loss, dev_<metric>``, floats as ``repr``."""
    cols = ["epoch", "loss", metric, "dev_loss", f"dev_{metric}"]
    lines = [",".join(cols)]
    for rec in history:
        lines.append(",".join([str(int(rec["epoch"]))] + [repr(float(rec[c])) for c in cols[1:]]))
    write_text_atomic(Path(path), "\n".join(lines) + "\n")


def read_history_csv(path: str | Path) -> list[dict[str, float]]:
    """The rows of a history CSV (``epoch`` an int, the rest floats)."""
    with open(path, newline="") as fh:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]
