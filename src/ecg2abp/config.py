"""Configuration: YAML files layered in order, validated against the schema with defaults filled."""

from collections.abc import Mapping
from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ecg2abp.errors import InputError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"
# Keys renamed because their old name said something else: (section, old) → what to write now.
# Keys that moved (path → where to): refused in one line saying so, before the schema check.
RENAMED = {
    ("mlflow", "request_retries"): "mlflow.request_attempts (attempts, the first included: "
    "request_retries N is request_attempts N + 1)",
    ("train", "seed"): "train.seeds, a list (e.g. seeds: [0])",
    **{
        ("cluster", *key): "measured per rule: set-resources in profiles/slurm/config.yaml"
        for key in (
            ("mem_mb_floor",),
            ("mem_per_input_mb",),
            ("runtime_minutes", "ingest"),
            ("runtime_minutes", "split"),
        )
    },
}


def _holds(config: Mapping, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(config, Mapping) or key not in config:
            return False
        config = config[key]
    return True


@cache
def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _fill_defaults(instance: Any, schema: Mapping) -> None:
    """Insert schema defaults for missing object keys, recursively (in place)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra)


def _error_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _check(instance: dict, schema: Mapping, prefix: str = "") -> None:
    """InputError naming the first key of `instance` (at `prefix`) that `schema` refuses."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = prefix + _error_path(first) if first.absolute_path else prefix.rstrip(".")
        where = where or _error_path(first)
        if first.validator == "additionalProperties":
            unknown = sorted(set(first.instance) - set(first.schema.get("properties", {})), key=str)
            raise InputError(f"config: unknown key {', '.join(unknown)!s} in {where}")
        raise InputError(f"config: key {where}: {first.message}")


def _check_variant_settings(config: dict, schema: Mapping) -> None:
    """Each variant's own train/evaluate settings, checked as the settings it runs under."""
    for name, spec in config["variants"].items():
        shared = sorted(set(spec["train"]) & {"folds", "seeds"})
        if shared:
            raise InputError(
                f"config: key variants.{name}.train.{shared[0]}: one for every variant, "
                f"set it under `train`"
            )
        for section in ("train", "evaluate"):
            if spec[section]:
                merged = deep_merge(config[section], spec[section])
                _check(merged, schema["properties"][section], f"variants.{name}.{section}.")


def validate_config(config: Mapping) -> dict:
    """A validated copy of `config` with defaults filled in and `sweep` expanded into variants;
    InputError names the bad key."""
    from ecg2abp.sweep import expand_sweep

    for path, new in RENAMED.items():
        if _holds(config, path):
            raise InputError(f"config: key {'.'.join(path)} is now {new}")
    filled = deepcopy(dict(config))
    schema = load_schema()
    _fill_defaults(filled, schema)
    _check(filled, schema)
    filled = expand_sweep(filled)
    _fill_defaults(filled, schema)
    _check(filled, schema)
    _check_variant_settings(filled, schema)
    check_consistency(filled)
    return filled


GROUPED_PROTOCOLS = ("record", "part", "subject")  # the protocols that make `split.folds` folds


def n_folds(config: Mapping) -> int:
    """How many folds the configured split protocol makes."""
    split = config["split"]
    return split["folds"] if split["protocol"] in GROUPED_PROTOCOLS else 1


def check_consistency(config: Mapping) -> None:
    """Refuse settings that pass the schema one by one but not together, before any job runs."""
    from ecg2abp.data.cleaning import settings_from_config

    try:
        settings_from_config(config)  # min below max for ABP, SBP, DBP, PP; band below fs/2
    except InputError as err:
        raise InputError(f"config: {err}") from None
    synthetic = config["synthetic"]
    if synthetic["min_seconds"] > synthetic["max_seconds"]:
        raise InputError(
            f"config: synthetic.min_seconds ({synthetic['min_seconds']:g}) must not exceed "
            f"synthetic.max_seconds ({synthetic['max_seconds']:g})"
        )
    protocol, folds = config["split"]["protocol"], config["split"]["folds"]
    if config["normalisation"] == "minmax_all" and protocol != "paper":
        raise InputError(
            f"config: key normalisation: minmax_all takes the ECG min/max of test records too; "
            f"split.protocol {protocol} is leak-free, so use zscore or minmax (or protocol paper)"
        )
    if protocol in GROUPED_PROTOCOLS and folds < 2:
        raise InputError(f"config: split.folds {folds}: protocol {protocol} needs at least 2")
    chosen = config["train"]["folds"]
    made = n_folds(config)
    beyond = [fold for fold in ([] if chosen == "all" else chosen) if fold >= made]
    if beyond:
        raise InputError(
            f"config: train.folds: fold {beyond[0]} asked for, protocol {protocol} makes "
            f"{made} (folds 0 to {made - 1})"
        )
    for name, source in config["external"].items():
        if not Path(source).exists():
            raise InputError(f"config: external.{name}: {source}: no such file or folder")


def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """`base` updated by `overlay`, merging nested mappings instead of replacing them."""
    merged = deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = deepcopy(value)
    return merged


def read_yaml(path: Path | str) -> dict:
    """One YAML mapping from `path`, or an InputError naming the file."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read config file ({err})") from None
    except yaml.YAMLError as err:
        problem = str(err).replace("\n", " ")
        raise InputError(f"{path}: not valid YAML ({problem})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: config must be a mapping of keys to values")
    return loaded


def load_config(*paths: Path | str) -> dict:
    """Layer the YAML files in order (later wins), then validate and fill defaults."""
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, read_yaml(path))
    return validate_config(merged)
