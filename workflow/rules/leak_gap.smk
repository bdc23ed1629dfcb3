# leak_gap: every variant the experiment runs, plus knn, template and naive, trained and scored under
# `paper` and under `record` on the same shards with the same training settings; only the split
# differs. Sub-results under results/{experiment}/leak_gap/{protocol}/, one table on top. The
# jobs' scripts rebuild that config from the {protocol} wildcard (stages.leak_config).

wildcard_constraints:
    protocol="paper|record",


rule leak_gap_split:
    input:
        shards=shard_files(),
    output:
        split=f"{LEAK}/{{protocol}}/splits/{{protocol}}.json",
    params:
        settings=lambda wildcards: short(stages.split_settings(leak_config(wildcards.protocol))),
    log:
        f"{LOGS}/leak_gap/split/{{protocol}}.log",
    benchmark:
        f"benchmarks/{EXP}/leak_gap_split/{{protocol}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **scheduled(),
    script:
        "../scripts/split.py"


rule leak_gap_train:
    input:
        split=f"{LEAK}/{{protocol}}/splits/{{protocol}}.json",
        shards=shard_files(),
    output:
        model=f"{LEAK}/{{protocol}}/models/{JOB}/model.pt",
        history=f"{LEAK}/{{protocol}}/models/{JOB}/history.parquet",
    params:
        settings=lambda wildcards: train_params(wildcards, leak_config(wildcards.protocol)),
    log:
        f"{LOGS}/leak_gap/train/{{protocol}}/{JOB}.log",
    benchmark:
        f"benchmarks/{EXP}/leak_gap_train/{{protocol}}/{JOB}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **scheduled(
            lambda wildcards: train_minutes(wildcards, leak_gpus),
            gpu=lambda wildcards: leak_gpus(wildcards.variant),
        ),
    script:
        "../scripts/train.py"


rule leak_gap_evaluate:
    input:
        model=f"{LEAK}/{{protocol}}/models/{JOB}/model.pt",
        split=f"{LEAK}/{{protocol}}/splits/{{protocol}}.json",
        shards=shard_files(),
    output:
        predictions=f"{LEAK}/{{protocol}}/eval/{JOB}/predictions.parquet",
        metrics=f"{LEAK}/{{protocol}}/eval/{JOB}/metrics.json",
    params:
        settings=lambda wildcards: evaluate_params(wildcards, leak_config(wildcards.protocol)),
    log:
        f"{LOGS}/leak_gap/evaluate/{{protocol}}/{JOB}.log",
    benchmark:
        f"benchmarks/{EXP}/leak_gap_evaluate/{{protocol}}/{JOB}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **scheduled(
            lambda wildcards: evaluate_minutes(wildcards, leak_gpus),
            gpu=lambda wildcards: leak_gpus(wildcards.variant),
        ),
    script:
        "../scripts/evaluate.py"


localrules:
    leak_gap,


rule leak_gap:
    input:
        paper=leak_metrics("paper"),
        record=leak_metrics("record"),
        paper_split=f"{LEAK}/paper/splits/paper.json",
        shards=shard_files(),
    output:
        table=f"{RESULTS}/leak_gap.parquet",
        summary=f"{RESULTS}/leak_gap.md",
    log:
        f"{LOGS}/leak_gap.log",
    benchmark:
        f"benchmarks/{EXP}/leak_gap.tsv"
    conda:
        CONDA_ENV
    params:
        settings=NO_SETTINGS,
    script:
        "../scripts/leak_gap.py"
