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

    filled = deepcopy(dict(config))
    if "seed" in (filled.get("train") or {}):
        raise InputError("config: key train.seed is now train.seeds, a list (e.g. seeds: [0])")
    schema = load_schema()
    _fill_defaults(filled, schema)
    _check(filled, schema)
    filled = expand_sweep(filled)
    _fill_defaults(filled, schema)
    _check(filled, schema)
    _check_variant_settings(filled, schema)
    return filled


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
