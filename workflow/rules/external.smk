# Every trained variant and fold scored on each external data set of config `external`.


wildcard_constraints:
    dataset="[^/]+",


rule external:
    input:
        model=f"{RESULTS}/models/{{variant}}/fold_{{fold}}/model.pt",
        data=lambda wildcards: config["external"][wildcards.dataset],
    output:
        predictions=f"{RESULTS}/external/{{dataset}}/{{variant}}/fold_{{fold}}/predictions.parquet",
        metrics=f"{RESULTS}/external/{{dataset}}/{{variant}}/fold_{{fold}}/metrics.json",
    log:
        f"{LOGS}/external/{{dataset}}/{{variant}}/fold_{{fold}}.log",
    benchmark:
        f"benchmarks/{EXP}/external/{{dataset}}/{{variant}}/fold_{{fold}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **scheduled(evaluate_minutes),  # on the CPU, like `ecg2abp external`
    script:
        "../scripts/external.py"
