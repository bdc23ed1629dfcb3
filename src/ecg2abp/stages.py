"""What each stage's outputs depend on: the config slice per stage, and its fingerprint.

The workflow's rules carry these fingerprints as `params`, so that Snakemake's rerun triggers
rerun a job exactly when its slice changes; model files and MLflow runs carry the training one.
Settings that only say where or how fast a job runs (threads, device, cluster, mlflow, …) are in
no slice: changing them reruns nothing.
"""

import hashlib
import json
from typing import Any

from ecg2abp.config import deep_merge
from ecg2abp.sweep import sweep_points

NAIVE = "naive"
RUN_ONLY_TRAIN_KEYS = ("folds", "seeds", "device", "checkpoint_minutes")
RUN_ONLY_KEYS = ("threads", "gpu_slots", "cluster", "mlflow")
JOB_DIR = "{variant}/fold_{fold}/seed_{seed}"  # a job's folder under models/, eval/, external/…
DATA_KEYS = ("data_dir", "parts_glob", "synthetic", "fs", "window", "stride", "ecg_lead")


def fingerprint(value: Any) -> str:
    """SHA-256 of the value's canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def short(value: Any) -> str:
    """The first 12 hex digits of the fingerprint: what a rule's params carry."""
    return fingerprint(value)[:12]


def variant_spec(config: dict, variant: str) -> dict | None:
    """The variant's model entry (model, width, options); the naive floor has only a model."""
    if variant == NAIVE:
        return {"model": NAIVE}
    entry = config["variants"].get(variant)
    if entry is None:
        return None
    return {key: value for key, value in entry.items() if key not in ("train", "evaluate")}


def variant_train(config: dict, variant: str) -> dict:
    """`train` with the variant's own `variants.NAME.train` laid over it."""
    own = config["variants"].get(variant, {}).get("train", {})
    return deep_merge(config["train"], own)


def variant_evaluate(config: dict, variant: str) -> dict:
    """`evaluate` with the variant's own `variants.NAME.evaluate` laid over it."""
    own = config["variants"].get(variant, {}).get("evaluate", {})
    return deep_merge(config["evaluate"], own)


def seeds(config: dict) -> list[int]:
    return list(config["train"]["seeds"])


def job_config(config: dict, variant: str, seed: int | None = None) -> dict:
    """The config one job of `variant` runs under (from a validated config): the variant's
    train and evaluate settings, with `train.seeds` replaced by this job's `train.seed` (the
    first of the list unless given)."""
    train = variant_train(config, variant)
    listed = train.pop("seeds")
    train["seed"] = int(listed[0] if seed is None else seed)
    return {**config, "train": train, "evaluate": variant_evaluate(config, variant)}


def decisive_train(spec: dict, job: dict) -> dict:
    """What decides trained weights, from a job's config: the model entry, the training
    settings (this seed), and every data, split and normalisation setting upstream."""
    train = {k: v for k, v in job["train"].items() if k not in RUN_ONLY_TRAIN_KEYS}
    upstream = {key: job.get(key) for key in (*DATA_KEYS, "cleaning", "split")}
    normalisation = {k: job[k] for k in ("normalisation", "abp_normalisation")}
    return {"variant": spec, "train": train, **upstream, **normalisation}


# --- one slice per stage (the rules' params) ------------------------------------------------


def ingest_settings(config: dict) -> dict:
    """A part's shard and cleaning report: sampling, window index, lead and cleaning."""
    return {key: config[key] for key in ("fs", "window", "stride", "ecg_lead", "cleaning")}


def split_settings(config: dict) -> dict:
    return {"split": config["split"], "window": config["window"]}


def train_settings(config: dict, variant: str, seed: int) -> dict:
    """One variant × seed's training (any fold): see decisive_train."""
    return decisive_train(variant_spec(config, variant), job_config(config, variant, seed))


def seedless_train_settings(config: dict, variant: str) -> dict:
    """A variant's training over every seed: train_settings less the seed (its parent run)."""
    settings = train_settings(config, variant, 0)
    del settings["train"]["seed"]
    return settings


def evaluate_settings(config: dict, variant: str) -> dict:
    """Scoring a model: the variant's evaluate settings and the ECG normalisation."""
    return {"evaluate": variant_evaluate(config, variant), "normalisation": config["normalisation"]}


def report_settings(config: dict, *keys: str) -> dict:
    """The named `report` settings (a report job reads only some)."""
    return {key: config["report"][key] for key in keys}


def results_settings(config: dict) -> dict:
    """Everything the results depend on: the config less how and where jobs run."""
    train = {k: v for k, v in config["train"].items() if k not in ("device", "checkpoint_minutes")}
    kept = {k: v for k, v in config.items() if k not in RUN_ONLY_KEYS}
    return {**kept, "train": train}


def tracking_settings(config: dict, variants: list[str]) -> dict:
    """The MLflow view's runs: every variant × seed's params, sweep values included (the store
    itself is the `track` rule's `uri` param)."""
    runs = {
        f"{variant} seed {seed}": {
            **train_settings(config, variant, seed),
            **swept_values(config, variant),
        }
        for variant in variants
        for seed in seeds(config)
    }
    return {"experiment": config["experiment"], "runs": runs}


def swept_values(config: dict, variant: str) -> dict:
    """The sweep settings of a variant made by `sweep:` ({} for any other), with its base."""
    found = sweep_points(config.get("sweep") or {}).get(variant)
    if found is None:
        return {}
    base, values = found
    return {"base": base, **values}


def experiment_config(config: dict, wildcards) -> dict:
    """A job's config: the experiment's, or leak_gap's for a job with a {protocol} wildcard."""
    protocol = getattr(wildcards, "protocol", None)
    return leak_config(config, protocol) if protocol else config


# leak_gap's extra variants: knn shows the leak, template is the beat-shape floor.
LEAK_EXTRA = {"knn": {"model": "knn"}, "template": {"model": "template"}}
# A normalisation that reads test data has a leak-free counterpart for the protocols that refuse it.
LEAK_FREE_NORMALISATION = {"minmax_all": "minmax"}


def leak_config(config: dict, protocol: str) -> dict:
    """The experiment's config with the split protocol replaced, knn and template declared
    (leak_gap); away from `paper`, a normalisation over every record (paper.yaml's minmax_all)
    becomes its training-only counterpart, so the leak-free side reads no test statistics."""
    variants = {**LEAK_EXTRA, **config["variants"]}
    normalisation = config["normalisation"]
    if protocol != "paper":
        normalisation = LEAK_FREE_NORMALISATION.get(normalisation, normalisation)
    split = {**config["split"], "protocol": protocol}
    return {**config, "split": split, "variants": variants, "normalisation": normalisation}
