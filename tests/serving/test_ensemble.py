"""A variant's folder of fold models served together: only one variant, each fold once."""

import os
import shutil
from pathlib import Path

import pytest

from ecg2abp.errors import InputError
from ecg2abp.serving.ensemble import load_model

VARIANT = "tiny_resnet"  # the two-fold model of conftest.py's `trained`


def variant_folder(folder: Path, members: dict[str, Path]) -> Path:
    """A folder of fold_*/ copies of the given model folders (model.pt and any fitted file)."""
    for name, source in members.items():
        shutil.copytree(source, folder / name)
    return folder


def test_the_folds_of_one_variant_serve_together(trained, tmp_path):
    folder = variant_folder(
        tmp_path / "v", {f"fold_{k}": trained / VARIANT / f"fold_{k}" for k in (0, 1)}
    )
    assert [member.meta["fold"] for member in load_model(folder).members] == [0, 1]


def test_models_of_two_kinds_are_not_averaged(trained, tmp_path):
    folder = variant_folder(
        tmp_path / "mixed",
        {"fold_0": trained / VARIANT / "fold_0", "fold_1": trained / "linear" / "fold_0"},
    )
    with pytest.raises(InputError) as refused:
        load_model(folder)
    message = str(refused.value)
    assert str(folder / "fold_1" / "model.pt") in message and "linear" in message
    assert str(folder / "fold_0" / "model.pt") in message and VARIANT in message


@pytest.mark.parametrize("how", ["copy", "hard link"])
def test_one_fold_twice_is_not_an_ensemble(trained, tmp_path, how):
    source = trained / VARIANT / "fold_0"
    folder = variant_folder(tmp_path / "twice", {"fold_0": source})
    (folder / "fold_1").mkdir()
    if how == "copy":
        shutil.copy(source / "model.pt", folder / "fold_1" / "model.pt")
    else:
        os.link(folder / "fold_0" / "model.pt", folder / "fold_1" / "model.pt")
    with pytest.raises(InputError, match=r"fold_1/model\.pt: the same model as .*fold_0/model\.pt"):
        load_model(folder)
