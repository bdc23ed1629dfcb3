"""predict / external / stream / export on tiny trained models and the real MIMIC-II record."""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from real_record import REAL_RECORD

from ecg2abp.cli import main
from ecg2abp.data.readers import iter_records
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS
from ecg2abp.evaluation.predictions import HALF_STEP_MMHG, read_predictions
from ecg2abp.serving.beats import RecordBeats
from ecg2abp.serving.ensemble import NOTICE, load_model
from ecg2abp.serving.external import evaluate_external
from ecg2abp.serving.inputs import InputRecord
from ecg2abp.serving.outputs import beat_table
from ecg2abp.serving.predict import InputOptions, predict_file
from ecg2abp.serving.stream import run_stream

pytestmark = pytest.mark.slow
SECONDS = 12


@pytest.fixture(scope="module")
def short_csv(tmp_path_factory) -> Path:
    """The first SECONDS of the real record's ECG as a one-column CSV."""
    ecg = next(iter_records(REAL_RECORD)).ecg[: SECONDS * 125]
    path = tmp_path_factory.mktemp("csv") / "real.csv"
    pd.DataFrame({"ecg": ecg}).to_csv(path, index=False)
    return path


def predict(model: Path, source: Path, out: Path, **kwargs) -> pd.DataFrame:
    options = InputOptions(fs=125.0) if source.suffix == ".csv" else None
    predict_file(model, source, out, options=options, **kwargs)
    return pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)


def test_predict_real_record_rows_metadata_beats_plot(model_file, tmp_path):
    out = tmp_path / "pred.parquet"
    table = predict(model_file, REAL_RECORD, out, beats=tmp_path / "b.csv", plot=tmp_path / "p.png")
    n = next(iter_records(REAL_RECORD)).ecg.size
    assert list(table.columns) == ["record", "sample", "time", "abp_pred", "flag"]
    np.testing.assert_array_equal(table["sample"], np.arange(87, n))
    assert (table["flag"] == "ok").all() and table["abp_pred"].notna().all()
    meta = json.loads(pq.read_schema(out).metadata[b"ecg2abp"])
    assert meta["notice"] == NOTICE and "not a medical device" in NOTICE
    assert (tmp_path / "p.png").stat().st_size > 0
    assert list(pd.read_csv(tmp_path / "b.csv").columns) == [
        "record",
        "sample",
        "time",
        "sbp",
        "dbp",
        "map",
    ]
    assert json.loads((tmp_path / "b.csv.json").read_text())["notice"] == NOTICE


def test_beats_are_found_on_the_predicted_waveform_with_the_pipeline_finder():
    t = np.arange(1250) / 125.0
    abp = 90 + 25 * np.maximum(np.sin(2 * np.pi * 1.2 * t), -0.4)
    abp[600:650] = np.nan  # two predicted stretches
    record = InputRecord("r", 125.0, 250.0, source=None)
    finder = RecordBeats(125.0)
    found = [finder.push(100 + np.arange(1250), abp), finder.finish()]
    beats = pd.concat([beat_table(record, *f).to_pandas() for f in found])
    assert len(beats) >= 7  # 12 cycles; beats need a foot either side, none across the gap
    np.testing.assert_allclose(beats["sbp"], 115.0, atol=0.1)
    np.testing.assert_allclose(beats["dbp"], 80.0, atol=0.1)
    assert (beats["sample"] % 2 == 0).all()  # original rate 250 Hz: every other sample


def test_fold_folder_predicts_mean_and_spread_of_its_folds(trained, short_csv, tmp_path):
    folder = trained / "tiny_resnet"
    both = predict(folder, short_csv, tmp_path / "e.csv")
    each = [
        predict(folder / f"fold_{k}" / "model.pt", short_csv, tmp_path / f"{k}.csv") for k in (0, 1)
    ]
    stacked = np.stack([e["abp_pred"].to_numpy() for e in each])
    np.testing.assert_allclose(both["abp_pred"], stacked.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(both["abp_spread"], stacked.std(axis=0), rtol=1e-3, atol=1e-4)
    assert (both["abp_spread"] > 0).all()


def test_external_evaluation_on_the_real_record(model_file, tmp_path):
    result = evaluate_external(model_file, REAL_RECORD, tmp_path / "ext")
    written = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result))
    predictions = read_predictions(tmp_path / "ext" / "predictions.parquet")
    assert result["levels"]["point"]["n"] == len(predictions) > 10_000
    assert set(result["levels"]) == set(LEVELS) and result["levels"]["sbp"]["n"] > 50
    # the floor: the stored training mean, scored on the same samples
    naive = result["naive"]["levels"]["point"]
    mean = torch.load(model_file, weights_only=True)["train_abp_mean"]
    assert naive["n"] == len(predictions)
    # stored true and predicted ABP: each within half a step of the values scored
    np.testing.assert_allclose(
        naive["mae"], np.mean(np.abs(mean - predictions["abp_true"])), atol=HALF_STEP_MMHG
    )
    np.testing.assert_allclose(
        result["levels"]["point"]["mae"],
        np.mean(np.abs(predictions["abp_pred"] - predictions["abp_true"])),
        atol=2 * HALF_STEP_MMHG,
    )


def test_external_evaluation_needs_abp(model_file, short_csv, tmp_path):
    with pytest.raises(InputError, match=r"real\.csv: record real has no ABP to score"):
        evaluate_external(model_file, short_csv, tmp_path / "x", options=InputOptions(fs=125.0))


def test_stream_output_equals_predict(model_file, short_csv, tmp_path):
    expected = predict(model_file, short_csv, tmp_path / "p.csv")
    lines = "\n".join(f"{v!r}" for v in pd.read_csv(short_csv)["ecg"]) + "\n"
    out, log = io.StringIO(), io.StringIO()
    summary = run_stream(load_model(model_file), io.BytesIO(lines.encode()).read, out, log=log)
    got = pd.read_csv(io.StringIO(out.getvalue()))
    np.testing.assert_array_equal(got["sample"], expected["sample"])
    np.testing.assert_array_equal(got["flag"], expected["flag"])
    np.testing.assert_allclose(got["abp_pred"], expected["abp_pred"], rtol=1e-5)
    assert json.loads(log.getvalue().strip().splitlines()[-1]) == summary
    assert summary["rows_out"] == len(expected) and summary["latency_ms_p99"] is not None


def test_stream_over_tcp_stops_cleanly_on_sigterm(model_file):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ecg2abp.cli", "stream", str(model_file), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        import socket

        port = int(json.loads(process.stderr.readline())["listening"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as connection:
            ecg = next(iter_records(REAL_RECORD)).ecg[:1000]
            connection.sendall(("\n".join(str(float(v)) for v in ecg) + "\n").encode())
            time.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    summary = json.loads(err.decode().strip().splitlines()[-1])
    assert summary["stopped_by"] == "signal"
    assert len(out.decode().splitlines()) - 1 == summary["rows_out"] > 0


def test_onnx_export_agrees_and_serves_like_the_model_file(model_file, short_csv, tmp_path, capsys):
    import onnx

    onnx_file = tmp_path / "m.onnx"
    code = main(
        ["export", str(model_file), "--onnx", str(onnx_file), "--check-input", str(REAL_RECORD)]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert max(report["max_rel_diff"].values()) <= 1e-4
    assert report["windows_checked"] == {"random": 256, "real": 256}
    via_onnx = predict(onnx_file, short_csv, tmp_path / "o.csv")
    via_torch = predict(model_file, short_csv, tmp_path / "t.csv")
    np.testing.assert_allclose(via_onnx["abp_pred"], via_torch["abp_pred"], rtol=1e-5)
    assert load_model(onnx_file).meta["variant"] == "tiny_resnet"
    # a file whose metadata does not match its graph, or carries none, is refused
    graph = onnx.load(str(onnx_file))
    meta = json.loads(graph.metadata_props[0].value)
    graph.metadata_props[0].value = json.dumps({**meta, "window": 64})
    onnx.save(graph, str(tmp_path / "other.onnx"))
    with pytest.raises(InputError, match=r"other\.onnx: graph input shape .* window 64"):
        load_model(tmp_path / "other.onnx")
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(InputError, match=r"bare\.onnx: ONNX file without ecg2abp metadata"):
        load_model(tmp_path / "bare.onnx")


def test_a_unetpp_exports_its_inference_forward_with_no_data_dependent_branch(tmp_path, capsys):
    """msca_cssc_unet exports as the folded inference graph (softmax itself, no If), agrees with
    the model within 1e-4 at a batch size other than the traced one, and predicts as it does."""
    import onnx

    from ecg2abp.bench.serving import untrained_model_file

    model_file = untrained_model_file(tmp_path, 1 / 16, "fp32")
    onnx_file = tmp_path / "unet.onnx"
    code = main(
        ["export", str(model_file), "--onnx", str(onnx_file), "--check-input", str(REAL_RECORD)]
    )
    assert code == 0
    assert max(json.loads(capsys.readouterr().out)["max_rel_diff"].values()) <= 1e-4
    operators = {node.op_type for node in onnx.load(str(onnx_file)).graph.node}
    assert "Softmax" in operators and "If" not in operators
    ecg = next(iter_records(REAL_RECORD)).ecg[:600]
    windows = np.lib.stride_tricks.sliding_window_view(ecg, 88)[:77]
    via_onnx = load_model(onnx_file).members[0].predict("r", windows, 77)
    via_torch = load_model(model_file).members[0].predict("r", windows, 77)
    np.testing.assert_allclose(via_onnx, via_torch, rtol=1e-5)


def test_bad_models_are_one_line_errors(model_file, trained, short_csv, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(model_file.read_bytes()[:5000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    future = tmp_path / "future.pt"
    torch.save({**torch.load(model_file, weights_only=True), "format_version": 99}, future)
    fake_onnx = tmp_path / "fake.onnx"
    fake_onnx.write_bytes(b"not onnx")
    cases = {
        truncated: r"truncated\.pt: cannot read model file",
        foreign: r"foreign\.pt: not an ecg2abp model file \(missing ",
        future: r"future\.pt: model file format_version 99; this ecg2abp reads 1",
        fake_onnx: r"fake\.onnx: not a readable ONNX file",
        tmp_path: r": no model\.pt and no fold_\*/seed_\*/model\.pt inside",
    }
    for model, message in cases.items():
        code = main(
            [
                "predict",
                str(model),
                str(short_csv),
                "--fs",
                "125",
                "--out",
                str(tmp_path / "x.csv"),
                "--quiet",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert re.search(message, err), err
    with pytest.raises(InputError, match=r"linear.*only deep models export to ONNX"):
        from ecg2abp.serving.export import export_onnx

        export_onnx(trained / "linear" / "fold_0" / "model.pt", tmp_path / "l.onnx", [])
    assert not (tmp_path / "x.csv").exists()


def test_predict_export_and_external_never_write_over_their_inputs(
    model_file, short_csv, tmp_path, capsys
):
    victim = tmp_path / "victim.csv"
    shutil.copy(short_csv, victim)
    table = tmp_path / "victim.parquet"
    pd.read_csv(short_csv).to_parquet(table)
    inputs = {path: path.read_bytes() for path in (victim, table, model_file)}
    scored = tmp_path / "scored"
    scored.mkdir()
    (scored / "predictions.parquet").symlink_to(table)
    predict_args = ["--fs", "125", "--quiet", "--out"]
    cases = {
        "predict over its CSV": (
            ["predict", str(model_file), str(victim), *predict_args, str(victim)],
            victim,
        ),
        "predict over its Parquet": (
            ["predict", str(model_file), str(table), *predict_args, str(table)],
            table,
        ),
        "--beats over the input": (
            [
                "predict",
                str(model_file),
                str(victim),
                *predict_args,
                str(tmp_path / "p.csv"),
                "--beats",
                str(victim),
            ],
            victim,
        ),
        "export over the model": (
            [
                "export",
                str(model_file),
                "--onnx",
                str(model_file),
                "--check-input",
                str(victim),
                "--fs",
                "125",
            ],
            model_file,
        ),
        "external over its input, beside --out": (
            [
                "external",
                str(model_file),
                "--input",
                str(table),
                "--fs",
                "125",
                "--out",
                str(scored),
            ],
            scored / "predictions.parquet",
        ),
    }
    for what, (argv, named) in cases.items():
        assert main(argv) == 2, what
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "would overwrite the input" in err, (what, err)
        assert err.startswith(f"ecg2abp: error: {named}:"), (what, err)
    assert {path: path.read_bytes() for path in inputs} == inputs
