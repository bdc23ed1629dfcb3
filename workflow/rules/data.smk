# Data stage: synthetic parts when no data_dir is configured, then one ingest job per part.


localrules:
    synth,


rule synth:
    output:
        expand(f"{RESULTS}/synthetic/{{part}}.mat", part=PARTS),
    log:
        f"{LOGS}/synth.log",
    benchmark:
        f"benchmarks/{EXP}/synth.tsv"
    conda:
        CONDA_ENV
    params:
        synthetic=config["synthetic"],  # the data it writes: all its settings
    threads: 1
    script:
        "../scripts/synth.py"


rule ingest:
    input:
        part=raw_part,
    output:
        shard=f"{RESULTS}/shards/{{part}}.h5",
        report=f"{RESULTS}/clean/{{part}}.parquet",
    log:
        f"{LOGS}/ingest/{{part}}.log",
    benchmark:
        f"benchmarks/{EXP}/ingest/{{part}}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short(stages.ingest_settings(config)),
    threads: 1
    resources:
        **scheduled(),
    script:
        "../scripts/ingest.py"
