"""Atomic outputs: renamed into place on success, nothing left behind on failure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecg2abp.atomic import atomic_path, refuse_overwriting, write_json
from ecg2abp.errors import InputError


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


def finished_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_dead_processes_are_removed_on_the_next_write(tmp_path):
    final = tmp_path / "part_1.h5"
    dead = tmp_path / f".part_1.h5.tmp-{finished_pid()}"
    alive = tmp_path / f".part_1.h5.tmp-{os.getppid()}"  # our parent runs: maybe still writing
    other = tmp_path / f".part_2.h5.tmp-{finished_pid()}"  # another output: not ours to judge
    for path in (dead, alive, other):
        path.write_text("half")
    write_json(final, {})
    assert sorted(tmp_path.iterdir()) == sorted([final, alive, other])


def test_a_folder_or_a_file_on_the_way_is_refused_in_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="taken: is a folder"):
        write_json(tmp_path / "taken", {})
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match=r"afile is a file"):
        write_json(tmp_path / "afile" / "deeper" / "out.json", {})
    assert (tmp_path / "afile").read_text() == "x"


def test_an_unwritable_folder_is_refused_in_one_line():
    folder = Path("/sys")  # read-only even for root
    if not folder.is_dir() or (folder / "x").exists():
        pytest.skip("no /sys here")
    with pytest.raises(InputError, match=r"/sys/out\.json: cannot be written"):
        write_json(folder / "out.json", {})


def test_an_output_that_is_an_input_by_any_name_is_refused_naming_both(tmp_path):
    data = tmp_path / "ecg.csv"
    data.write_text("ecg\n0.1\n")
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    (tmp_path / "sub").mkdir()
    for alias in ("ecg.csv", "link.csv", "hard.csv", "sub/../ecg.csv"):
        with pytest.raises(InputError) as refused:
            refuse_overwriting([tmp_path / "new.parquet", tmp_path / alias], [data])
        assert str(refused.value) == (
            f"{tmp_path / alias}: would overwrite the input {data}; give another name"
        )
    with pytest.raises(InputError, match=r"sub/\.\./a\.csv: would overwrite the output .*a\.csv"):
        refuse_overwriting([tmp_path / "a.csv", tmp_path / "sub" / ".." / "a.csv"], [])
    refuse_overwriting([tmp_path / "new.csv", None], [data, None])  # distinct files: no error
    assert data.read_text() == "ecg\n0.1\n"
