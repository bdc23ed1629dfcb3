# Plots, paired comparison and the pages of Snakemake's offline report, drawn only from the
# pipeline's own files. snakemake --report results/{experiment}/report.html bundles them.

localrules:
    report_variant_plots,
    report_across_variants,
    report_comparison,
    report_cleaning,
    report_pages,


rule report_stream:
    input:
        predictions=lambda wildcards: per_job(wildcards.variant, "predictions.parquet"),
        metrics=lambda wildcards: per_job(wildcards.variant, "metrics.json"),
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        stream=f"{REPORT}/{{variant}}/stream.npz",
    log:
        f"{LOGS}/report_stream/{{variant}}.log",
    benchmark:
        f"benchmarks/{EXP}/report_stream/{{variant}}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=NO_SETTINGS,
    threads: 1
    resources:
        **scheduled(),
    script:
        "../scripts/report_stream.py"


rule report_variant_plots:
    input:
        stream=f"{REPORT}/{{variant}}/stream.npz",
    output:
        **{name: variant_plot(name) for name in VARIANT_PLOTS},
    log:
        f"{LOGS}/report_variant_plots/{{variant}}.log",
    benchmark:
        f"benchmarks/{EXP}/report_variant_plots/{{variant}}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short({"fs": config["fs"]}),
    script:
        "../scripts/report_variant_plots.py"


rule report_across_variants:
    input:
        table=f"{RESULTS}/metrics.parquet",
        streams=expand(f"{REPORT}/{{variant}}/stream.npz", variant=SCORED),
    output:
        mae=report(
            f"{REPORT}/mae_across_variants.png",
            caption="../report/mae_across_variants.rst",
            category="Across variants",
        ),
        bhs=report(
            f"{REPORT}/bhs_shares.png",
            caption="../report/bhs_shares.rst",
            category="Across variants",
        ),
    log:
        f"{LOGS}/report_across_variants.log",
    benchmark:
        f"benchmarks/{EXP}/report_across_variants.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short(stages.report_settings(config, "bootstrap_samples", "seed")),
    script:
        "../scripts/report_across_variants.py"


rule report_comparison:
    input:
        streams=expand(f"{REPORT}/{{variant}}/stream.npz", variant=SCORED),
    output:
        table=f"{RESULTS}/comparison.parquet",
        markdown=f"{RESULTS}/comparison.md",
        html=report(
            f"{REPORT}/comparison.html",
            caption="../report/comparison.rst",
            category="Across variants",
        ),
    log:
        f"{LOGS}/report_comparison.log",
    benchmark:
        f"benchmarks/{EXP}/report_comparison.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short(
            stages.report_settings(config, "reference_variant", "bootstrap_samples", "seed")
        ),
    script:
        "../scripts/report_comparison.py"


rule report_cleaning:
    input:
        reports=expand(f"{RESULTS}/clean/{{part}}.parquet", part=sorted(PARTS, key=natural_key)),
    output:
        table=f"{REPORT}/cleaning.parquet",
        markdown=f"{REPORT}/cleaning.md",
        html=report(
            f"{REPORT}/cleaning.html", caption="../report/cleaning.rst", category="Data"
        ),
        chart=report(
            f"{REPORT}/cleaning.png", caption="../report/cleaning.rst", category="Data"
        ),
    log:
        f"{LOGS}/report_cleaning.log",
    benchmark:
        f"benchmarks/{EXP}/report_cleaning.tsv"
    conda:
        CONDA_ENV
    params:
        settings=NO_SETTINGS,
    script:
        "../scripts/report_cleaning.py"


rule report_saliency:
    input:
        models=lambda wildcards: per_job(wildcards.variant, "model.pt", "models"),
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        plot=report(
            f"{REPORT}/{{variant}}/saliency.png",
            caption="../report/saliency.rst",
            category="Per variant",
            subcategory="{variant}",
            labels={"variant": "{variant}", "figure": "saliency"},
        ),
    log:
        f"{LOGS}/report_saliency/{{variant}}.log",
    benchmark:
        f"benchmarks/{EXP}/report_saliency/{{variant}}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short(stages.report_settings(config, "saliency_windows")),
    threads: config["threads"]
    resources:
        **scheduled(),  # on the CPU
    script:
        "../scripts/report_saliency.py"


rule report_pages:
    input:
        summary=f"{RESULTS}/summary.md",
    output:
        summary=report(
            f"{REPORT}/summary.html", caption="../report/summary.rst", category="Metrics"
        ),
        config=report(
            f"{REPORT}/config.html", caption="../report/config.rst", category="Configuration"
        ),
    log:
        f"{LOGS}/report_pages.log",
    benchmark:
        f"benchmarks/{EXP}/report_pages.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short(stages.results_settings(config)),  # its page shows these
    script:
        "../scripts/report_pages.py"
