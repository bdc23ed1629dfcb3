"""Atomic outputs: renamed into place on success, nothing left behind on failure."""

import json
import os

import pytest

from ecg2abp.atomic import atomic_path, write_json


class Boom(Exception):
    pass


def test_success_renames_the_temporary_file_onto_the_final_name(tmp_path):
    final = tmp_path / "deep" / "er" / "out.txt"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent
        assert tmp.name == f".out.txt.tmp-{os.getpid()}"
        tmp.write_text("done")
        assert not final.exists()  # nothing at the final name until the block succeeds
    assert final.read_text() == "done"
    assert list(final.parent.iterdir()) == [final]


def test_success_replaces_an_existing_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with atomic_path(final) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "new"
    assert list(tmp_path.iterdir()) == [final]


def test_an_exception_leaves_no_file_and_no_temporary_file(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(Boom), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_an_exception_keeps_the_previous_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(Boom), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise Boom
    assert final.read_text() == "old"
    assert list(tmp_path.iterdir()) == [final]


def test_write_json_writes_the_object_atomically(tmp_path):
    final = tmp_path / "doc.json"
    write_json(final, {"a": [1, None], "b": "x"})
    assert json.loads(final.read_text()) == {"a": [1, None], "b": "x"}
    assert list(tmp_path.iterdir()) == [final]
    with pytest.raises(TypeError):
        write_json(final, {"not json": object()})
    assert json.loads(final.read_text()) == {"a": [1, None], "b": "x"}
    assert list(tmp_path.iterdir()) == [final]
