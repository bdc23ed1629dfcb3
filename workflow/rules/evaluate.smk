# One evaluation job per variant × fold × seed (and per named test set: pulsedb), then every
# job's metrics pooled into one table.


localrules:
    pool,


rule evaluate:
    input:
        model=f"{RESULTS}/models/{JOB}/model.pt",
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        predictions=f"{RESULTS}/eval/{JOB}/predictions.parquet",
        metrics=f"{RESULTS}/eval/{JOB}/metrics.json",
    log:
        f"{LOGS}/evaluate/{JOB}.log",
    benchmark:
        f"benchmarks/{EXP}/evaluate/{JOB}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=evaluate_params,
    threads: config["threads"]
    resources:
        **scheduled(evaluate_minutes, gpu=lambda wildcards: gpus_for(wildcards.variant)),
    script:
        "../scripts/evaluate.py"


wildcard_constraints:
    test_set="[a-z_]+",


rule evaluate_test_set:
    input:
        model=f"{RESULTS}/models/{JOB}/model.pt",
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        predictions=f"{RESULTS}/eval/{JOB}/tests/{{test_set}}/predictions.parquet",
        metrics=f"{RESULTS}/eval/{JOB}/tests/{{test_set}}/metrics.json",
    log:
        f"{LOGS}/evaluate/{JOB}/{{test_set}}.log",
    benchmark:
        f"benchmarks/{EXP}/evaluate/{JOB}/{{test_set}}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=evaluate_params,
    threads: config["threads"]
    resources:
        **scheduled(evaluate_minutes, gpu=lambda wildcards: gpus_for(wildcards.variant)),
    script:
        "../scripts/evaluate.py"


rule pool:
    input:
        metrics=lambda wildcards: fold_metrics() + test_set_metrics() + external_metrics(),
        clean=expand(f"{RESULTS}/clean/{{part}}.parquet", part=sorted(PARTS, key=natural_key)),
    output:
        table=f"{RESULTS}/metrics.parquet",
        summary=f"{RESULTS}/summary.md",
    log:
        f"{LOGS}/pool.log",
    benchmark:
        f"benchmarks/{EXP}/pool.tsv"
    conda:
        CONDA_ENV
    params:
        settings=NO_SETTINGS,  # its inputs alone decide its outputs
    script:
        "../scripts/pool.py"
