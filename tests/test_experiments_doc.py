"""docs/experiments.md: every YAML example is a config the pipeline accepts, doing what it says."""

import re
from pathlib import Path

import pytest
import yaml

from ecg2abp.config import deep_merge, load_config, read_yaml, validate_config
from ecg2abp.errors import InputError
from ecg2abp.stages import variant_train

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "experiments.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)


def layered(block: str) -> dict:
    """config/config.yaml and config/demo.yaml with the block on top, validated."""
    merged = deep_merge(
        read_yaml(REPO / "config" / "config.yaml"), read_yaml(REPO / "config" / "demo.yaml")
    )
    return validate_config(deep_merge(merged, yaml.safe_load(block)))


def test_the_page_has_its_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("block", BLOCKS)
def test_every_yaml_example_is_a_valid_config(block):
    layered(block)


def test_the_sweep_example_makes_the_four_variants_it_names():
    (sweep,) = [block for block in BLOCKS if "sweep:" in block]
    config = layered(sweep)
    points = [name for name in config["variants"] if name.startswith("msca_cssc_unet__")]
    assert points == [
        "msca_cssc_unet__width-0.0625__train.lr-0.001",
        "msca_cssc_unet__width-0.0625__train.lr-0.003",
        "msca_cssc_unet__width-0.125__train.lr-0.001",
        "msca_cssc_unet__width-0.125__train.lr-0.003",
    ]
    assert "msca_cssc_unet" not in config["variants"]
    assert config["report"]["reference_variant"] in points
    assert variant_train(config, points[1])["lr"] == 0.003


def test_a_config_with_the_old_seed_key_is_refused_as_the_page_says(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("train: {seed: 0}\n")
    with pytest.raises(InputError, match=r"^config: key train\.seed is now train\.seeds") as error:
        load_config(old)
    assert str(error.value) in " ".join(PAGE.read_text().split())
