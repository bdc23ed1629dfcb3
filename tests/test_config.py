"""Configuration: defaults, refusals naming the key or file, layering, config.yaml == schema."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from ecg2abp.config import load_config, load_schema, read_yaml, validate_config
from ecg2abp.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CONFIG_YAML = REPO / "config" / "config.yaml"


def declared(schema: dict, prefix: str = "") -> dict[str, object]:
    """Dotted key → default, for every key the schema declares (nested objects walked into)."""
    found = {}
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            found.update(declared(sub, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = sub.get("default")
    return found


def lookup(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def contains(actual, expected) -> bool:
    """Whether every key and value of `expected` is in `actual` (nested)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    return actual == expected


def test_an_empty_config_gets_every_default():
    config = validate_config({})
    for key, default in declared(load_schema()).items():
        assert contains(lookup(config, key), default), key
    assert config["window"] == 88 and config["split"]["protocol"] == "record"  # the issue's


def test_defaults_are_filled_inside_user_named_entries():
    schema = load_schema()
    if "variants" not in schema["properties"]:
        pytest.skip("no open-ended mapping in the schema")
    entry_schema = schema["properties"]["variants"]["additionalProperties"]["properties"]
    config = validate_config({"variants": {"mine": {"model": "ridge"}}})
    assert config["variants"] == {
        "mine": {
            "model": "ridge",
            **{k: v["default"] for k, v in entry_schema.items() if "default" in v},
        }
    }


def test_given_values_are_kept_and_their_neighbours_filled():
    given = {"window": 64, "split": {"folds": 3}}
    config = validate_config(given)
    assert config["window"] == 64 and config["split"]["folds"] == 3
    assert config["split"]["seed"] == declared(load_schema())["split.seed"]
    assert given == {"window": 64, "split": {"folds": 3}}  # the input is not changed


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"windw": 88}, ["windw"]),
        ({"split": {"protocl": "part"}}, ["protocl", "split"]),
        ({"cleaning": {"abp_minimum": 10}}, ["abp_minimum", "cleaning"]),
        ({"synthetic": {"part": 2}}, ["part", "synthetic"]),
    ],
)
def test_an_unknown_key_is_an_input_error_naming_it(config, named):
    with pytest.raises(InputError) as caught:
        validate_config(config)
    message = str(caught.value)
    assert "\n" not in message and "unknown" in message
    assert all(word in message for word in named)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"window": 2}, "window"),
        ({"stride": 0}, "stride"),
        ({"threads": "two"}, "threads"),
        ({"normalisation": "l2"}, "normalisation"),
        ({"experiment": "../escape"}, "experiment"),
        ({"split": {"folds": 0}}, "split.folds"),
        ({"split": {"val_fraction": 1.0}}, "split.val_fraction"),
        ({"split": {"protocol": "random"}}, "split.protocol"),
        ({"split": {"temporal_fractions": [0.5, 0.5]}}, "split.temporal_fractions"),
        ({"cleaning": {"bandpass_hz": [0.5]}}, "cleaning.bandpass_hz"),
        ({"cleaning": {"bandpass_order": 9}}, "cleaning.bandpass_order"),
        ({"synthetic": {"layout": "csv"}}, "synthetic.layout"),
    ],
)
def test_an_out_of_range_value_is_an_input_error_naming_the_key(config, key):
    with pytest.raises(InputError, match=rf"key {key}\b") as caught:
        validate_config(config)
    assert "\n" not in str(caught.value)


INCONSISTENT = [
    ({"cleaning": {"abp_min": 300, "abp_max": 250}}, "cleaning.abp_min (300) must be below"),
    ({"cleaning": {"sbp_min": 150, "sbp_max": 150}}, "cleaning.sbp_min (150) must be below"),
    ({"cleaning": {"dbp_min": 90, "dbp_max": 60}}, "cleaning.dbp_min (90) must be below"),
    ({"cleaning": {"pp_min": 80, "pp_max": 40}}, "cleaning.pp_min (80) must be below"),
    (
        {"cleaning": {"bandpass_hz": [40, 0.5]}},
        "cleaning.bandpass_hz must be [low, high] with low < high",
    ),
    (
        {"cleaning": {"bandpass_hz": [0.5, 70]}},
        "cleaning.bandpass_hz: need 0 < low < high < fs/2 = 62.5 Hz",
    ),
    (
        {"synthetic": {"min_seconds": 50, "max_seconds": 10}},
        "synthetic.min_seconds (50) must not exceed",
    ),
    ({"split": {"folds": 1}}, "split.folds 1: protocol record needs at least 2"),
    ({"split": {"protocol": "part", "folds": 1}}, "split.folds 1: protocol part"),
    ({"train": {"folds": [7]}}, "train.folds: fold 7 asked for, protocol record makes 5"),
    (
        {"split": {"protocol": "temporal"}, "train": {"folds": [0, 1]}},
        "train.folds: fold 1 asked for, protocol temporal makes 1",
    ),
    ({"external": {"x": "/nonexistent.mat"}}, "external.x: /nonexistent.mat: no such file"),
]


@pytest.mark.parametrize(("config", "message"), INCONSISTENT)
def test_settings_that_do_not_fit_together_are_refused_naming_them(config, message):
    with pytest.raises(InputError) as caught:
        validate_config(config)
    assert str(caught.value).startswith(f"config: {message}") and "\n" not in str(caught.value)


def test_settings_that_fit_together_pass(tmp_path):
    (tmp_path / "ext.mat").write_bytes(b"")
    config = {
        "split": {"protocol": "paper", "folds": 1},  # paper and temporal ignore split.folds
        "train": {"folds": [0]},
        "synthetic": {"min_seconds": 10, "max_seconds": 10},
        "cleaning": {"bandpass_hz": None, "abp_min": 10, "abp_max": 300},
        "external": {"ext": str(tmp_path / "ext.mat")},
    }
    assert validate_config(config)["train"]["folds"] == [0]


def test_config_yaml_validates_to_the_schema_defaults():
    assert load_config(CONFIG_YAML) == validate_config({})


def test_config_yaml_restates_every_key_of_the_schema():
    raw = read_yaml(CONFIG_YAML)
    missing = []
    for key in declared(load_schema()):
        try:
            lookup(raw, key)
        except KeyError:
            missing.append(key)
    assert missing == [], f"config/config.yaml does not restate {missing}"


@pytest.mark.slow
def test_a_built_package_ships_the_workflow_schema(tmp_path):
    """The package's schema is a link to the workflow's: a built wheel must carry its content."""
    source = tmp_path / "source"
    for name in ("src", "workflow/schemas", "pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True)
        else:
            shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "wheel"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("ecg2abp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("ecg2abp/schemas/config.schema.yaml").decode()
    workflow_schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert shipped == workflow_schema.read_text()
    assert yaml.safe_load(shipped)["properties"]["window"]["default"] == 88


def test_later_files_win_and_nested_mappings_merge(tmp_path):
    base, mine = tmp_path / "base.yaml", tmp_path / "mine.yaml"
    base.write_text("window: 64\nsplit:\n  folds: 3\n  seed: 1\n")
    mine.write_text("split:\n  seed: 2\nexperiment: mine\n")
    config = load_config(base, mine)
    assert config["window"] == 64 and config["experiment"] == "mine"
    assert config["split"]["folds"] == 3 and config["split"]["seed"] == 2
    assert config["split"]["protocol"] == "record"  # still filled from the schema
    assert load_config(mine, base)["split"]["seed"] == 1


def test_an_unknown_key_in_a_layered_file_is_refused(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("split:\n  fold: 3\n")
    with pytest.raises(InputError, match="fold"):
        load_config(CONFIG_YAML, path)


def test_an_empty_file_adds_nothing(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n")
    assert load_config(path) == validate_config({})


@pytest.mark.parametrize(
    "content",
    [None, "split: [unclosed\n", "- a\n- list\n", b"window: \xff\xfe\n", "directory"],
    ids=["missing", "bad-yaml", "not-a-mapping", "not-utf8", "a-directory"],
)
def test_an_unreadable_config_file_is_an_input_error_naming_it(tmp_path, content):
    path = tmp_path / "broken.yaml"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=r"broken\.yaml") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("overlay", ["demo.yaml", "paper.yaml", "pulsedb.yaml"])
def test_shipped_overlays_validate_on_the_defaults(overlay):
    config = load_config(CONFIG_YAML, REPO / "config" / overlay)
    assert config["experiment"] == overlay.removesuffix(".yaml")


def test_the_demo_is_smaller_than_the_defaults_in_what_it_says():
    default, demo = (
        load_config(CONFIG_YAML),
        load_config(CONFIG_YAML, REPO / "config" / "demo.yaml"),
    )
    assert demo["split"]["folds"] < default["split"]["folds"]
    assert demo["variants"] == default["variants"] and demo["synthetic"] == default["synthetic"]
    assert (demo["threads"], demo["train"]["device"]) == (1, "cpu")


@pytest.mark.parametrize("protocol", ["record", "part", "temporal"])
def test_minmax_all_is_refused_under_a_leak_free_protocol(protocol):
    config = {"normalisation": "minmax_all", "split": {"protocol": protocol}}
    with pytest.raises(InputError, match=rf"normalisation: minmax_all .* {protocol} is leak-free"):
        validate_config(config)
    assert validate_config({**config, "split": {"protocol": "paper"}})["normalisation"] == (
        "minmax_all"
    )
