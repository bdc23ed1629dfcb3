# ecg2abp: raw part*.mat files → cleaned HDF5 shards → folds → one training job per
# variant × fold × seed → per-job metrics, pooled. Configuration: config/config.yaml (every key
# commented); what a config change reruns: docs/experiments.md.
import sys
from pathlib import Path

from snakemake.utils import min_version

from ecg2abp.report.next_steps import next_steps, profile_of

min_version("8.20")


# The defaults, found beside this Snakefile whatever the working directory (--directory);
# layer your own with --configfile.
configfile: Path(workflow.basedir) / "config" / "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/leak_gap.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
        tracking_targets(),
    default_target: True


# After a successful run: where summary.md is, the report command and the MLflow view.
onsuccess:
    print(next_steps(Path(RESULTS), workflow.overwrite_configfiles, profile_of(sys.argv)), end="")
