# One training job per variant × fold. Deep models declare one GPU; the profile decides what
# that means (nothing on a CPU machine, one GPU per job on a workstation or SLURM).


rule train:
    input:
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        model=f"{RESULTS}/models/{{variant}}/fold_{{fold}}/model.pt",
        history=f"{RESULTS}/models/{{variant}}/fold_{{fold}}/history.parquet",
    log:
        f"{LOGS}/train/{{variant}}/fold_{{fold}}.log",
    threads: config["threads"]
    resources:
        **scheduled(train_minutes, gpu=lambda wildcards: gpus_for(wildcards.variant)),
    script:
        "../scripts/train.py"
