# MLflow, a view of the files (mlflow.enabled): the store and experiment are created by one
# job, the variants' parent runs by one job, before any training job (parallel jobs never race
# to create them); training jobs log their epochs live; `track` makes the view match the files.
from ecg2abp.tracking.store import tracking_uri

TRACKING = f"{RESULTS}/mlflow"


localrules:
    mlflow_store,
    mlflow_parents,
    track,


def tracking_prerequisites():
    """What every training job waits for; ancient: re-creating a run never retrains a model."""
    return [ancient(f"{TRACKING}/parents.json")] if config["mlflow"]["enabled"] else []


def trained_files():
    """Every variant × fold's model file and history (the naive floor included)."""
    return expand(
        f"{RESULTS}/models/{{variant}}/fold_{{fold}}/{{name}}",
        variant=[*VARIANTS, "naive"],
        fold=folds(),
        name=["model.pt", "history.parquet"],
    )


def tracking_targets():
    return [f"{TRACKING}/track.json"] if config["mlflow"]["enabled"] else []


rule mlflow_store:
    output:
        f"{TRACKING}/store.json",
    log:
        f"{LOGS}/mlflow/store.log",
    params:
        uri=tracking_uri(config),
    script:
        "../scripts/mlflow_store.py"


rule mlflow_parents:
    input:
        f"{TRACKING}/store.json",
    output:
        f"{TRACKING}/parents.json",
    log:
        f"{LOGS}/mlflow/parents.log",
    params:
        uri=tracking_uri(config),
        variants=VARIANTS,
    script:
        "../scripts/mlflow_parents.py"


rule track:
    input:
        table=f"{RESULTS}/metrics.parquet",
        summary=f"{RESULTS}/summary.md",
        metrics=lambda wildcards: fold_metrics(),
        trained=lambda wildcards: trained_files(),
        parents=ancient(f"{TRACKING}/parents.json"),
    output:
        f"{TRACKING}/track.json",
    log:
        f"{LOGS}/mlflow/track.log",
    params:
        uri=tracking_uri(config),
        variants=VARIANTS,
        folds=lambda wildcards: folds(),
        results=RESULTS,
    script:
        "../scripts/track.py"
