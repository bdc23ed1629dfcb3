"""One pipeline run shared by every end-to-end check that only reads its outputs."""

import pytest
from workflow_runner import SMALL, snakemake


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """The workflow's default target on SMALL, run once per test session; its folder."""
    workdir = tmp_path_factory.mktemp("small_run")
    result = snakemake(workdir, config=SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
