"""A `sweep:` block expanded into named variants, one per point of its grid."""

import itertools
from copy import deepcopy

from ecg2abp.errors import InputError

SEPARATOR = "__"  # between the base variant's name and each setting-value pair


def _text(value: object) -> str:
    """A value as it appears in a variant name (yes/no as YAML writes them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def point_name(base: str, values: dict) -> str:
    """`base__key-value__key-value`, settings in the order the sweep lists them."""
    return SEPARATOR.join([base, *(f"{key}-{_text(value)}" for key, value in values.items())])


def grid(settings: dict[str, list]) -> list[dict]:
    """Every combination of the settings' values, the last setting varying fastest."""
    keys = list(settings)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*settings.values())]


def sweep_points(sweep: dict) -> dict[str, tuple[str, dict]]:
    """Variant name → (the variant swept, its values), for every point of every grid."""
    return {
        point_name(base, values): (base, values)
        for base, settings in sweep.items()
        for values in grid(settings)
    }


def with_value(spec: dict, dotted: str, value: object) -> dict:
    """A copy of a variant entry with one setting (`width`, `train.lr`, …) set."""
    changed = deepcopy(spec)
    *parents, last = dotted.split(".")
    entry = changed
    for key in parents:
        entry = entry.setdefault(key, {})
    entry[last] = value
    return changed


def expand_sweep(config: dict) -> dict:
    """`config` with each swept variant replaced, where it stood, by its grid points.

    Idempotent: a config already expanded (the base gone, every point there) is returned as is.
    `run_variants` naming a swept variant names its points instead."""
    sweep = config.get("sweep") or {}
    points = sweep_points(sweep)
    variants = config["variants"]
    for base in sweep:
        mine = [name for name, (swept, _) in points.items() if swept == base]
        if base not in variants and not all(name in variants for name in mine):
            raise InputError(f"config: sweep.{base}: no variant {base!r} under `variants`")
    expanded: dict = {}
    for name, spec in variants.items():
        if name not in sweep:
            expanded[name] = spec
            continue
        for point in _points_of(name, points, sweep):
            entry = spec
            for key, value in points[point][1].items():
                entry = with_value(entry, key, value)
            expanded[point] = entry
    run = config.get("run_variants")
    if run:
        run = [point for name in run for point in _points_of(name, points, sweep)]
    return {**config, "variants": expanded, "run_variants": run}


def _points_of(name: str, points: dict, sweep: dict) -> list[str]:
    if name not in sweep:
        return [name]
    return [point for point, (base, _) in points.items() if base == name]
