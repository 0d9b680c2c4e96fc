"""The ``training`` block's checks that the schema cannot express, and the block as each
network's training job sees it (:func:`training_for`: one network's settings, a regressor's
per-thickness ``regressor_overrides`` merged in).

:func:`interface4d.config.check_physics` runs the checks when a campaign's config is validated,
before any job; :func:`interface4d.train.complete_training_config` runs :func:`check_training`
again on the block a training job is given. Pure Python: the workflow imports it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from interface4d.config import ConfigError, complete_block, deep_merge, load_schema

OVERRIDE_FIXED = ("ranks", "symmetrise")  # read from training.regressor by the job and baseline


def training_for(
    training: Mapping[str, Any], task: str, thickness: float | None = None
) -> dict[str, Any]:
    """The ``training`` block as one network sees it: the other network's block and the
    per-thickness overrides left out (so a change to one of them retrains nothing else); the
    regressor of ``thickness`` gets its ``regressor_overrides`` merged into its block, in order.
    ``task``: ``classifier`` or ``regressor``."""
    other = "regressor" if task == "classifier" else "classifier"
    out = {
        k: copy.deepcopy(v) for k, v in training.items() if k not in (other, "regressor_overrides")
    }
    if task == "regressor" and thickness is not None:
        for o in training.get("regressor_overrides") or []:
            if any(float(t) == float(thickness) for t in o["thickness"]):
                out["regressor"] = deep_merge(out.get("regressor") or {}, o["regressor"])
    return out


def check_regressor_overrides(config: Mapping[str, Any]) -> None:
    """Each ``training.regressor_overrides`` entry names thicknesses of the grid, leaves alone
    what the jobs read from the global block, and gives a valid regressor block."""
    thicknesses = [float(t) for t in config["grid"]["thickness"]]
    for i, o in enumerate(config["training"].get("regressor_overrides") or []):
        key = f"training.regressor_overrides.{i}"
        for t in o["thickness"]:
            if float(t) not in thicknesses:
                raise ConfigError(
                    f"config key '{key}.thickness' = {t}: not a thickness of grid.thickness "
                    f"{config['grid']['thickness']}"
                )
        allowed = load_schema()["$defs"]["optimiser"]["properties"]
        for k in o["regressor"]:
            if k not in allowed:
                raise ConfigError(
                    f"config key '{key}.regressor.{k}': unknown key (the keys of "
                    "training.regressor are allowed)"
                )
        for k in OVERRIDE_FIXED:
            if k in o["regressor"]:
                raise ConfigError(
                    f"config key '{key}.regressor.{k}' = {o['regressor'][k]!r}: set it in "
                    "training.regressor (every thickness's job and baseline read it there)"
                )
        for t in o["thickness"]:
            try:
                check_training(
                    complete_block("training", training_for(config["training"], "regressor", t))
                )
            except ConfigError as exc:
                raise ConfigError(f"config key '{key}' (thickness {t}): {exc}") from None


def check_training(training: Mapping[str, Any]) -> None:
    """The ``training`` block's checks the schema cannot express (``training`` completed with
    its defaults): options of the step-position regressors set on the classifier, path fits
    without the path, more projected members than members, a dose range low > high."""
    regressors_only = {
        "skip": ("none", "the linear skip"),
        "symmetrise": ("none", "the mirror average"),
        "mixup": (0.0, "mixup"),
        "project": (0, "the projection of a member's input"),
    }
    for key, (off, what) in regressors_only.items():
        if training["classifier"][key] != off:
            raise ConfigError(
                f"config key 'training.classifier.{key}' = {training['classifier'][key]!r}: {what} "
                "applies to the step-position regressors only"
            )
    path_fits = {
        "skip_init": ("zeros", "a warm start"),
        "skip_refit": ("none", "a refit of the linear path"),
    }
    for block in ("classifier", "regressor"):
        b = training[block]
        for key, (off, what) in path_fits.items():
            # the additive refit works on an ensemble's mean; a start or a replacement does not
            single = not (key == "skip_refit" and b[key] == "ridge")
            if b[key] != off and (b["skip"] != "linear" or (single and int(b["members"]) != 1)):
                raise ConfigError(
                    f"config key 'training.{block}.{key}' = {b[key]!r}: {what} needs skip: "
                    "linear" + (" and members: 1" if single else "")
                )
    reg = training["regressor"]
    if int(reg["project"]) > 0 and int(reg["projected_members"]) > int(reg["members"]):
        raise ConfigError(
            f"config key 'training.regressor.projected_members' = {reg['projected_members']}: "
            f"more than the regressor's members ({reg['members']})"
        )
    lo, hi = training["augment"]["dose"]
    if lo > hi:
        raise ConfigError(f"config key 'training.augment.dose' = {[lo, hi]}: low > high")
