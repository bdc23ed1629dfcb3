# Shared by every stage: the validated config, where things live, which parts exist.
import json
import sys
from pathlib import Path

from ecg2abp.config import validate_config
from ecg2abp.errors import InputError
from ecg2abp.data.ingest import discover_parts
from ecg2abp.folds.protocols import named_test_sets, natural_key
from ecg2abp.models import spec as model_spec
from ecg2abp import stages
from ecg2abp.stages import JOB_DIR, short
from ecg2abp.tracking.store import tracking_uri
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
    # pulsedb: each test subset beside the fold's test side, scored as its own dataset
    TEST_SETS = named_test_sets(config["split"]["protocol"], list(PARTS))
    VARIANTS = config["run_variants"] or list(config["variants"])
    for name in VARIANTS:
        if name not in config["variants"]:
            raise InputError(f"run_variants: {name!r} is not declared under `variants`")
        model_spec(config["variants"][name]["model"])
except InputError as err:
    sys.exit(f"ecg2abp: error: {err}")

EXP = config["experiment"]
# Every rule's software, for --software-deployment-method conda (relative to workflow/rules/).
CONDA_ENV = "../envs/ecg2abp.yaml"
RESULTS = f"results/{EXP}"
LOGS = f"logs/{EXP}"
PROTOCOL = config["split"]["protocol"]
SEEDS = stages.seeds(config)
# One job per variant × fold × seed: models/, eval/, external/ and logs use this layout.
JOB = JOB_DIR  # "{variant}/fold_{fold}/seed_{seed}"


wildcard_constraints:
    part="[^/]+",
    variant="[^/]+",
    fold="[0-9]+",
    seed="[0-9]+",


# --- params: a fingerprint of exactly the settings a job's outputs depend on (stages.py), so
# that Snakemake's `params` rerun trigger reruns exactly the jobs a config change affects.


NO_SETTINGS = short({})  # a job whose inputs alone decide its outputs


def train_params(wildcards, cfg=None):
    return short(stages.train_settings(cfg or config, wildcards.variant, int(wildcards.seed)))


def evaluate_params(wildcards, cfg=None):
    return short(stages.evaluate_settings(cfg or config, wildcards.variant))


def raw_part(wildcards):
    """The raw input of one part: a configured file/folder, or the synthetic part file."""
    source = PARTS[wildcards.part]
    return str(source) if source is not None else f"{RESULTS}/synthetic/{wildcards.part}.mat"


def shard_files():
    return expand(f"{RESULTS}/shards/{{part}}.h5", part=sorted(PARTS, key=natural_key))


def is_deep(variant, cfg=None):
    """A network (not a classical baseline or the naive floor)."""
    cfg = cfg or config
    return variant != "naive" and model_spec(cfg["variants"][variant]["model"]).kind == "deep"


def gpus_for(variant, cfg=None):
    """Deep models can use one GPU; classical baselines, the naive floor and jobs told to run
    on the CPU (the variant's train.device: cpu) need none, so those run side by side."""
    device = stages.variant_train(cfg or config, variant)["device"]
    return int(is_deep(variant, cfg) and device != "cpu")


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
        f"{RESULTS}/eval/{JOB}/metrics.json", variant=[*VARIANTS, "naive"], fold=folds(), seed=SEEDS
    )


def test_set_metrics():
    """metrics.json of every job × named test set (pulsedb; none for other protocols)."""
    return expand(
        f"{RESULTS}/eval/{JOB}/tests/{{test_set}}/metrics.json",
        test_set=TEST_SETS,
        variant=[*VARIANTS, "naive"],
        fold=folds(),
        seed=SEEDS,
    )


def all_targets():
    return [
        *expand(f"{RESULTS}/clean/{{part}}.parquet", part=PARTS),
        f"{RESULTS}/metrics.parquet",
        f"{RESULTS}/summary.md",
        *report_targets(),
        *leak_gap_targets(config["leak_gap"]["in_all"]),
    ]


def leak_gap_targets(in_all):
    """What of leak_gap the default target builds (config leak_gap.in_all)."""
    if in_all == "paper":
        return leak_metrics("paper")
    if in_all == "table":
        return [f"{RESULTS}/leak_gap.parquet", f"{RESULTS}/leak_gap.md"]
    return []


def external_metrics():
    """metrics.json of every job × external data set (none if `external` is empty)."""
    return expand(
        f"{RESULTS}/external/{{dataset}}/{JOB}/metrics.json",
        dataset=sorted(config["external"]),
        variant=[*VARIANTS, "naive"],
        fold=folds(),
        seed=SEEDS,
    )


# MLflow (rules/track.smk)
def trained_files():
    """Every variant × fold × seed's model file and history (the naive floor included)."""
    return expand(
        f"{RESULTS}/models/{JOB}/{{name}}",
        variant=[*VARIANTS, "naive"],
        fold=folds(),
        seed=SEEDS,
        name=["model.pt", "history.parquet"],
    )


def tracking_targets():
    return [f"{RESULTS}/mlflow/track.json"] if config["mlflow"]["enabled"] else []


# Plots and report (rules/report.smk)
REPORT = f"{RESULTS}/report"
SCORED = [*VARIANTS, "naive"]
DEEP = [variant for variant in VARIANTS if is_deep(variant)]
VARIANT_PLOTS = ("bland_altman", "predicted_vs_true", "error_cdf", "error_by_band", "example")


def per_job(variant, name, kind="eval"):
    """A variant's file `name` of every fold × seed under `kind` (eval, models)."""
    return expand(f"{RESULTS}/{kind}/{JOB}/{name}", variant=variant, fold=folds(), seed=SEEDS)


def variant_plot(name):
    return report(
        f"{REPORT}/{{variant}}/{name}.png",
        caption=f"../report/{name}.rst",
        category="Per variant",
        subcategory="{variant}",
        labels={"variant": "{variant}", "figure": name.replace("_", " ")},
    )


def report_targets():
    return [
        *expand(f"{REPORT}/{{variant}}/{{name}}.png", variant=SCORED, name=VARIANT_PLOTS),
        *expand(f"{REPORT}/{{variant}}/saliency.png", variant=DEEP),
        f"{REPORT}/mae_across_variants.png",
        f"{REPORT}/bhs_shares.png",
        f"{RESULTS}/comparison.parquet",
        f"{REPORT}/cleaning.png",
        f"{REPORT}/summary.html",
    ]


# leak_gap (rules/leak_gap.smk): the same shards under `paper` and `record`.
LEAK = f"{RESULTS}/leak_gap"
LEAK_VARIANTS = [*VARIANTS, *(name for name in stages.LEAK_EXTRA if name not in VARIANTS)]


def leak_config(protocol):
    return stages.leak_config(config, protocol)


def leak_folds(protocol):
    """paper makes one fold; record makes split.folds (train.folds may choose among them)."""
    n_folds = 1 if protocol == "paper" else config["split"]["folds"]
    chosen = config["train"]["folds"]
    return list(range(n_folds)) if chosen == "all" else [f for f in chosen if f < n_folds]


def leak_gpus(variant):
    return gpus_for(variant, leak_config("record"))


def leak_metrics(protocol):
    return expand(
        f"{LEAK}/{protocol}/eval/{JOB}/metrics.json",
        variant=[*LEAK_VARIANTS, "naive"],
        fold=leak_folds(protocol),
        seed=SEEDS,
    )


# --- what each job asks a scheduler for (profiles/slurm; local runs ignore all but gpu) ------


def train_minutes(wildcards, gpus=gpus_for):
    """Deep training: minutes per epoch × (the variant's epochs + 1 for set-up); other
    variants one fit."""
    minutes = config["cluster"]["runtime_minutes"]
    if gpus(wildcards.variant):
        epochs = stages.variant_train(config, wildcards.variant)["epochs"]
        return minutes["deep_epoch"] * (epochs + 1)
    return minutes["fit"]


def evaluate_minutes(wildcards, gpus=gpus_for):
    minutes = config["cluster"]["runtime_minutes"]
    return minutes["evaluate_deep"] if gpus(wildcards.variant) else minutes["evaluate"]


def scheduled(runtime=None, gpu=None):
    """A job rule's resources: partition, account, the early SIGTERM (checkpoint before the
    time limit), through `gpu(wildcards)` one GPU where needed and, where it depends on the
    variant, the time limit. Memory and the other time limits: profiles/slurm's set-resources,
    measured per rule (docs/cluster.md)."""
    cluster = config["cluster"]
    wants_gpu = gpu or (lambda wildcards: 0)

    def partition(wildcards):
        on_gpu = wants_gpu(wildcards) and cluster["gpu_partition"]
        return on_gpu or cluster["partition"] or ""

    resources = {
        "slurm_partition": partition,
        "slurm_account": cluster["account"] or "",
        "slurm_extra": f"--signal=TERM@{cluster['signal_seconds']}",
        "gpu": wants_gpu,
    }
    if runtime is not None:
        resources["runtime"] = runtime
    if cluster["gpu_model"]:
        resources["gpu_model"] = lambda wildcards: cluster["gpu_model"] if wants_gpu(wildcards) else ""
    return resources
