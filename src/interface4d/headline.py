"""The report's top page: the campaign in one paragraph and its headline numbers.

Pure Python (json only): ``workflow/rules/common.smk`` imports it while planning, so it must not
pull NumPy, h5py or TensorFlow. The numbers come from ``<results>/metrics/headline.json``,
written by ``interface4d evaluate summary`` (:func:`interface4d.evaluate.summarise`); before the
evaluation has run there are none and the page says so. Every number stands beside its 95 %
interval, the count it rests on and the linear baseline's number on the same cells.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def load(path: str | Path) -> dict[str, Any] | None:
    """The headline numbers, or None when the file is missing or unreadable."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def num(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or ``n/a`` for a missing or non-finite number."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def _ci(x: Any) -> str:
    return f"[{num(x[0])}, {num(x[1])}]" if x else "[n/a]"


def _acc(c: Mapping[str, Any], b: Mapping[str, Any], key: str, unit: str) -> str:
    return (
        f"**{num(c.get(key))}** {_ci(c.get(f'{key}_ci95'))} on {c.get(f'{key}_n')} {unit} "
        f"(linear baseline {num(b.get(key))} {_ci(b.get(f'{key}_ci95'))})"
    )


def lines(headline: Mapping[str, Any] | None) -> list[str]:
    """One reStructuredText bullet text per headline number (no leading ``- ``)."""
    if not headline:
        return ["No headline numbers yet: they appear once the evaluation rules have run."]
    out = []
    c = headline.get("classification") or {}
    b = c.get("baseline") or {}
    if c:
        out.append(
            "Step vs intermixing on held-out structures (95 % Wilson intervals): per line "
            + _acc(c, b, "accuracy", "lines")
            + f"; balanced accuracy {num(c.get('balanced_accuracy'))} "
            f"(baseline {num(b.get('balanced_accuracy'))}); ROC AUC {num(c.get('auc'))}. "
            "The paper reports ~0.97 on a random per-example split."
        )
        if c.get("cell_accuracy") is not None:
            near = c.get("near_exit_cells") or {}
            right = sum(bool(v) for v in near.values())
            out.append(
                "Per held-out structure (the mean over its lines, as `interface4d predict` "
                "treats the rows of a scan): "
                + _acc(c, b, "cell_accuracy", "cells")
                + "; without the steps in the last 10 % of the thickness "
                + _acc(c, b, "cell_accuracy_detectable", "cells")
                + f"; those near-exit steps, reported apart: {right} of {len(near)} right."
            )
    r = headline.get("regression") or {}
    if r:
        cis = r.get("mae_ci95_by_thickness") or {}
        base = r.get("baseline_mae_by_thickness") or {}
        cells = r.get("n_val_cells_by_thickness") or r.get("n_val_by_thickness") or {}
        per = ", ".join(
            f"{t} Å: **{num(m)}** {_ci(cis.get(t))} on {cells.get(t, '?')} cells "
            f"(ridge baseline {num(base.get(t))})"
            for t, m in r.get("mae_by_thickness", {}).items()
        )
        draws = int(r.get("val_draws", 1))
        each = (
            f"each held-out cell's error the mean over {draws} draws of dose and rotation, "
            if draws > 1
            else ""
        )
        out.append(
            f"Step-position mean absolute error (fraction of the thickness, {each}95 % "
            f"bootstrap intervals over held-out cells): {per}."
        )
        ref = r.get("reference_thickness")
        tr = ", ".join(
            f"{t} Å: {num(m)}" for t, m in r.get("transfer_mae_by_thickness", {}).items()
        )
        model = f"{float(ref):g} Å" if ref is not None else "reference"
        out.append(f"Transferability, the {model} model on every thickness (MAE): {tr}.")
    out += list(headline.get("verdict") or [])
    return out
