"""Campaign configuration: load, fill defaults, validate against the JSON schema, check physics.

The same schema file validates the config at workflow start (``snakemake.utils.validate`` in
``workflow/rules/common.smk``) and in the library's own entry points (:func:`load_config`).
Errors name the offending key and value and are raised before any job starts.
"""

from __future__ import annotations

import copy
import math
import re
import reprlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from interface4d.physics import max_detector_angle, nz_for_thickness, snap_depth, wavelength

if TYPE_CHECKING:
    from jsonschema import ValidationError

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "config.schema.yaml"
_TOL = 1e-9  # Angstrom: bands that meet within this are the same


class ConfigError(ValueError):
    """A campaign configuration that cannot run. The message names the key and the value."""


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _extend_with_default(validator_class):
    """A validator that fills ``default`` values while it validates (as Snakemake's does)."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


MAX_ERROR_LINES = 20  # schema errors listed, at most (then a count of the rest)
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 1, 3, 6, 6
_SHORT.maxstring, _SHORT.maxother = 40, 40
_MAX_VALUE_CHARS = 60


def short_repr(value: Any) -> str:
    """``repr(value)`` abbreviated to one short line: a config error never dumps a whole block."""
    text = _SHORT.repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _join(path: Iterable[Any], *more: Any) -> str:
    return ".".join(str(p) for p in (*path, *more))


def _kind_of(schema: Mapping[str, Any]) -> str:
    """A few words for what a subschema accepts (the alternatives of a oneOf/anyOf)."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    types = schema.get("type")
    names = types if isinstance(types, list) else [types] if types else []
    words = []
    for name in names:
        if name == "array":
            n_min, n_max = schema.get("minItems"), schema.get("maxItems")
            count = f"{n_min} " if n_min is not None and n_min == n_max else ""
            item = (schema.get("items") or {}).get("type")
            words.append(f"a list of {count}{item + 's' if isinstance(item, str) else 'items'}")
        elif name == "null":
            words.append("null")
        else:
            words.append(f"a{'n' if name[0] in 'aeiou' else ''} {name}")
    return " or ".join(words) or "valid"


def _reason(err: ValidationError) -> str:
    """Why the value is refused, without repeating the value (the line shows it once)."""
    v, val = err.validator, err.validator_value
    if v == "type":
        names = val if isinstance(val, list) else [val]
        return "must be of type " + " or ".join(repr(n) for n in names)
    if v == "enum":
        return "must be one of " + ", ".join(repr(x) for x in val)
    if v == "const":
        return f"must be {val!r}"
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if v in bounds:
        return f"must be {bounds[v]} {val}"
    if v == "minItems":
        return f"needs at least {val} item{'s' if val != 1 else ''}"
    if v == "maxItems":
        return f"holds at most {val} item{'s' if val != 1 else ''}"
    if v == "uniqueItems":
        return "lists an item twice"
    if v == "pattern":
        return f"must match {val!r}"
    if v == "minLength":
        return f"needs at least {val} character{'s' if val != 1 else ''}"
    if v == "not" and val == {"multipleOf": 2}:
        return "must be odd (so that the binned patterns stay centred)"
    if v in ("oneOf", "anyOf") and "not valid under any" in err.message:
        return "must be " + " or ".join(_kind_of(sub) for sub in val)
    message = err.message
    lead = repr(err.instance)
    if message.startswith(lead + " "):  # jsonschema's messages start with the whole value
        message = message[len(lead) + 1 :]
    return short_repr(message) if len(message) > 200 else message


def schema_error_lines(
    errors: Iterable[ValidationError], prefix: Iterable[str | int] = ()
) -> list[str]:
    """One line per schema error (``jsonschema.ValidationError``): the key path and the value.

    ``prefix`` is the key path of the validated object inside the campaign config (e.g.
    ``["training"]`` when only that block is validated).
    """
    prefix = list(prefix)
    lines: list[str] = []
    for err in errors:
        path = [*prefix, *err.absolute_path]
        if err.validator == "required":
            block = "block" if not path else "key"
            missing = [k for k in err.validator_value if k not in err.instance]
            lines += [f"config: missing {block} '{_join(path, k)}'" for k in missing]
        elif err.validator == "additionalProperties":
            known = err.schema.get("properties") or {}
            patterns = err.schema.get("patternProperties") or {}
            unknown = [
                k
                for k in err.instance
                if k not in known and not any(re.search(p, k) for p in patterns)
            ]
            if known:
                hint = "allowed: " + ", ".join(sorted(known))
            else:
                hint = "keys must match " + " or ".join(repr(p) for p in patterns)
            lines += [f"config: unknown key '{_join(path, k)}' ({hint})" for k in unknown]
        elif "propertyNames" in err.absolute_schema_path:
            # the error's instance is the key itself, its path that of the enclosing object
            hint = f"allowed: {', '.join(err.validator_value)}" if err.validator == "enum" else ""
            hint = hint or _reason(err)
            lines.append(f"config: unknown key '{_join(path, err.instance)}' ({hint})")
        else:
            where = _join(path) if path else "<top level>"
            lines.append(f"config key '{where}' = {short_repr(err.instance)}: {_reason(err)}")
    lines = list(dict.fromkeys(lines))  # one line per missing key, however often reported
    if len(lines) > MAX_ERROR_LINES:
        rest = len(lines) - MAX_ERROR_LINES
        lines = [*lines[:MAX_ERROR_LINES], f"config: ... and {rest} more error(s)"]
    return lines


def _fill_and_check(schema: Mapping[str, Any], obj: dict[str, Any], prefix: list[str]) -> None:
    """Validate ``obj`` in place against ``schema``, filling its defaults; raise
    :class:`ConfigError` with one line per error, key paths under ``prefix``."""
    from jsonschema import validators

    cls = _extend_with_default(validators.validator_for(schema))
    errors = sorted(cls(schema).iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("\n".join(schema_error_lines(errors, prefix=prefix)))


def validate_schema(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place against the schema, filling defaults; return it.

    Raises :class:`ConfigError` with one line per error (see :func:`schema_error_lines`).
    """
    _fill_and_check(load_schema(), config, [])
    return config


def complete_block(name: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """One top-level block of a campaign (e.g. ``training``, ``evaluation``) validated against
    its part of the schema, with the schema's defaults filled in: the defaults live in the schema
    only. Raises :class:`ConfigError` with one line per error, the key paths under ``name``."""
    schema = load_schema()
    sub = {**schema["properties"][name], "$defs": schema["$defs"], "$schema": schema["$schema"]}
    cfg = copy.deepcopy(dict(block or {}))
    _fill_and_check(sub, cfg, [name])
    return cfg


def check_physics(config: Mapping[str, Any]) -> None:
    """Checks the schema cannot express. Raises :class:`ConfigError` naming the key and value.

    Each override is merged into the global blocks and the result checked as a whole (schema
    and physics). That each override matches at least one cell of the grid needs the cells:
    :func:`interface4d.grid.check_grid` checks it.
    """
    _check_blocks(config)
    _check_evaluation(config)
    _check_mirror(config)
    check_training(config["training"])
    _check_regressor_overrides(config)
    for i, o in enumerate(config.get("overrides") or []):
        merged = dict(config)
        for block in ("structure", "simulation"):
            if block in o:
                merged[block] = deep_merge(config[block], o[block])
        merged["overrides"] = []
        try:
            validate_schema(copy.deepcopy(merged))
            _check_blocks(merged)
        except ConfigError as exc:
            raise ConfigError(f"config key 'overrides.{i}' (cells {o['cells']!r}): {exc}") from None


def _check_evaluation(config: Mapping[str, Any]) -> None:
    """``evaluation.reference_thickness`` must be a thickness with step cells (a regressor)."""
    ref = (config.get("evaluation") or {}).get("reference_thickness")
    if ref is None:
        return
    grid = config["grid"]
    with_steps = sorted(grid["thickness"]) if grid.get("step_fraction") else []
    if not any(math.isclose(float(ref), float(t), abs_tol=1e-6) for t in with_steps):
        raise ConfigError(
            f"config key 'evaluation.reference_thickness' = {ref!r}: must be one of the grid's "
            f"thicknesses with step cells {with_steps} (its step-position model is applied to "
            "the other thicknesses)"
        )


def _check_blocks(config: Mapping[str, Any]) -> None:
    st = config["structure"]
    sim = config["simulation"]
    grid = config["grid"]
    a = st["lattice_constant"]
    n = st["interface_layer"]
    if n + 1 > st["cells_x"] - 1:
        raise ConfigError(
            f"config key 'structure.interface_layer' = {n}: the step moves the interface to layer "
            f"{n + 1}, which leaves no LaAlO3 in structure.cells_x = {st['cells_x']} unit cells"
        )
    # thickness and step resolution
    seen: dict[int, float] = {}
    for t in grid["thickness"]:
        nz = nz_for_thickness(t, a)
        if nz < 2:
            raise ConfigError(
                f"config key 'grid.thickness' = {t}: thinner than two unit cells "
                f"(lattice constant {a} A) along the beam"
            )
        if nz in seen:
            raise ConfigError(
                f"config key 'grid.thickness': {seen[nz]} and {t} both round to {nz} unit cells "
                f"({nz * a:.2f} A); list each thickness once"
            )
        seen[nz] = t
        for f in grid["step_fraction"]:
            depth = snap_depth(f, nz)
            if depth < 1 or depth > nz - 1:
                raise ConfigError(
                    f"config key 'grid.step_fraction' = {f}: thickness {t} A has {nz} unit cells "
                    f"along the beam, too thin for this step resolution (the step snaps to depth "
                    f"{depth}, i.e. no step inside the slab)"
                )
    # detector angle against what the sampling can hold
    lam = wavelength(sim["energy"])
    extent_x = st["cells_x"] * a
    extent_y = st["cells_y"] * a
    limit = max_detector_angle(sim["gpts"], max(extent_x, extent_y), lam)
    if sim["detector_max_angle"] > limit:
        raise ConfigError(
            f"config key 'simulation.detector_max_angle' = {sim['detector_max_angle']}: beyond "
            f"the {limit:.1f} mrad that simulation.gpts = {sim['gpts']} can hold over a "
            f"{max(extent_x, extent_y):.2f} A cell at {sim['energy']:g} eV (increase gpts)"
        )
    if sim["semiangle_cutoff"] >= sim["detector_max_angle"]:
        raise ConfigError(
            f"config key 'simulation.semiangle_cutoff' = {sim['semiangle_cutoff']}: the bright "
            f"field disc does not fit in simulation.detector_max_angle = "
            f"{sim['detector_max_angle']}"
        )
    window = sim["scan"]["window_x"]
    if window != "full":
        x0, x1 = window
        centre = (n - 0.5) * a
        if not x1 > x0:
            raise ConfigError(f"config key 'simulation.scan.window_x' = {window}: end <= start")
        if centre + x0 < 0 or centre + x1 > extent_x:
            raise ConfigError(
                f"config key 'simulation.scan.window_x' = {window}: leaves the "
                f"{extent_x:.2f} A cell (the interface is at x = {centre:.2f} A)"
            )
    _check_store(config)


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


def _check_regressor_overrides(config: Mapping[str, Any]) -> None:
    """Each ``training.regressor_overrides`` entry names thicknesses of the grid, leaves alone
    what the jobs read from the global block, and gives a valid regressor block."""
    thicknesses = [float(t) for t in config["grid"]["thickness"]]
    allowed = load_schema()["$defs"]["optimiser"]["properties"]
    for i, o in enumerate(config["training"].get("regressor_overrides") or []):
        key = f"training.regressor_overrides.{i}"
        for t in o["thickness"]:
            if float(t) not in thicknesses:
                raise ConfigError(
                    f"config key '{key}.thickness' = {t}: not a thickness of grid.thickness "
                    f"{config['grid']['thickness']}"
                )
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


def _check_mirror(config: Mapping[str, Any]) -> None:
    """``training.regressor.symmetrise: ky`` averages each pattern with its ky mirror, which is a
    symmetry of the patterns only under a round probe: refuse a non-round aberration."""
    reg = ((config.get("training") or {}).get("regressor")) or {}
    if reg.get("symmetrise", "none") == "none":
        return
    blocks = [("simulation", config["simulation"])] + [
        (f"overrides.{i}.simulation", o.get("simulation") or {})
        for i, o in enumerate(config.get("overrides") or [])
    ]
    for where, sim in blocks:
        for name, value in (sim.get("aberrations") or {}).items():
            angular = re.fullmatch(r"C\d(\d)", name)  # C<n><m>: m-fold; phi<n><m>: its angle
            if angular and angular[1] != "0" and float(value) != 0.0:
                raise ConfigError(
                    f"config key '{where}.aberrations.{name}' = {value!r}: not round, so the "
                    "patterns lose their ky mirror symmetry; training.regressor.symmetrise: ky "
                    "needs round aberrations (set it to none)"
                )


def _span(window: Any) -> str:
    return "null" if window is None else f"[{float(window[0]):g}, {float(window[1]):g}]"


def _check_store(config: Mapping[str, Any]) -> None:
    """With ``simulation.store`` cropped or none, the stored angle and band must lie inside
    what is simulated, and hold every pixel and probe position the reduction asks for."""
    sim, red = config["simulation"], config.get("reduction") or {}
    if sim["store"] == "full":
        return
    st = config["structure"]
    a, n = st["lattice_constant"], st["interface_layer"]
    centre = (n - 0.5) * a
    scan = sim["scan"]["window_x"]
    scanned = [-centre, st["cells_x"] * a - centre] if scan == "full" else [*map(float, scan)]
    scan_text = f"full ({_span(scanned)})" if scan == "full" else _span(scanned)
    mode = f"simulation.store = {sim['store']}"
    crop, crop_key = sim["store_crop_mrad"], "simulation.store_crop_mrad"
    if crop is None:
        crop, crop_key = red["crop_mrad"], "reduction.crop_mrad"
    if crop > sim["detector_max_angle"]:
        raise ConfigError(
            f"config key '{crop_key}' = {crop:g}: beyond simulation.detector_max_angle = "
            f"{sim['detector_max_angle']:g}, the detector that {mode} crops"
        )
    if red["crop_mrad"] > crop:
        raise ConfigError(
            f"config key 'reduction.crop_mrad' = {red['crop_mrad']:g}: more than "
            f"simulation.store_crop_mrad = {crop:g} keeps ({mode}); lower it, or raise "
            "simulation.store_crop_mrad (a change that simulates every cell again)"
        )
    band, band_key = sim["store_window_x"], "simulation.store_window_x"
    if band is None:
        band, band_key = red["window_x"], "reduction.window_x"
    if band is None:
        return  # the whole scan is kept, and the reduction reads no more
    lo, hi = float(band[0]), float(band[1])
    if not hi > lo:
        raise ConfigError(f"config key '{band_key}' = {_span(band)}: end <= start")
    if lo < scanned[0] - _TOL or hi > scanned[1] + _TOL:
        raise ConfigError(
            f"config key '{band_key}' = {_span(band)}: outside the simulated scan "
            f"simulation.scan.window_x = {scan_text} (A from the interface)"
        )
    asked = red["window_x"]
    want = scanned if asked is None else [float(w) for w in asked]
    if want[0] < lo - _TOL or want[1] > hi + _TOL:
        whole = f" (the whole scan, {_span(scanned)})" if asked is None else ""
        raise ConfigError(
            f"config key 'reduction.window_x' = {_span(asked)}{whole}: more than "
            f"simulation.store_window_x = "
            f"{_span(band)} keeps ({mode}); narrow it, or widen simulation.store_window_x (a "
            "change that simulates every cell again)"
        )


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Schema (with defaults) then physics checks. Returns the completed config.

    The checks that need the grid's cells follow in :func:`interface4d.grid.check_grid`.
    """
    validate_schema(config)
    check_physics(config)
    return config


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML campaign file, apply ``overrides`` (deep-merged), validate, return it.

    :func:`interface4d.grid.check_grid` adds the checks that need the grid's cells.
    """
    path = Path(path)
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(config).__name__}")
    if overrides:
        config = deep_merge(config, overrides)
    return validate_config(config)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
