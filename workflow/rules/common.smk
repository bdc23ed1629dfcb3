# Shared by every stage: the validated config, where things live, which parts exist.
import json
import sys
from pathlib import Path

from ecg2abp.config import validate_config
from ecg2abp.errors import InputError
from ecg2abp.data.ingest import discover_parts
from ecg2abp.models import spec as model_spec
from ecg2abp.data.synth import part_stems as synthetic_part_stems


def synthetic_parts(settings):
    """Part name → None (not a user file) for the synthetic data set."""
    return {stem: None for stem in synthetic_part_stems(settings["parts"], settings["layout"])}


try:
    config.update(validate_config(config))
    PARTS = (
        discover_parts(Path(config["data_dir"]), config["parts_glob"])
        if config["data_dir"]
        else synthetic_parts(config["synthetic"])
    )
    VARIANTS = config["run_variants"] or list(config["variants"])
    for name in VARIANTS:
        if name not in config["variants"]:
            raise InputError(f"run_variants: {name!r} is not declared under `variants`")
        model_spec(config["variants"][name]["model"])
except InputError as err:
    sys.exit(f"ecg2abp: error: {err}")

EXP = config["experiment"]
RESULTS = f"results/{EXP}"
LOGS = f"logs/{EXP}"
PROTOCOL = config["split"]["protocol"]


wildcard_constraints:
    part="[^/]+",
    variant="[^/]+",
    fold="[0-9]+",


def raw_part(wildcards):
    """The raw input of one part: a configured file/folder, or the synthetic part file."""
    source = PARTS[wildcards.part]
    return str(source) if source is not None else f"{RESULTS}/synthetic/{wildcards.part}.mat"


def shard_files():
    return expand(f"{RESULTS}/shards/{{part}}.h5", part=sorted(PARTS, key=natural_key))


def natural_key(name):
    """part_2 before part_10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def gpus_for(variant):
    """Deep models can use one GPU; classical baselines, the naive floor and jobs told to run
    on the CPU (train.device: cpu) need none, so those run side by side, one per core."""
    if variant == "naive" or config["train"]["device"] == "cpu":
        return 0
    return int(model_spec(config["variants"][variant]["model"]).kind == "deep")


def folds():
    """Fold numbers to run: read from the split file once the split checkpoint has run."""
    with open(checkpoints.split.get().output.split) as handle:
        n_folds = json.load(handle)["n_folds"]
    chosen = config["train"]["folds"]
    if chosen == "all":
        return list(range(n_folds))
    missing = [fold for fold in chosen if fold >= n_folds]
    if missing:
        sys.exit(f"ecg2abp: error: train.folds: fold {missing[0]} asked for, split has {n_folds}")
    return list(chosen)


def fold_metrics():
    return expand(
        f"{RESULTS}/eval/{{variant}}/fold_{{fold}}/metrics.json",
        variant=[*VARIANTS, "naive"],
        fold=folds(),
    )


def all_targets():
    return [
        *expand(f"{RESULTS}/clean/{{part}}.parquet", part=PARTS),
        f"{RESULTS}/metrics.parquet",
        f"{RESULTS}/summary.md",
    ]
