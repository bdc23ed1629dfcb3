"""Folds written once to a split file: record, part, subject, temporal, PulseDB's subsets and
the paper's leaky protocol."""

import hashlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import random_split

from ecg2abp.atomic import atomic_path, refuse_overwriting, write_json
from ecg2abp.data.shards import Shard, lengths_from_segments, open_shard, release_pages
from ecg2abp.errors import InputError
from ecg2abp.folds.windows import windows_per_record

PROTOCOLS = ("record", "part", "subject", "temporal", "pulsedb", "paper")
SIDES = ("train", "val", "test")
SUBJECT_PROTOCOLS = ("subject", "pulsedb")  # whole subjects per side, resampled whole
ORIGINAL_RECORDS_PER_PART = 1000  # the original code reads exactly this many per part file
RECORD_KEY = 1 << 40  # record × RECORD_KEY + sample: one sortable key (records < 2**40 long)
log = logging.getLogger("ecg2abp.folds")


@dataclass(frozen=True)
class RecordInfo:
    """One record that has at least one window, with what the split needs to know of it."""

    shard: int
    index: int  # into the shard's `records`
    record_id: str
    n_windows: int
    digest: str  # of its cleaned ECG and ABP: identical signals share it


def _record_infos(shards: Sequence[Shard]) -> list[RecordInfo]:
    infos = []
    for shard_index, shard in enumerate(shards):
        segments = shard.segments
        n_windows = windows_per_record(shard)
        for record_index in np.flatnonzero(n_windows):
            digest = hashlib.sha256()
            for _, start, stop, _ in segments[segments[:, 0] == record_index]:
                digest.update(shard.ecg[start:stop].tobytes())
                digest.update(shard.abp[start:stop].tobytes())
            infos.append(
                RecordInfo(
                    shard=shard_index,
                    index=int(record_index),
                    record_id=shard.records[record_index],
                    n_windows=int(n_windows[record_index]),
                    digest=digest.hexdigest(),
                )
            )
        release_pages(shard)  # its pages read for the digests: out of resident memory
    return infos


def _merge_identical(units: list[list[int]], infos: list[RecordInfo]) -> list[list[int]]:
    """Join units (lists of record positions) that hold records with identical signals."""
    parent = list(range(len(units)))

    def root(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    first_unit_of: dict[str, int] = {}
    for unit, members in enumerate(units):
        for member in members:
            seen = first_unit_of.setdefault(infos[member].digest, unit)
            parent[root(unit)] = root(seen)
    merged: dict[int, list[int]] = {}
    for unit, members in enumerate(units):
        merged.setdefault(root(unit), []).extend(members)
    return [sorted(members) for members in merged.values()]


def _assign_folds(units: list[list[int]], weights: np.ndarray, folds: int, seed: int) -> list[int]:
    """Fold of each unit: in an order shuffled by seed, each onto the lightest fold so far."""
    load = np.zeros(folds)
    fold_of = [0] * len(units)
    for unit in np.random.default_rng(seed).permutation(len(units)):
        fold = int(np.argmin(load))
        fold_of[unit] = fold
        load[fold] += weights[unit]
    return fold_of


def _carve_validation(
    train_units: list[list[int]], weights: np.ndarray, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split training units into (train, val) unit indices, val holding about `fraction`."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_units))
    target = fraction * weights.sum()
    val, taken = [], 0.0
    for unit in order:
        if taken >= target or len(val) == len(train_units) - 1:
            break
        val.append(int(unit))
        taken += weights[unit]
    val_set = set(val)
    return [u for u in range(len(train_units)) if u not in val_set], sorted(val)


def _whole(infos: list[RecordInfo], members: list[int]) -> list[list]:
    return [[infos[m].record_id, 0, None] for m in sorted(members)]


def _group_folds(
    units: list[list[int]], infos: list[RecordInfo], split: dict, what: str
) -> list[dict]:
    units = _merge_identical(units, infos)
    folds = split["folds"]
    if folds < 2:
        raise InputError(f"split.folds: protocol {split['protocol']} needs at least 2 folds")
    if len(units) < folds:
        raise InputError(
            f"split: protocol {split['protocol']} needs at least {folds} {what} "
            f"to make {folds} folds, found {len(units)}"
        )
    weights = np.array([sum(infos[m].n_windows for m in unit) for unit in units], float)
    fold_of = _assign_folds(units, weights, folds, split["seed"])
    result = []
    for fold in range(folds):
        test = [u for u in range(len(units)) if fold_of[u] == fold]
        rest = [u for u in range(len(units)) if fold_of[u] != fold]
        if len(rest) < 2:
            raise InputError(
                f"split: protocol {split['protocol']} fold {fold} leaves a single one of the "
                f"{len(units)} {what} for training and validation; use fewer folds"
            )
        rest_units = [units[u] for u in rest]
        train, val = _carve_validation(
            rest_units, weights[rest], split["val_fraction"], split["seed"] + 1000 + fold
        )
        result.append(
            {
                "fold": fold,
                "train": _whole(infos, [m for u in train for m in rest_units[u]]),
                "val": _whole(infos, [m for u in val for m in rest_units[u]]),
                "test": _whole(infos, [m for u in test for m in units[u]]),
            }
        )
    return result


def record_blocks(infos: list[RecordInfo], block_size: int) -> list[list[int]]:
    """Runs of up to `block_size` adjacent records of one part (adjacent may share a patient)."""
    units: list[list[int]] = []
    for position, info in enumerate(infos):
        same_block = (
            units and infos[units[-1][0]].shard == info.shard and len(units[-1]) < block_size
        )
        if same_block:
            units[-1].append(position)
        else:
            units.append([position])
    return units


def record_folds(infos: list[RecordInfo], split: dict) -> list[dict]:
    """k-fold over contiguous blocks of records (adjacent records may share a patient)."""
    return _group_folds(
        record_blocks(infos, split["block_size"]), infos, split, "blocks of records"
    )


def record_subjects(shards: Sequence[Shard], infos: list[RecordInfo]) -> list[str]:
    """Each record's subject; refuses a record without one (its patient could be on any side)."""
    subjects = []
    for info in infos:
        shard = shards[info.shard]
        subject = shard.subjects[info.index] if shard.subjects is not None else ""
        if not subject:
            raise InputError(
                f"{shard.path}: record {info.record_id} names no subject; protocols "
                f"{' and '.join(SUBJECT_PROTOCOLS)} need every record's subject (PulseDB "
                "subsets, WFDB records naming their patient)"
            )
        subjects.append(subject)
    return subjects


def subject_units(subjects: list[str]) -> list[list[int]]:
    """Record positions grouped by subject, in order of first appearance."""
    units: dict[str, list[int]] = {}
    for position, subject in enumerate(subjects):
        units.setdefault(subject, []).append(position)
    return list(units.values())


def resampling_units(
    infos: list[RecordInfo], split: dict, subjects: list[str] | None = None
) -> dict:
    """What a bootstrap over test records resamples whole: {"unit": what, "of": record → unit}.

    `part`: the part file. `subject` and `pulsedb`: the subject (`subjects`, one per record).
    Every other protocol: the record protocol's blocks of adjacent records (identical records
    joined), since adjacent records may share a patient whatever the split; a unit is named by
    its first record.
    """
    if subjects is not None:
        return {
            "unit": "subject",
            "of": {info.record_id: s for info, s in zip(infos, subjects, strict=True)},
        }
    if split["protocol"] == "part":
        units = [
            [p for p, info in enumerate(infos) if info.shard == s]
            for s in sorted({info.shard for info in infos})
        ]
        what = "part file"
    else:
        units = _merge_identical(record_blocks(infos, split["block_size"]), infos)
        what = f"block of up to {split['block_size']} adjacent records of a part"
    names = {}
    for members in units:
        first = infos[min(members)].record_id
        names |= {infos[m].record_id: first for m in members}
    return {"unit": what, "of": names}


def record_units(document: dict, record_ids) -> tuple[str, dict[str, str]]:
    """The resampling unit's description and each record's unit (the record itself if unnamed)."""
    resampling = document.get("resampling_units")
    if not resampling:
        return "record (the split file names no units)", {r: r for r in record_ids}
    return resampling["unit"], {r: resampling["of"].get(r, r) for r in record_ids}


def part_folds(infos: list[RecordInfo], split: dict) -> list[dict]:
    """Whole part files held out; validation is whole part files carved from the training ones."""
    by_shard: dict[int, list[int]] = {}
    for position, info in enumerate(infos):
        by_shard.setdefault(info.shard, []).append(position)
    return _group_folds(list(by_shard.values()), infos, split, "part files")


# PulseDB's subset files (Generate_Subsets.m), one shard each: the main family, and the
# supplementary one built from VitalDB alone (subset names prefixed VitalDB_, test sets vitaldb_).
PULSEDB_FAMILIES = {"": "", "VitalDB_": "vitaldb_"}
PULSEDB_TRAIN = "Train_Subset"
PULSEDB_TESTS = (  # test set, its subset, the subset its per-subject floor is calibrated on
    ("calfree", "CalFree_Test_Subset", None),
    ("calbased", "CalBased_Test_Subset", PULSEDB_TRAIN),
    ("aami", "AAMI_Test_Subset", "AAMI_Cal_Subset"),
)
TEST_SET_MEANINGS = {
    "calfree": "calibration-free: subjects not in the training subset",
    "calbased": "calibration-based: other segments of the training subset's subjects",
    "aami": "the AAMI-standard test: subjects not in the training subset, each with calibration "
    "segments of its own",
}
PULSEDB_SUBSETS = tuple(
    family + name
    for family in PULSEDB_FAMILIES
    for name in (PULSEDB_TRAIN, "AAMI_Cal_Subset", *(subset for _, subset, _ in PULSEDB_TESTS))
)


def pulsedb_layout(names: Sequence[str]) -> tuple[str, dict[str, dict]]:
    """The training subset and every test set present: name → {"subset", "calibration"}.

    Trains on Train_Subset (VitalDB_Train_Subset when only the VitalDB family is given); the
    training family's test sets come first, and the first of all is the fold's `test` side.
    """
    unknown = [name for name in names if name not in PULSEDB_SUBSETS]
    if unknown:
        raise InputError(
            f"shard {unknown[0]}: not a PulseDB subset; protocol pulsedb reads shards named "
            f"{', '.join(PULSEDB_SUBSETS)}"
        )
    present = set(names)
    families = [f for f in PULSEDB_FAMILIES if f + PULSEDB_TRAIN in present]
    if not families:
        raise InputError(
            f"split: protocol pulsedb trains on {PULSEDB_TRAIN} (or VitalDB_{PULSEDB_TRAIN}); "
            f"the shards are {', '.join(names)}"
        )
    train = families[0] + PULSEDB_TRAIN
    tests = {}
    for family in sorted(PULSEDB_FAMILIES, key=lambda f: f + PULSEDB_TRAIN != train):
        for name, subset, calibration in PULSEDB_TESTS:
            if family + subset not in present:
                continue
            source = family + calibration if calibration else None
            if source and source not in present:
                raise InputError(
                    f"shard {family + subset}: its per-subject floor is calibrated on {source}, "
                    f"which is not among the shards; give it too (or leave {family + subset} out)"
                )
            tests[PULSEDB_FAMILIES[family] + name] = {
                "subset": family + subset,
                "calibration": source,
            }
    if not tests:
        raise InputError(f"split: protocol pulsedb found no test subset among {', '.join(names)}")
    return train, tests


def pulsedb_folds(
    shards: Sequence[Shard], infos: list[RecordInfo], subjects: list[str], split: dict
) -> tuple[list[dict], dict[str, dict]]:
    """One fold: the training subset's subjects (validation subjects carved from them) train;
    each test subset is a test set. Returns the fold and the test sets' description."""
    train_subset, tests = pulsedb_layout([shard.name for shard in shards])
    in_subset: dict[str, list[int]] = {}
    for position, info in enumerate(infos):
        in_subset.setdefault(shards[info.shard].name, []).append(position)
    training = in_subset.get(train_subset, [])
    units = [[training[i] for i in unit] for unit in subject_units([subjects[p] for p in training])]
    if len(units) < 2:
        raise InputError(
            f"split: protocol pulsedb needs at least 2 subjects in {train_subset} with a clean "
            f"window (one to train, one to validate), found {len(units)}"
        )
    weights = np.array([sum(infos[m].n_windows for m in unit) for unit in units], float)
    train, val = _carve_validation(units, weights, split["val_fraction"], split["seed"] + 1000)
    seen = {subjects[p] for p in training}
    fold: dict = {
        "fold": 0,
        "train": _whole(infos, [m for u in train for m in units[u]]),
        "val": _whole(infos, [m for u in val for m in units[u]]),
        "tests": {},
    }
    described = {}
    for rank, (name, test) in enumerate(tests.items()):
        positions = in_subset.get(test["subset"], [])
        side = _whole(infos, positions)
        if rank == 0:
            fold["test"] = side
        else:
            fold["tests"][name] = side
        tested = {subjects[p] for p in positions}
        described[name] = {
            **test,
            "side": "test" if rank == 0 else name,
            "floor": "subject" if test["calibration"] else "population",
            "subjects": len(tested),
            "subjects_in_training_subset": len(tested & seen),
        }
        if not test["calibration"] and tested & seen:
            log.warning(
                "pulsedb: %d of the %d subjects of %s are also in %s: not calibration-free",
                len(tested & seen),
                len(tested),
                test["subset"],
                train_subset,
            )
    return [fold], described


def describe_test_set(name: str) -> str:
    """One sentence: what a pulsedb test set holds and the naive floor it is scored against."""
    family, base = ("VitalDB_", name[8:]) if name.startswith("vitaldb_") else ("", name)
    found = [(subset, source) for n, subset, source in PULSEDB_TESTS if n == base]
    if not found:
        return ""
    subset, source = found[0]
    floor = f"each subject's own means in {family}{source}" if source else "the training means"
    return (
        f"{family}{subset}, {TEST_SET_MEANINGS[base]}; naive floor: {floor} (SBP, DBP, MAP "
        "of its beats, mean ABP)."
    )


def named_test_sets(protocol: str, shard_names: Sequence[str]) -> list[str]:
    """The test sets scored beside a fold's `test` side: pulsedb's after its first, else none."""
    return list(pulsedb_layout(list(shard_names))[1])[1:] if protocol == "pulsedb" else []


def test_set_key(name: str) -> tuple:
    """Sorts test sets as pulsedb lists them: calfree, calbased, aami, then VitalDB's."""
    family, base = name.startswith("vitaldb_"), name.removeprefix("vitaldb_")
    names = [n for n, _, _ in PULSEDB_TESTS]
    return (family, names.index(base) if base in names else len(names), name)


def scored_sides(document: dict, fold: int) -> dict[str, list[list]]:
    """Test set name → its side (ranges of records) in one fold; {} but for `pulsedb`."""
    sides = document["folds"][fold]
    return {
        name: sides["test"] if test["side"] == "test" else sides["tests"][name]
        for name, test in document.get("test_sets", {}).items()
    }


def _kept_source_positions(shard: Shard, record_index: int) -> np.ndarray:
    rows = shard.segments[shard.segments[:, 0] == record_index]
    return np.concatenate(
        [np.arange(source, source + stop - start) for _, start, stop, source in rows]
    )


def temporal_folds(shards: Sequence[Shard], infos: list[RecordInfo], split: dict, window: int):
    """One fold: within each record the earlier part trains, the later tests, a window apart."""
    fractions = np.asarray(split["temporal_fractions"], float)
    bounds = np.cumsum(fractions / fractions.sum())[:2]
    sides: dict[str, list[list]] = {side: [] for side in SIDES}
    for info in infos:
        kept = _kept_source_positions(shards[info.shard], info.index)
        cut1, cut2 = (int(kept[min(int(b * len(kept)), len(kept) - 1)]) for b in bounds)
        sides["train"].append([info.record_id, 0, cut1])
        sides["val"].append([info.record_id, cut1 + window, max(cut2, cut1 + window)])
        sides["test"].append([info.record_id, max(cut2, cut1 + window) + window, None])
    return [{"fold": 0, **sides}]


def natural_key(name: str) -> list:
    """part_2 before part_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _source_lengths(shard: Shard) -> np.ndarray:
    if shard.record_samples is not None:
        return np.asarray(shard.record_samples, np.int64)
    return lengths_from_segments(shard.segments, len(shard.records))


def _to_array_starts(shard: Shard, record: np.ndarray, offset: np.ndarray, window: int):
    """Array starts of windows given by (record, start in the original record); -1 where the
    window is not wholly inside one kept segment (cleaning removed some of its samples)."""
    segments = shard.segments
    key = segments[:, 0] * RECORD_KEY + segments[:, 3]  # sorted: records, then source order
    row = np.searchsorted(key, record * RECORD_KEY + offset, side="right") - 1
    found = row >= 0
    row = np.maximum(row, 0)
    segment_end = segments[row, 3] + segments[row, 2] - segments[row, 1]
    inside = found & (segments[row, 0] == record) & (offset + window <= segment_end)
    return np.where(inside, segments[row, 1] + offset - segments[row, 3], -1)


def paper_windows(
    shards: Sequence[Shard], split: dict, window: int
) -> tuple[dict[str, np.ndarray], dict]:
    """The original protocol's very draw, and a summary of it.

    As train_and_test.py: every record's N - window + 1 stride-1 windows in one global order
    (parts by number, records in file order), `torch.randperm` with a generator seeded by
    `paper_seed` keeps the first int(fraction × n), and `random_split` of those, with the same
    generator, makes train/val/test in the original's order. Windows that cleaning cut (none
    with cleaning off on finite data) are counted and left out.
    """
    bad = [s.name for s in shards if int(s.attrs["stride"]) != 1]
    if bad:
        raise InputError(f"split: protocol paper needs shards built with stride 1 ({bad[0]})")
    order = sorted(range(len(shards)), key=lambda i: natural_key(shards[i].name))
    lengths = [_source_lengths(shards[i]) for i in order]
    counts = np.concatenate([np.maximum(n - window + 1, 0) for n in lengths])
    shard_of = np.concatenate([np.full(len(n), i) for i, n in zip(order, lengths, strict=True)])
    record_of = np.concatenate([np.arange(len(n)) for n in lengths])
    total = int(counts.sum())
    generator = torch.Generator().manual_seed(split["paper_seed"])
    n_drawn = int(split["paper_fraction"] * total)
    # int32 where it holds every index: the same permutation and generator state as int64,
    # in half the memory (the one array here as long as all windows; the draw is a copy)
    dtype = torch.int32 if total < 2**31 else torch.int64
    drawn = torch.randperm(total, generator=generator, dtype=dtype)[:n_drawn].numpy().copy()
    drawn = drawn.astype(np.int64)
    fractions = [float(f) for f in split["paper_sides"]]
    if not math.isclose(sum(fractions), 1.0):
        fractions = [f / sum(fractions) for f in fractions]
    subsets = random_split(range(n_drawn), fractions, generator=generator)
    first = np.cumsum(counts) - counts
    windows, unavailable = {}, {}
    for side, subset in zip(SIDES, subsets, strict=True):
        chosen = drawn[np.asarray(subset.indices, dtype=np.int64)]
        record = np.searchsorted(first, chosen, side="right") - 1
        starts = np.full(len(chosen), -1, dtype=np.int64)
        for shard in np.unique(shard_of[record]):
            mine = shard_of[record] == shard
            offset = chosen[mine] - first[record[mine]]
            starts[mine] = _to_array_starts(shards[shard], record_of[record[mine]], offset, window)
        kept = starts >= 0
        windows[f"fold0_{side}"] = np.stack([shard_of[record][kept], starts[kept]], axis=1)
        unavailable[side] = int(np.count_nonzero(~kept))
    empty = [side for side in SIDES if not len(windows[f"fold0_{side}"])]
    if empty:
        raise InputError(
            f"split: protocol paper drew {n_drawn} of {total} windows and left the "
            f"{empty[0]} side empty; raise split.paper_fraction"
        )
    original_layout = [shards[i].name for i in order] == [
        f"part_{k}" for k in range(1, 13)
    ] and all(len(n) == ORIGINAL_RECORDS_PER_PART for n in lengths)
    if sum(unavailable.values()):
        log.warning("paper: %s drawn windows were cut by cleaning and left out", unavailable)
    if not original_layout:
        log.warning(
            "paper: not the original's 12 parts of 1,000 records; the original code would "
            "fail on fewer records per file and ignore records beyond 1,000"
        )
    info = {
        "seed": split["paper_seed"],
        "windows": total,
        "drawn": n_drawn,
        "unavailable": unavailable,
        "original_layout": bool(original_layout),
    }
    return windows, info


def refuse_duplicate_names(shard_paths: Sequence[Path]) -> None:
    """Shards are matched by file stem: two files with one stem would be confused."""
    seen: dict[str, Path] = {}
    for path in map(Path, shard_paths):
        if path.stem in seen:
            raise InputError(
                f"shards {seen[path.stem]} and {path}: two shards named {path.stem}; "
                "shard names must differ"
            )
        seen[path.stem] = path


def shard_stride(shards: Sequence[Shard], window: int) -> int:
    """The stride all shards share; refuses shards indexed for another window or strides."""
    for shard in shards:
        if int(shard.attrs["window"]) != window:
            raise InputError(
                f"{shard.path}: built for window {int(shard.attrs['window'])}, the config has "
                f"window {window}; ingest the parts again with this window"
            )
    strides = {int(shard.attrs["stride"]) for shard in shards}
    if len(strides) > 1:
        raise InputError(f"shards: built with different strides {sorted(strides)}; ingest again")
    return strides.pop()


def make_splits(shard_paths: Sequence[Path], split: dict, window: int) -> tuple[dict, dict]:
    """The split document and, for `paper`, the sampled windows (else an empty dict)."""
    refuse_duplicate_names(shard_paths)
    shards = [open_shard(path, mapped=True) for path in shard_paths]
    stride = shard_stride(shards, window)
    infos = _record_infos(shards)
    if not infos:
        raise InputError("split: no record has a clean window; nothing to split")
    protocol = split["protocol"]
    windows: dict[str, np.ndarray] = {}
    subjects = record_subjects(shards, infos) if protocol in SUBJECT_PROTOCOLS else None
    test_sets: dict[str, dict] = {}
    if protocol == "record":
        folds = record_folds(infos, split)
    elif protocol == "part":
        folds = part_folds(infos, split)
    elif protocol == "subject":
        folds = _group_folds(subject_units(subjects), infos, split, "subjects")
    elif protocol == "pulsedb":
        folds, test_sets = pulsedb_folds(shards, infos, subjects, split)
    elif protocol == "temporal":
        folds = temporal_folds(shards, infos, split, window)
    else:
        windows, draw = paper_windows(shards, split, window)
        everything = _whole(infos, list(range(len(infos))))
        folds = [{"fold": 0, "train": everything, "val": everything, "test": everything}]
    document = {
        "protocol": protocol,
        "seed": split["seed"],
        "n_folds": len(folds),
        "leaky": protocol == "paper",
        "window": window,
        "stride": stride,
        "shards": [shard.name for shard in shards],
        "fingerprints": [shard.fingerprint for shard in shards],
        "folds": folds,
        "resampling_units": resampling_units(infos, split, subjects),
    }
    if test_sets:
        document["test_sets"] = test_sets
    if protocol == "paper":
        document["seed"], document["paper_draw"] = draw["seed"], draw
    return document, windows


def write_splits(path: Path, document: dict, windows: dict[str, np.ndarray]) -> None:
    """The split JSON and, where there are sampled windows, the .windows.npz beside it."""
    if windows:
        with atomic_path(windows_path(path)) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **windows)
    write_json(path, document)


def windows_path(split_path: Path) -> Path:
    return split_path.with_name(split_path.stem + ".windows.npz")


def split_to_file(shard_paths: Sequence[Path], out: Path, config: dict) -> dict:
    """Make the configured protocol's folds from the shards and write them to `out`."""
    refuse_overwriting([out, windows_path(Path(out))], shard_paths)
    document, windows = make_splits(shard_paths, config["split"], config["window"])
    write_splits(out, document, windows)
    return {"protocol": document["protocol"], "n_folds": document["n_folds"]}
