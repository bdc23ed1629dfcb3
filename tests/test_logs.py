"""Workflow steps: everything a step writes to stderr, tracebacks included, reaches its log."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ecg2abp.logs import run_step

STEP = """
import sys, warnings
from ecg2abp.errors import InputError
from ecg2abp.logs import run_step

def step(kind):
    warnings.warn("a library warning")
    print("raw stderr line", file=sys.stderr)
    if kind == "bug":
        raise ZeroDivisionError("the bug")
    if kind == "input":
        raise InputError("part_9.mat: not a MATLAB file")
    if kind == "os":
        open("/nonexistent-folder/x")
    if kind == "big":
        data = bytearray(300 * 2**20)  # 300 MB; a byte written in every page, so each is held
        data[::4096] = b"\x01" * (len(data) // 4096)
        return data
    return 0

run_step(sys.argv[1], step, sys.argv[2])
"""


def run(tmp_path: Path, kind: str) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "logs" / f"{kind}.log"
    script = tmp_path / "step.py"
    script.write_text(STEP)
    done = subprocess.run(
        [sys.executable, str(script), str(log), kind], capture_output=True, text=True
    )
    return done, log.read_text()


def test_a_crash_reaches_the_log_with_its_traceback(tmp_path):
    done, log = run(tmp_path, "bug")
    assert done.returncode == 1
    for text in ("a library warning", "raw stderr line", "Traceback", "ZeroDivisionError"):
        assert text in log, text
        assert text in done.stderr, text


def test_bad_input_is_one_line_in_the_log_and_no_traceback(tmp_path):
    for kind, message in (
        ("input", "ecg2abp: error: part_9.mat: not a MATLAB file"),
        ("os", "ecg2abp: error: /nonexistent-folder/x: No such file or directory"),
    ):
        done, log = run(tmp_path, kind)
        assert done.returncode == 1
        assert log.splitlines()[-1] == message and "Traceback" not in log
        assert done.stderr.splitlines()[-1] == message


def test_a_step_that_succeeds_exits_zero_and_keeps_its_log(tmp_path):
    done, log = run(tmp_path, "ok")
    assert done.returncode == 0 and "raw stderr line" in log


def test_a_step_logs_its_peak_memory_as_the_kernel_counts_it(tmp_path):
    peaks = {}
    for kind in ("ok", "big"):
        done, log = run(tmp_path, kind)
        assert done.returncode == 0
        peaks[kind] = float(re.search(r"peak RSS (\d+) MB", log).group(1))
    assert peaks["big"] >= 300 > peaks["ok"]  # it held 300 MB; the plain step far less


def test_a_sigterm_exit_status_passes_through(tmp_path):
    def preempted() -> None:
        raise SystemExit(143)  # training after its SIGTERM checkpoint

    with pytest.raises(SystemExit) as ended:
        run_step(tmp_path / "step.log", preempted)
    assert ended.value.code == 143
