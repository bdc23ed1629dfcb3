"""Run `train_variant` in its own process, for the kill and SIGTERM tests.

Usage: python train_worker.py CONFIG_JSON VARIANT SPLIT OUT_DIR SHARD [SHARD ...]
"""

import json
import sys
from pathlib import Path

from ecg2abp.training.jobs import train_variant


def main(argv: list[str]) -> None:
    config_path, variant, split, out_dir, *shards = argv
    config = json.loads(Path(config_path).read_text())
    train_variant(variant, config, Path(split), [Path(s) for s in shards], 0, Path(out_dir))


if __name__ == "__main__":
    main(sys.argv[1:])
