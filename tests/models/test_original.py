"""Checkpoints of the original code imported: every name mapped, every head the same."""

import json

import numpy as np
import pytest
import torch
from original_layout import OriginalLayout
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split
from real_record import ORIGINAL_STATE_DICT_SHAPES

from ecg2abp import models
from ecg2abp.cli import main
from ecg2abp.errors import InputError
from ecg2abp.evaluation.predictions import HALF_STEP_MMHG, read_predictions
from ecg2abp.evaluation.scoring import Predictor, evaluate_variant
from ecg2abp.folds.loading import load_fold
from ecg2abp.models.original import TABLE, map_state_dict, project_name
from ecg2abp.serving.external import evaluate_external

WIDTH = 1 / 16


def randomised(width: float) -> OriginalLayout:
    """The original's layout with random weights and BatchNorm statistics."""
    torch.manual_seed(3)
    original = OriginalLayout(width=width)
    with torch.no_grad():
        for name, tensor in original.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or (name.endswith(".bias") and ".conv." in name):
                tensor.normal_(0.0, 0.2)
    return original


def test_the_rebuilt_layout_has_the_originals_358_names_and_shapes_in_order():
    with torch.device("meta"):
        rebuilt = OriginalLayout().state_dict()
    want = json.loads(ORIGINAL_STATE_DICT_SHAPES.read_text())["keys"]
    assert [(k, list(v.shape)) for k, v in rebuilt.items()] == [(k, s) for k, s in want.items()]


def test_every_original_name_maps_onto_the_full_size_model_shape_for_shape():
    with torch.device("meta"):
        ours = models.build("msca_cssc_unet").state_dict()
    want = json.loads(ORIGINAL_STATE_DICT_SHAPES.read_text())["keys"]
    mapped = {project_name(k): shape for k, shape in want.items() if not TABLE.fullmatch(k)}
    assert {k: list(v.shape) for k, v in ours.items()} == mapped


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_imported_weights_give_every_head_of_the_original(mode):
    original = randomised(WIDTH)
    ours = models.build("msca_cssc_unet", width=WIDTH)
    ours.load_state_dict(map_state_dict(original.state_dict(), ours))
    x = torch.randn(6, 1, 88)
    original.train(mode == "train")
    ours.train(mode == "train")
    with torch.no_grad():
        expected = original(x)
        got = ours.forward_heads(x)
    assert len(got) == 4
    for head, (a, b) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"head {head}")


def test_import_original_writes_a_model_file_that_predicts_in_mmhg(tmp_path, capsys):
    original = randomised(WIDTH).eval()
    checkpoint = tmp_path / "MSCA_CSSC_UNet.pth"
    torch.save({f"module.{k}": v for k, v in original.state_dict().items()}, checkpoint)
    out = tmp_path / "model.pt"
    argv = ["import-original", str(checkpoint), "--out", str(out)]
    assert main([*argv, "--ecg-min", "-2.5", "--ecg-max", "3.5"]) == 0
    meta = torch.load(out, map_location="cpu", weights_only=True)
    assert (meta["protocol"], meta["leaky"], meta["width"]) == ("paper", True, WIDTH)
    ecg = np.random.default_rng(0).uniform(-2.5, 3.5, size=(5, 88))
    predicted = Predictor(out, torch.device("cpu")).predict("part_1/0000", ecg, batch_size=4)
    with torch.no_grad():
        x = torch.tensor((ecg + 2.5) / 6.0, dtype=torch.float32)[:, None]
        expected = original(x)[-1].double().numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-4)
    # the statistics are required, once
    assert main(argv) == 2
    assert "--shards or --ecg-min" in capsys.readouterr().err


def test_a_checkpoint_of_another_network_is_refused_naming_the_key():
    state = randomised(WIDTH).state_dict()
    ours = models.build("msca_cssc_unet", width=WIDTH)
    with pytest.raises(InputError, match="unknown key conv9_9"):
        map_state_dict({**state, "conv9_9.conv.0.weight": torch.zeros(1)}, ours)
    state["final4.weight"] = torch.zeros(2, 8, 1)
    with pytest.raises(InputError, match=r"final4.weight has shape \(2, 8, 1\)"):
        map_state_dict(state, ours)
    del state["final4.weight"]
    with pytest.raises(InputError, match=r"no key for heads\.x0_4\.weight"):
        map_state_dict(state, ours)


@pytest.mark.slow
def test_an_import_bound_to_a_fold_is_scored_by_evaluate_and_external_floor_included(
    tmp_path, capsys
):
    config = tiny_config({"split": {"protocol": "record", "folds": 2, "block_size": 1}})
    parts = synthetic_parts(tmp_path, records=2)
    shards = ingest_parts(tmp_path, parts, config)
    split = write_split(tmp_path, shards, config)
    checkpoint = tmp_path / "MSCA_CSSC_UNet.pth"
    torch.save(randomised(WIDTH).state_dict(), checkpoint)
    out = tmp_path / "model.pt"
    argv = ["import-original", str(checkpoint), "--out", str(out), "--shards", *map(str, shards)]
    assert main([*argv, "--split", str(split), "--fold", "1"]) == 0
    meta = torch.load(out, map_location="cpu", weights_only=True)
    fold = load_fold(split, shards, 1, normalisation="minmax_all", abp="none")
    assert (meta["fold"], meta["data_fingerprint"]) == (1, fold.fingerprint)
    assert meta["train_abp_mean"] == pytest.approx(fold.targets("train").mean(), rel=1e-12)
    assert meta["stats"] == fold.stats.to_dict()

    scored = evaluate_variant(out, split, shards, 1, tmp_path / "eval", config)
    assert scored["levels"]["point"]["n"] > 0
    assert scored["leaky"]  # the original trained on every record: leaky under any split
    external = evaluate_external(out, parts[0], tmp_path / "ext")
    predictions = read_predictions(tmp_path / "ext" / "predictions.parquet")
    naive = external["naive"]["levels"]["point"]
    assert naive["n"] == len(predictions) > 0
    assert naive["mae"] == pytest.approx(
        np.mean(np.abs(meta["train_abp_mean"] - predictions["abp_true"])), abs=HALF_STEP_MMHG
    )
    # without --split/--fold the model is bound to no data, and evaluate says so
    capsys.readouterr()
    assert main(argv) == 0
    with pytest.raises(InputError, match=r"bound to no data \(imported without --split"):
        evaluate_variant(out, split, shards, 1, tmp_path / "eval_unbound", config)
    assert main([*argv, "--split", str(split)]) == 2
    assert "--split and --fold go together" in capsys.readouterr().err
