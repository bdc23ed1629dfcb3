"""GPU slots: one job per GPU index whatever the timing, released however the holder ends."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from ecg2abp.gpu_slots import gpu_slot, run_pinned, try_slot

SRC = Path(__file__).resolve().parents[1] / "src"


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    command = [sys.executable, "-c", textwrap.dedent(code), *args]
    return subprocess.Popen(command, env=env, text=True, **kwargs)


def test_each_holder_gets_its_own_index_and_sees_only_that_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with gpu_slot(2, tmp_path) as first:
        assert (first, os.environ["CUDA_VISIBLE_DEVICES"]) == (0, "0")
        with gpu_slot(2, tmp_path) as second:
            assert (second, os.environ["CUDA_VISIBLE_DEVICES"]) == (1, "1")
            assert try_slot(2, tmp_path) is None
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    index, handle = try_slot(2, tmp_path)
    handle.close()
    assert index == 0


def test_no_slots_runs_the_step_as_the_environment_has_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert run_pinned(0, lambda: os.environ["CUDA_VISIBLE_DEVICES"]) == "3"
    monkeypatch.chdir(tmp_path)
    assert run_pinned(1, lambda: os.environ["CUDA_VISIBLE_DEVICES"]) == "0"
    assert sorted(p.name for p in (tmp_path / ".snakemake" / "gpu_slots").iterdir()) == [
        "gpu0.lock"
    ]


def test_a_killed_holder_frees_its_slot(tmp_path):
    holder = python(
        """
        import sys
        from pathlib import Path
        from ecg2abp.gpu_slots import gpu_slot
        with gpu_slot(1, Path(sys.argv[1])):
            print("held", flush=True)
            sys.stdin.read()
        """,
        str(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert try_slot(1, tmp_path) is None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    index, handle = try_slot(1, tmp_path)
    handle.close()
    assert index == 0


def test_more_jobs_than_gpus_never_share_one(tmp_path):
    # Each job marks its GPU busy with an exclusive create while it holds the slot: a second
    # holder of the same index would find the mark and report it.
    job = """
        import os, sys, time
        from pathlib import Path
        from ecg2abp.gpu_slots import gpu_slot
        folder = Path(sys.argv[1])
        with gpu_slot(3, folder / "locks", poll_seconds=0.01) as index:
            mark = folder / f"busy{index}"
            try:
                fd = os.open(mark, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                sys.exit(f"GPU {index} shared")
            time.sleep(0.05)
            os.close(fd)
            mark.unlink()
            print(index, os.environ["CUDA_VISIBLE_DEVICES"])
        """
    jobs = [python(job, str(tmp_path), stdout=subprocess.PIPE) for _ in range(7)]
    outputs = [job.communicate(timeout=60)[0].split() for job in jobs]
    assert [job.returncode for job in jobs] == [0] * 7
    assert all(index == visible and index in "012" for index, visible in outputs)
