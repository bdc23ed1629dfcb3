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
RENAMED = {
    ("mlflow", "request_retries"): "mlflow.request_attempts (attempts, the first included: "
    "request_retries N is request_attempts N + 1)",
}


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


def validate_config(config: Mapping) -> dict:
    """A validated copy of `config` with defaults filled in; InputError names the bad key."""
    for (section, old), new in RENAMED.items():
        if isinstance(config.get(section), Mapping) and old in config[section]:
            raise InputError(f"config: key {section}.{old} is now {new}")
    filled = deepcopy(dict(config))
    schema = load_schema()
    _fill_defaults(filled, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        if first.validator == "additionalProperties":
            unknown = sorted(set(first.instance) - set(first.schema.get("properties", {})), key=str)
            where = _error_path(first)
            raise InputError(f"config: unknown key {', '.join(unknown)!s} in {where}")
        raise InputError(f"config: key {_error_path(first)}: {first.message}")
    _refuse_leaky_settings(filled)
    return filled


def _refuse_leaky_settings(config: Mapping) -> None:
    """Settings whose results would be leaky under a protocol that is labelled leak-free."""
    protocol = config["split"]["protocol"]
    if config["normalisation"] == "minmax_all" and protocol != "paper":
        raise InputError(
            f"config: key normalisation: minmax_all takes the ECG min/max of test records too; "
            f"split.protocol {protocol} is leak-free, so use zscore or minmax (or protocol paper)"
        )


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
