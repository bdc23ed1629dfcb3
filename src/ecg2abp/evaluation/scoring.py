"""Evaluation of one trained variant on its fold's test data: predictions and clinical metrics."""

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp import models
from ecg2abp.atomic import refuse_overwriting, write_json
from ecg2abp.data.shards import Shard, release_pages
from ecg2abp.devices import log_device, resolve_device
from ecg2abp.digests import file_sha256
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS, ErrorAccumulator, LevelMetrics, floor_for
from ecg2abp.evaluation.pooling import TEST
from ecg2abp.evaluation.predictions import PredictionWriter
from ecg2abp.folds.feed import side_ranges
from ecg2abp.folds.loading import FoldData, load_fold
from ecg2abp.folds.normalisation import NormStats
from ecg2abp.folds.protocols import record_units, scored_sides, windows_path
from ecg2abp.models.inference import inference_forward
from ecg2abp.stages import variant_evaluate, variant_train
from ecg2abp.training.calibration import Calibration
from ecg2abp.training.model_file import load_model_file

log = logging.getLogger("ecg2abp.evaluation.scoring")


class Predictor:
    """A trained model file turned into ABP (mmHg) for normalised ECG windows of one record."""

    max_batch: int | None = None  # windows per forward call at most; None: the caller's batch

    def __init__(self, model_path: Path, device: torch.device, meta: dict | None = None) -> None:
        self.path = Path(model_path)
        self.meta = meta or load_model_file(self.path)
        self.stats = NormStats.from_dict(self.meta["stats"])
        self.window = int(self.meta["window"])
        self.kind = self.meta["kind"]
        self.device = device
        # naive: each beat level's own training mean (evaluation.floors), not its flat line's
        self.beat_floor = self.meta.get("beat_floor") if self.kind == "naive" else None
        # naive, and a record-level classical model (template) under `temporal`
        self.record_means = self.meta.get("record_means") or {}
        if self.kind == "deep":
            self.model = models.build(
                self.meta["model"],
                window=self.window,
                width=self.meta["width"],
                **self.meta["options"],
            )
            try:
                self.model.load_state_dict(self.meta["state_dict"])
            except RuntimeError as err:  # weights of another architecture or width
                first = str(err).splitlines()[0]
                raise InputError(
                    f"{self.path}: weights do not fit {self.meta['model']} ({first})"
                ) from None
            self.model.to(device).eval()
            self.inference = inference_forward(self.model, self.meta["precision"])
        elif self.kind == "classical":
            artefact = self.artefact
            if not artefact.is_file():
                raise InputError(f"{self.path}: its fitted model {artefact} is missing")
            bound = self.meta.get("artefact_sha256")  # absent in files from before the binding
            if bound is not None and file_sha256(artefact) != bound:
                raise InputError(
                    f"{artefact}: not the fitted model {self.path} was trained with "
                    "(its SHA-256 differs); copy both files of one training job together"
                )
            template = models.build(self.meta["model"], window=self.window, **self.meta["options"])
            self.model = type(template).load(artefact)

    @property
    def artefact(self) -> Path | None:
        """A classical model's fitted file (beside its model.pt); None for other kinds."""
        return self.path.parent / self.meta["artefact"] if self.kind == "classical" else None

    @property
    def files(self) -> list[Path]:
        """Every file the model is read from."""
        return [self.path] + ([self.artefact] if self.artefact else [])

    def subject_floor(self, source: str | None, subject: str | None) -> dict[str, float] | None:
        """naive's means of one subject in calibration subset `source` (pulsedb), or None."""
        if not self.beat_floor or source is None:
            return None
        return self.beat_floor.get("subjects", {}).get(source, {}).get(subject)

    def predict(
        self,
        record_id: str,
        ecg_windows: np.ndarray,
        batch_size: int,
        subject_floor: dict[str, float] | None = None,
    ) -> np.ndarray:
        """ABP at the last sample of each raw ECG window [n, window], in mmHg (calibrated).

        `subject_floor` (naive only): the record's subject's calibration means."""
        n = len(ecg_windows)
        overall = self.meta["train_abp_mean"]  # NaN in an import bound to no data
        level = self.record_means.get(record_id, overall)
        if self.kind == "naive":
            return np.full(n, subject_floor["abp"] if subject_floor else level)
        out = np.empty(n, dtype=np.float64)
        step = min(batch_size, self.max_batch or batch_size)
        try:
            for first in range(0, n, step):
                x = self.stats.scale_ecg(ecg_windows[first : first + step])
                out[first : first + len(x)] = self._forward(x)
        except InputError as error:  # e.g. a classical model refusing non-finite ECG
            raise InputError(f"record {record_id}: {error}") from None
        calibrated = Calibration.of(self.meta).apply(
            out * self.stats.abp_scale + self.stats.abp_center
        )
        prediction = calibrated
        if record_id in self.record_means:  # temporal: shifted to the record's own training mean
            prediction = calibrated + (level - overall)
        if not np.all(np.isfinite(prediction)):
            bad = int(np.count_nonzero(~np.isfinite(prediction)))
            raise InputError(
                f"record {record_id}: {self.meta['variant']} predicted {bad} non-finite values"
            )
        return prediction

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "classical":
            return self.model.predict(x)
        bf16 = self.meta["precision"] == "bf16"
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            tensor = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).to(self.device)
            return self.inference(tensor).float().cpu().numpy()


@dataclass(frozen=True)
class TestPiece:
    """A contiguous stretch of kept samples of one test record."""

    shard: int
    record_id: str
    start: int  # in the shard's arrays
    stop: int
    source_start: int  # first sample's index in the original record


def chosen_test_set(
    fold: FoldData, test_set: str | None, split_path: Path
) -> tuple[str | None, list[list]]:
    """(name, side) of the test set scored: `test_set`, or the fold's `test` side (named where
    the split names its test sets)."""
    sides = scored_sides(fold.document, fold.fold)
    if test_set is None:
        main = [n for n, t in fold.document.get("test_sets", {}).items() if t["side"] == "test"]
        return (main[0] if main else None), fold.side("test")
    if test_set not in sides:
        raise InputError(
            f"{split_path}: no test set {test_set} (it has {', '.join(sides) or 'none'})"
        )
    return test_set, sides[test_set]


def side_pieces(side: list[list], shards: Sequence[Shard]) -> Iterator[TestPiece]:
    """Every kept stretch of a split side (ranges of records) in the shards, in their order."""
    ranges = side_ranges(side)
    for shard_index, shard in enumerate(shards):
        for record, start, stop, source in shard.segments:
            record_id = shard.records[record]
            if record_id not in ranges:
                continue
            low, high = ranges[record_id]
            first = max(source, low)
            last = min(source + stop - start, high)
            if last > first:
                yield TestPiece(
                    shard_index,
                    record_id,
                    int(start + first - source),
                    int(start + last - source),
                    int(first),
                )
        release_pages(shard)  # a mapped shard's pages read so far: out of resident memory


def _subject_floors(
    fold: FoldData, predictor: Predictor, test_set: dict | None
) -> tuple[dict[str, dict], int]:
    """Record → naive's calibration means of its subject, where the test set calibrates per
    subject; and how many of its subjects have none (scored against the population floor)."""
    source = (test_set or {}).get("calibration")
    if predictor.kind != "naive" or source is None:
        return {}, 0
    shard = next(s for s in fold.shards if s.name == test_set["subset"])
    floors, missing = {}, set()
    for record_id, subject in zip(shard.records, shard.subjects or [], strict=False):
        floor = predictor.subject_floor(source, subject)
        if floor is None:
            missing.add(subject)
        else:
            floors[record_id] = floor
    if missing:
        log.warning(
            "%s: %d subjects have no beats in %s; naive scores them at the population means",
            test_set["subset"],
            len(missing),
            source,
        )
    return floors, len(missing)


def _score_records(
    fold: FoldData,
    pieces: Iterator[TestPiece],
    predictor: Predictor,
    writer: PredictionWriter,
    settings: tuple[int, int],
    subject_floors: dict[str, dict],
) -> tuple[LevelMetrics, int]:
    stride, batch = settings
    metrics = LevelMetrics(float(predictor.meta["fs"]))
    records = set()
    for piece in pieces:
        subject_floor = subject_floors.get(piece.record_id)
        shard = fold.shards[piece.shard]
        ecg = np.asarray(shard.ecg[piece.start : piece.stop])
        true = np.asarray(shard.abp[piece.start : piece.stop], np.float64)
        full = np.full(len(ecg), np.nan)  # a stretch shorter than a window: all unpredicted
        records.add(piece.record_id)
        if len(ecg) >= fold.window:
            starts = np.arange(0, len(ecg) - fold.window + 1, stride)
            windows = sliding_window_view(ecg, fold.window)[starts]
            prediction = predictor.predict(piece.record_id, windows, batch, subject_floor)
            ends = starts + fold.window - 1
            full[ends] = prediction
            writer.add(piece.record_id, piece.source_start + ends, true[ends], prediction)
        floor = subject_floor or floor_for(predictor.beat_floor, piece.record_id)
        metrics.update_segment(piece.record_id, true, full, floor)
    return metrics, len(records)


def _score_sampled_windows(
    fold: FoldData, predictor: Predictor, writer: PredictionWriter, batch: int
) -> tuple[ErrorAccumulator, int]:
    """The paper's test set: sampled windows, scored point-wise only."""
    point = ErrorAccumulator()
    records = set()
    for shard, test_starts in zip(fold.shards, fold.starts["test"], strict=True):
        if len(test_starts) == 0:
            continue
        starts = np.asarray(test_starts)  # the sampled windows: a share of the data, drawn
        record_of_start, source_of_start = shard.locate(starts)
        for record in np.unique(record_of_start):
            record_id = shard.records[record]
            here = record_of_start == record
            mine = starts[here]
            windows = sliding_window_view(np.asarray(shard.ecg), fold.window)[mine]
            prediction = predictor.predict(record_id, windows, batch)
            true = np.asarray(shard.abp[mine + fold.window - 1], np.float64)
            point.update(record_id, true, prediction)
            sample = source_of_start[here] + fold.window - 1
            writer.add(record_id, sample, true, prediction)
            records.add(record_id)
        release_pages(shard)  # the drawn windows touch pages all over it: out of resident memory
    return point, len(records)


def beats_not_scored(stride: int) -> dict:
    """SBP/DBP/MAP marked as not scored when `stride` > 1: a beat's extremes need every sample
    predicted, so strided evaluation scores points only (and says so)."""
    if stride == 1:
        return {}
    why = f"evaluate.stride {stride} predicts one sample in {stride}; beats need every sample"
    log.warning("%s: SBP, DBP and MAP are not scored", why)
    return {level: {"applies": False, "why": why} for level in LEVELS[1:]}


def refuse_other_model(predictor: Predictor, config: dict, variant: str | None) -> None:
    """Refuse a model trained for another window than the config's, or for another variant."""
    meta, path = predictor.meta, predictor.path
    if predictor.window != config["window"]:
        raise InputError(
            f"{path}: trained for window {predictor.window}, the config has window "
            f"{config['window']}"
        )
    if variant is None:
        return
    declared = config["variants"].get(variant, {}).get("model", variant)
    if meta["variant"] != variant or meta["model"] != declared:
        raise InputError(
            f"{path}: holds variant {meta['variant']} (model {meta['model']}), "
            f"scored as variant {variant} (model {declared})"
        )


def evaluate_variant(
    model_path: Path,
    split_path: Path,
    shard_paths: Sequence[Path],
    fold_index: int,
    out_dir: Path,
    config: dict,
    variant: str | None = None,
    test_set: str | None = None,
) -> dict:
    """Predict every test window of the fold; write predictions.parquet and metrics.json.

    `variant`, when given, is the variant the model is scored as: a model of another is refused.
    `test_set` (pulsedb) names one of the split's test sets; default: the fold's `test` side.
    """
    torch.set_num_threads(config["threads"])
    meta = load_model_file(Path(model_path))
    own = variant or meta["variant"]  # its own settings, where `variants.NAME` gives some
    device_setting = variant_train(config, own)["device"]
    device = resolve_device(device_setting)
    predictor = Predictor(model_path, device, meta)
    out_dir = Path(out_dir)
    refuse_overwriting(
        [out_dir / "predictions.parquet", out_dir / "metrics.json"],
        [*predictor.files, split_path, windows_path(Path(split_path)), *shard_paths],
    )
    refuse_other_model(predictor, config, variant)
    fold = load_fold(
        split_path, shard_paths, fold_index, normalisation=config["normalisation"], mapped=True
    )
    if fold.window != predictor.window:
        raise InputError(
            f"{model_path}: trained for window {predictor.window}, split has {fold.window}"
        )
    if not predictor.meta["data_fingerprint"]:
        raise InputError(
            f"{model_path}: bound to no data (imported without --split and --fold); "
            "import it again with them to score it"
        )
    if predictor.meta["fold"] != fold_index:
        raise InputError(
            f"{model_path}: trained on fold {predictor.meta['fold']}, not fold {fold_index}"
        )
    if predictor.meta["data_fingerprint"] != fold.fingerprint:
        raise InputError(
            f"{model_path}: trained on other data than {split_path} and the shards given "
            "(data fingerprints differ)"
        )
    log_device(device, device_setting)
    settings = variant_evaluate(config, own)
    stride, batch = settings["stride"], settings["batch_size"]
    name, side = chosen_test_set(fold, test_set, Path(split_path))
    described = fold.document.get("test_sets", {}).get(name)
    unit, units = record_units(fold.document, sorted({r[0] for r in side}))
    floors, floors_missing = _subject_floors(fold, predictor, described)
    started = time.perf_counter()
    writer = PredictionWriter(out_dir / "predictions.parquet")
    ok = False
    try:
        if fold.protocol == "paper":
            point, n_records = _score_sampled_windows(fold, predictor, writer, batch)
            levels = {"point": point.result()}
            levels |= {
                level: {"applies": False, "why": "the paper protocol scores sampled windows only"}
                for level in LEVELS[1:]
            }
            state = {"point": point.to_dict()}
        else:
            pieces = side_pieces(side, fold.shards)
            metrics, n_records = _score_records(
                fold, pieces, predictor, writer, (stride, batch), floors
            )
            levels = metrics.result() | beats_not_scored(stride)
            state = metrics.to_dict()
        ok = True
    finally:
        writer.close(ok)
    result = {
        "dataset": name or TEST,
        "side": described["side"] if described else "test",
        "variant": predictor.meta["variant"],
        "model": predictor.meta["model"],
        "kind": predictor.kind,
        "fold": fold_index,
        "seed": predictor.meta.get("seed"),
        "protocol": fold.protocol,
        # the split's protocol leaks, or the model itself saw test records (an original import)
        "leaky": fold.leaky or bool(predictor.meta["leaky"]),
        "window": fold.window,
        "stride": stride,
        "test_records": n_records,
        "seconds": round(time.perf_counter() - started, 3),
        "levels": levels,
        "state": state,
        "beat_floor": predictor.beat_floor,
        "resampling_unit": unit,
        "units": units,
        "test_set": described,
        "subjects_without_floor": floors_missing,  # naive: at the population floor instead
    }
    write_json(out_dir / "metrics.json", result)
    point_result = levels["point"]
    log.info(
        "%s fold %d: point MAE %s mmHg over %s samples of %d records",
        result["variant"],
        fold_index,
        point_result["mae"],
        point_result["n"],
        n_records,
    )
    return result
