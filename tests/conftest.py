"""Suite-wide settings: one thread per library, so parallel work never oversubscribes 2 cores;
the real-SLURM tests and the extended end-to-end runs (each a pipeline of its own) run only
when asked for by name (`pytest -m slurm`, `pytest -m extended`, `pytest -m browser`); CI runs
all three.

`run.sh test` spreads the suite over two pytest-xdist workers, a test module at a time
(`--dist loadfile`): the checks that read the shared pipeline run (`small_run`) live in one
module, so the run happens once, and are collected first, so that the longest piece of work
starts at once while the other worker takes the unit tests."""

import os

import pytest

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")


OPT_IN = ("slurm", "extended", "browser")
SHARED_RUN = "small_run"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out opt-in tests unless the -m expression names their marker; shared run first."""
    expression = config.getoption("markexpr") or ""
    left_out = [name for name in OPT_IN if name not in expression]
    dropped = [item for item in items if any(item.get_closest_marker(n) for n in left_out)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
    items.sort(key=lambda item: SHARED_RUN not in getattr(item, "fixturenames", ()))
