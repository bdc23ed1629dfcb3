"""Suite-wide settings: one thread per library, so parallel work never oversubscribes 2 cores;
the real-SLURM tests run only when asked for by name (`pytest -m slurm`)."""

import os

import pytest

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out `slurm` tests unless the -m expression names them (any other -m keeps them out)."""
    if "slurm" in (config.getoption("markexpr") or ""):
        return
    slurm = [item for item in items if item.get_closest_marker("slurm")]
    if slurm:
        config.hook.pytest_deselected(items=slurm)
        items[:] = [item for item in items if not item.get_closest_marker("slurm")]
