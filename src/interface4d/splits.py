"""The train/validation split of the campaign's cells (or examples), and the development cells
carved from the training cells.

The split (:func:`assign_split`) is a pure function of ``(seed, keys)``: each key gets
``u = sha256(f"{seed}:{key}")`` read as a number in [0, 1); within each *stratum* (a cell's kind
and thickness) the keys are ranked by ``u`` and the first ``round(val_fraction * n)`` of the
stratum's ``n`` keys go to the validation side (at least one and at most ``n - 1`` when ``n >= 2``;
a stratum of one key goes by ``u < val_fraction``). So every thickness holds out the same share of
its step cells and of its intermixed cells, whatever the hashes. The *structure* protocol splits
cell ids (a cell's examples all land on one side); the *random* protocol (the paper's) splits
example keys ``f"{cell}#{line}"``. Adding a key to a stratum moves at most one old key of that
stratum (the quota grows by at most one and the ranks shift by at most one); other strata are
untouched. With ``placement="even"`` (structure protocol) a stratum's quota is instead spaced
evenly along its step depths (Ti fractions and seeds) from one seeded offset
(:func:`_evenly_spaced`): the validation cells span the depth range, which a hash ranking does
not promise (the demo's seed 0 put all five 200 Å validation steps between 0.45 and 0.75 of
the thickness). :func:`dev_cells` carves the *development* cells (model selection, early stopping)
from the training cells by the same rule with another seed stream.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence

from interface4d.grid import parse_cell


def split_hash(seed: int | str, key: str) -> float:
    """The key's position in [0, 1): the first 8 bytes of sha256(f"{seed}:{key}")."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def example_key(cell: str, line: int) -> str:
    """The key of one line example under the random protocol."""
    return f"{cell}#{line}"


def _default_stratum(key: str) -> str:
    """The stratum of a cell id or example key: its cell's kind and thickness (unparseable keys
    share one)."""
    try:
        cell = parse_cell(key.split("#", 1)[0])
    except ValueError:
        return ""
    return f"{cell.kind}@{cell.thickness:g}"


PLACEMENTS = ("hash", "even")


def _natural_order(key: str) -> tuple:
    """Where a key sits along its stratum's grid axis: a step cell by its depth, a diffusion
    cell by its Ti fraction and seed (then the key, so that any keys have an order)."""
    try:
        c = parse_cell(key.split("#", 1)[0])
    except ValueError:
        return (math.inf, math.inf, key)
    if c.kind == "step":
        return (float(c.depth), 0.0, key)
    if c.kind == "diffusion":
        return (float(c.ti_fraction), float(c.seed), key)
    return (0.0, 0.0, key)


def _evenly_spaced(members: list[str], quota: int, seed: int | str, stratum: str) -> list[str]:
    """``quota`` of a stratum's ``n`` keys, evenly spaced along its grid axis from one seeded
    offset (systematic sampling): sorted, those at ``floor((i + u) n / quota)`` for
    ``i < quota``, ``u = split_hash(seed, 'offset:' + stratum)``. Over offsets every key is
    held out with the same probability ``quota / n`` (the ends too: no hard case is kept out
    of the validation), and two held-out keys are ``floor(n / quota)`` or one more apart."""
    ordered = sorted(members, key=_natural_order)
    u = split_hash(seed, f"offset:{stratum}")
    return [ordered[math.floor((i + u) * len(ordered) / quota)] for i in range(quota)]


def assign_split(
    keys: Iterable[str],
    val_fraction: float,
    seed: int | str,
    strata: Mapping[str, str] | None = None,
    placement: str = "hash",
) -> dict[str, str]:
    """{key: 'train' | 'val'} by the rule in the module doc.

    ``keys`` are cell ids (structure protocol) or example keys ``cell#line`` (random protocol);
    ``strata`` maps each key to its stratum (default: the kind and thickness of its cell).
    ``placement``: ``hash`` ranks a stratum's keys by their hash; ``even`` spaces its
    validation keys evenly along the stratum's step depths or Ti fractions
    (:func:`_evenly_spaced`), the same quota.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"reduction.val_fraction = {val_fraction!r}: must lie in (0, 1)")
    if placement not in PLACEMENTS:
        raise ValueError(f"reduction.placement = {placement!r}: must be one of {PLACEMENTS}")
    keys = list(dict.fromkeys(keys))
    u = {k: split_hash(seed, k) for k in keys}
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(strata[k] if strata is not None else _default_stratum(k), []).append(k)
    side = dict.fromkeys(keys, "train")
    for stratum, members in groups.items():
        n = len(members)
        if n == 1:
            quota = int(u[members[0]] < val_fraction)
        else:
            quota = min(max(int(math.floor(val_fraction * n + 0.5)), 1), n - 1)
        if placement == "even" and quota:
            held = _evenly_spaced(members, quota, seed, stratum)
        else:
            held = sorted(members, key=lambda k: (u[k], k))[:quota]
        for k in held:
            side[k] = "val"
    return side


def example_uid(cell: str, line: int) -> int:
    """A stable 63-bit id of one example (its cell and line; -1 for a unit-cell average): what
    the shuffle and the augmentation draws of training are keyed by, instead of the example's
    row in a file (which moves when other cells are added or removed)."""
    digest = hashlib.sha256(f"{cell}#{int(line)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def cell_strata(cells: Sequence[str], labels: Sequence[int] | None = None) -> dict[str, str]:
    """The stratum of each cell (:func:`assign_split`): kind and thickness from its id. Ids that
    are not cell ids (synthetic sets) share one stratum, or, given each example's class label
    (``labels``, parallel to ``cells``), take their class."""
    out = {c: _default_stratum(c) for c in cells}
    if labels is not None:
        for c, label in zip(cells, labels, strict=True):
            if out[c] == "" or out[c].startswith("class"):
                out[c] = f"class{int(label)}"
    return out


DEV_STREAM = "dev"


def dev_cells(
    cells: Sequence[str], fraction: float, seed: int, strata: Mapping[str, str] | None = None
) -> set[str]:
    """The development cells carved from training cells ``cells`` (the split rule with the
    seed ``f"dev{seed}"``, per stratum; a stratum of one cell keeps it for training): what model
    selection and early stopping look at, so that the validation cells are never seen before
    the final evaluation."""
    stratum = {c: strata[c] if strata is not None else _default_stratum(c) for c in cells}
    sizes: dict[str, int] = {}
    for s in stratum.values():
        sizes[s] = sizes.get(s, 0) + 1
    side = assign_split(cells, fraction, f"{DEV_STREAM}{int(seed)}", stratum)
    return {c for c, s in side.items() if s == "val" and sizes[stratum[c]] > 1}
