"""Workflow steps: a failure's traceback lands in the job's log file, not only on stderr."""

import pytest

from ecg2abp.errors import InputError
from ecg2abp.logs import run_step


def broken_step(value: int) -> None:
    raise ValueError(f"cannot use {value}")


def test_a_crash_writes_its_traceback_to_the_log_file(tmp_path):
    log = tmp_path / "logs" / "step.log"
    with pytest.raises(SystemExit) as ended:
        run_step(log, broken_step, 7)
    assert ended.value.code == 1
    text = log.read_text()
    assert "broken_step failed" in text and "Traceback" in text
    assert "ValueError: cannot use 7" in text


def test_bad_input_is_one_line_without_traceback(tmp_path):
    def refuse() -> None:
        raise InputError("part_1.mat: no ECG")

    log = tmp_path / "step.log"
    with pytest.raises(SystemExit) as ended:
        run_step(log, refuse)
    assert ended.value.code == "ecg2abp: error: part_1.mat: no ECG"
    assert "Traceback" not in log.read_text()


def test_a_sigterm_exit_status_passes_through(tmp_path):
    def preempted() -> None:
        raise SystemExit(143)

    with pytest.raises(SystemExit) as ended:
        run_step(tmp_path / "step.log", preempted)
    assert ended.value.code == 143
