# One training job per variant × fold × seed, under the variant's own train settings. Deep
# models declare one GPU; the profile decides what that means (nothing on a CPU machine, one
# GPU per job on a workstation or SLURM).
import re


rule train:
    input:
        split=f"{RESULTS}/splits/{PROTOCOL}.json",
        shards=shard_files(),
    output:
        model=f"{RESULTS}/models/{JOB}/model.pt",
        history=f"{RESULTS}/models/{JOB}/history.parquet",
    log:
        f"{LOGS}/train/{JOB}.log",
    benchmark:
        f"benchmarks/{EXP}/train/{JOB}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=train_params,
    threads: config["threads"]
    resources:
        **scheduled(train_minutes, gpu=lambda wildcards: gpus_for(wildcards.variant)),
    script:
        "../scripts/train.py"


# Classical variants also write their fitted model beside model.pt: declared, so that shadow
# directories, remote storage and --delete-all-output know of it.
CLASSICAL_VARIANTS = [
    v for v in VARIANTS if model_spec(config["variants"][v]["model"]).kind == "classical"
]

if CLASSICAL_VARIANTS:

    use rule train as train_classical with:
        output:
            model=f"{RESULTS}/models/{JOB}/model.pt",
            history=f"{RESULTS}/models/{JOB}/history.parquet",
            artefact=f"{RESULTS}/models/{JOB}/model.classical",
        wildcard_constraints:
            variant="|".join(map(re.escape, CLASSICAL_VARIANTS)),

    ruleorder: train_classical > train
