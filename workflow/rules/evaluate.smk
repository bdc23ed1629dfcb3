# One evaluation job per variant × fold, then every fold's metrics pooled into one table.


localrules:
    pool,


rule evaluate:
    input:
        model=f"{RESULTS}/models/{{variant}}/fold_{{fold}}/model.pt",
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        predictions=f"{RESULTS}/eval/{{variant}}/fold_{{fold}}/predictions.parquet",
        metrics=f"{RESULTS}/eval/{{variant}}/fold_{{fold}}/metrics.json",
    log:
        f"{LOGS}/evaluate/{{variant}}/fold_{{fold}}.log",
    benchmark:
        f"benchmarks/{EXP}/evaluate/{{variant}}/fold_{{fold}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **scheduled(evaluate_minutes, gpu=lambda wildcards: gpus_for(wildcards.variant)),
    script:
        "../scripts/evaluate.py"


rule pool:
    input:
        metrics=lambda wildcards: fold_metrics() + external_metrics(),
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
    script:
        "../scripts/pool.py"
