# Every trained variant and fold scored on each external data set of config `external`.


wildcard_constraints:
    dataset="[^/]+",


def external_metrics():
    """metrics.json of every variant × fold × external data set (none if `external` is empty)."""
    return expand(
        f"{RESULTS}/external/{{dataset}}/{{variant}}/fold_{{fold}}/metrics.json",
        dataset=sorted(config["external"]),
        variant=[*VARIANTS, "naive"],
        fold=folds(),
    )


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
    threads: config["threads"]
    script:
        "../scripts/external.py"
