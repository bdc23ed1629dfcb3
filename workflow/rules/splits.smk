# Folds, written once: results/{experiment}/splits/{protocol}.json (+ .windows.npz for paper).


checkpoint split:
    input:
        shards=shard_files(),
    output:
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        windows=(
            [f"{RESULTS}/splits/{PROTOCOL}.windows.npz"] if PROTOCOL == "paper" else []
        ),
    log:
        f"{LOGS}/split/{PROTOCOL}.log",
    benchmark:
        f"benchmarks/{EXP}/split/{PROTOCOL}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=short(stages.split_settings(config)),
    threads: 1
    resources:
        **scheduled(),
    script:
        "../scripts/split.py"
