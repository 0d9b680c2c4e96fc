"""The report's top page: the campaign in one paragraph and its headline numbers.

Pure Python (json only): ``workflow/rules/common.smk`` imports it while planning, so it must not
pull NumPy, h5py or TensorFlow. The numbers come from ``<results>/metrics/headline.json``,
written by ``interface4d evaluate summary`` (:func:`interface4d.evaluate.summarise`); before the
evaluation has run there are none and the page says so.
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


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def lines(headline: Mapping[str, Any] | None) -> list[str]:
    """One reStructuredText bullet text per headline number (no leading ``- ``)."""
    if not headline:
        return ["No headline numbers yet: they appear once the evaluation rules have run."]
    out = []
    c = headline.get("classification") or {}
    if c:
        out.append(
            f"Step vs intermixing classification accuracy on held-out structures: "
            f"**{_num(c.get('accuracy'))}** ({c.get('n_val_examples')} validation examples "
            f"from {c.get('n_val_cells')} cells never trained on; ROC AUC {_num(c.get('auc'))}, "
            f"calibration error {_num(c.get('ece'))}). The paper reports ~0.97 on a random "
            "per-example split."
        )
        if c.get("cell_accuracy") is not None:
            out.append(
                f"Per held-out structure (the mean over its lines, as `interface4d predict` "
                f"treats the rows of a scan): **{_num(c.get('cell_accuracy'))}** of "
                f"{c.get('n_val_cells')} cells."
            )
    r = headline.get("regression") or {}
    if r:
        per = ", ".join(
            f"{t} Å: **{_num(m)}** (n={r.get('n_val_by_thickness', {}).get(t, '?')})"
            for t, m in r.get("mae_by_thickness", {}).items()
        )
        out.append(f"Step-position mean absolute error (fraction of the thickness): {per}.")
        ref = r.get("reference_thickness")
        tr = ", ".join(
            f"{t} Å: {_num(m)}" for t, m in r.get("transfer_mae_by_thickness", {}).items()
        )
        model = f"{float(ref):g} Å" if ref is not None else "reference"
        out.append(f"Transferability, the {model} model on every thickness (MAE): {tr}.")
    return out
