# Every trained variant × fold × seed scored on each external data set of config `external`.


wildcard_constraints:
    dataset="[^/]+",


rule external:
    input:
        model=f"{RESULTS}/models/{JOB}/model.pt",
        data=lambda wildcards: config["external"][wildcards.dataset],
    output:
        predictions=f"{RESULTS}/external/{{dataset}}/{JOB}/predictions.parquet",
        metrics=f"{RESULTS}/external/{{dataset}}/{JOB}/metrics.json",
    log:
        f"{LOGS}/external/{{dataset}}/{JOB}.log",
    benchmark:
        f"benchmarks/{EXP}/external/{{dataset}}/{JOB}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=NO_SETTINGS,  # scores every sample of the file: its inputs alone decide
    threads: config["threads"]
    resources:
        **scheduled(evaluate_minutes),  # on the CPU, like `ecg2abp external`
    script:
        "../scripts/external.py"
