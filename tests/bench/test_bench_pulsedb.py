"""The PulseDB reader check: the file's SBP/DBP per segment against the pipeline's beats,
within the tolerance docs/data.md states, and the band-pass's start-up error on ECG_F."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ecg2abp.bench.pulsedb import pulsedb_check, segment_beat_means, settling_seconds
from ecg2abp.cli import main
from ecg2abp.config import validate_config
from ecg2abp.data.synth import write_pulsedb
from ecg2abp.errors import InputError

MEDIAN_TOLERANCE = 1.0  # mmHg, docs/data.md "The reader check"
P95_TOLERANCE = 2.0


@pytest.fixture(scope="module")
def subsets(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pulsedb")
    return {p.stem: p for p in write_pulsedb(folder, subjects=12, segments_per_subject=5, seed=7)}


def test_file_pressures_agree_with_the_pipeline_s_beats_within_the_stated_tolerance(
    subsets, capsys
):
    for stem in ("Train_Subset", "CalFree_Test_Subset"):
        assert main(["bench", "pulsedb-check", str(subsets[stem])]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["segments"] == result["compared"] > 0 and result["no_beats"] == 0
        for level in ("sbp", "dbp"):
            assert result[level]["median_abs"] <= MEDIAN_TOLERANCE, (stem, level)
            assert result[level]["p95_abs"] <= P95_TOLERANCE, (stem, level)


def test_the_check_sees_a_file_whose_pressures_do_not_follow_its_signals(subsets, tmp_path):
    path = tmp_path / "Train_Subset.mat"
    path.write_bytes(subsets["Train_Subset"].read_bytes())
    with h5py.File(path, "a") as file:
        file["Subset/DBP"][0, 3] += 7.0
    result = pulsedb_check(path, validate_config({}))
    assert 6.0 < result["dbp"]["max_abs"] < 8.0
    assert result["sbp"]["max_abs"] <= P95_TOLERANCE


def test_segment_beat_means_over_kept_stretches():
    fs = 125.0
    t = np.arange(int(10 * fs)) / fs
    abp = 95.0 + 20.0 * np.sin(2 * np.pi * 1.2 * t)
    abp[int(5 * fs) :] += 30.0  # the second half runs 30 mmHg higher
    first = segment_beat_means(abp, [(0, int(5 * fs))], fs)
    assert first == pytest.approx({"sbp": 115.0, "dbp": 75.0}, abs=0.1)
    both = segment_beat_means(abp, [(0, int(5 * fs)), (int(5 * fs), len(abp))], fs)
    assert first["sbp"] + 10.0 < both["sbp"] < first["sbp"] + 20.0
    assert segment_beat_means(abp, [(0, 60)], fs) is None


def test_bandpass_start_up_is_measured_and_absent_when_the_band_pass_is_off(subsets):
    path = subsets["CalFree_Test_Subset"]
    on = pulsedb_check(path, validate_config({}))["bandpass"]
    assert tuple(on["band_hz"]) == (0.5, 40.0)
    assert 0.0 < on["startup_first_second"] < 1.0 and 0.0 < on["settled_s"] <= 3.0
    assert on["steady_change"] > 0.0
    off = pulsedb_check(path, validate_config({"cleaning": {"bandpass_hz": None}}))["bandpass"]
    assert off == {
        "band_hz": None,
        "startup_first_second": None,
        "settled_s": None,
        "steady_change": None,
    }


def test_settling_seconds_is_when_the_error_stays_small():
    fs = 100.0
    error = np.zeros(300)
    error[:50] = 1.0  # 0.5 s of error, then none
    assert settling_seconds(error, 1.0, fs) == pytest.approx(0.5)
    error[250] = 1.0  # a late burst counts until it is over
    assert settling_seconds(error, 1.0, fs) == pytest.approx(2.6)
    assert settling_seconds(np.zeros(300), 1.0, fs) == 0.0


def test_a_file_that_is_not_a_subset_is_refused(tmp_path):
    path = tmp_path / "x.mat"
    path.write_bytes(b"not matlab")
    with pytest.raises(InputError, match=r"x\.mat"):
        pulsedb_check(path, validate_config({}))
