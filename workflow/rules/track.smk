# MLflow, a view of the files (mlflow.enabled). Before any job starts, the main Snakemake
# process creates the store, the experiment and every variant's parent run, once: parallel
# jobs never race to create them, and no training job depends on a tracking file (a changed
# store never retrains a model). Training jobs log their epochs live; `track` makes the view
# match the files.
from ecg2abp.tracking.runs import prepare_view


localrules:
    track,


onstart:
    if config["mlflow"]["enabled"]:
        prepare_view(config, VARIANTS)


rule track:
    input:
        table=f"{RESULTS}/metrics.parquet",
        summary=f"{RESULTS}/summary.md",
        metrics=lambda wildcards: fold_metrics(),
        trained=lambda wildcards: trained_files(),
    output:
        f"{RESULTS}/mlflow/track.json",
    log:
        f"{LOGS}/mlflow/track.log",
    benchmark:
        f"benchmarks/{EXP}/track.tsv"
    conda:
        CONDA_ENV
    params:
        uri=tracking_uri(config),
        variants=VARIANTS,
        folds=lambda wildcards: folds(),
        seeds=SEEDS,
        settings=short(stages.tracking_settings(config, [*VARIANTS, "naive"])),
    script:
        "../scripts/track.py"
