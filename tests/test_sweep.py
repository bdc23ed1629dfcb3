"""Sweeps: a grid over a variant's settings expanded into named variants."""

import pytest

from ecg2abp.config import validate_config
from ecg2abp.errors import InputError
from ecg2abp.stages import variant_train
from ecg2abp.sweep import expand_sweep, grid, point_name

GRID = {"width": [0.0625, 0.125], "train.lr": [0.001, 0.003]}
BASE = {
    "variants": {
        "ridge": {"model": "ridge"},
        "net": {"model": "msca_cssc_unet", "width": 0.25, "train": {"epochs": 5}},
    },
    "sweep": {"net": GRID},
}


def test_the_grid_holds_every_combination_once():
    points = grid(GRID)
    assert len(points) == 4 and len({tuple(p.items()) for p in points}) == 4
    assert points[0] == {"width": 0.0625, "train.lr": 0.001}


def test_names_read_as_the_settings_in_the_order_given():
    assert (
        point_name("net", {"width": 0.125, "train.lr": 0.003}) == "net__width-0.125__train.lr-0.003"
    )
    assert point_name("net", {"options.deep": True}) == "net__options.deep-true"


def test_a_2_by_2_sweep_replaces_its_variant_by_four_where_it_stood():
    config = validate_config(BASE)
    names = list(config["variants"])
    assert names == [
        "ridge",
        "net__width-0.0625__train.lr-0.001",
        "net__width-0.0625__train.lr-0.003",
        "net__width-0.125__train.lr-0.001",
        "net__width-0.125__train.lr-0.003",
    ]
    point = config["variants"]["net__width-0.125__train.lr-0.003"]
    assert point["width"] == 0.125 and point["model"] == "msca_cssc_unet"
    train = variant_train(config, "net__width-0.125__train.lr-0.003")
    assert train["lr"] == 0.003 and train["epochs"] == 5  # its own settings kept, one swept
    assert train["batch_size"] == config["train"]["batch_size"]  # the rest shared


def test_expansion_is_idempotent_and_run_variants_name_the_points():
    config = validate_config({**BASE, "run_variants": ["net"]})
    assert validate_config(config) == config
    assert expand_sweep(config) == config
    assert len(config["run_variants"]) == 4 and "net" not in config["variants"]


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ({"nope": {"width": [1.0]}}, "sweep.nope"),
        ({"net": {"height": [1.0]}}, "sweep.net"),
        ({"net": {"width": [9.0]}}, "variants.net__width-9.0.width"),
        ({"net": {"train.lr": [-1.0]}}, "variants.net__train.lr--1.0.train.lr"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_key(sweep, named):
    with pytest.raises(InputError, match=f"^config: .*{named.replace('.', '[.]')}"):
        validate_config({**BASE, "sweep": sweep})
