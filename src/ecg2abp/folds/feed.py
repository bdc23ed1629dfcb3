"""The window feed: shuffled, normalised (ECG window, ABP at its last sample) batches.

Where the batches are made (`placement`): `host` gathers windows with numpy and hands CPU
tensors over; `resident` holds the fold's signals as tensors on the training device and
gathers and normalises there, so no batch crosses from the host (on a GPU: one copy of the
signals per job, then only each epoch's order); `pinned` gathers on the host into page-locked
memory and copies asynchronously, for signals too large to keep on the GPU.
"""

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.data.shards import Shard, windows_per_segment
from ecg2abp.errors import InputError
from ecg2abp.folds.normalisation import NormStats
from ecg2abp.folds.windows import WindowSet

RESIDENT_SHARE = 0.25  # the most of a GPU's free memory the signals may take


def fits_on_device(needed_bytes: int, free_bytes: int) -> bool:
    """Whether signals of `needed_bytes` leave the GPU room for the model and its activations."""
    return needed_bytes <= RESIDENT_SHARE * free_bytes


def choose_placement(device: torch.device, needed_bytes: int, resident: bool | None) -> str:
    """`resident: None` decides by the device: the host's own arrays on the CPU; on a GPU,
    resident when the signals fit (`fits_on_device`), else pinned host memory."""
    if resident is True:
        return "resident"
    if device.type == "cpu":
        return "host"
    if resident is False:
        return "pinned"
    free, _ = torch.cuda.mem_get_info(device)
    return "resident" if fits_on_device(needed_bytes, free) else "pinned"


class ResidentSignals:
    """A fold's ECG and ABP, shards end to end, as tensors on one device; windows gathered there.

    Normalisation applies NormStats' float32 formula with float32 operands, so on the CPU the
    batches are bit for bit those of the host path.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        shard_of: np.ndarray,
        starts: np.ndarray,
        *,
        window: int,
        stats: NormStats,
        device: torch.device,
    ) -> None:
        offsets = np.cumsum([0, *(len(shard.ecg) for shard in shards)])[:-1].astype(np.int64)
        self.window = window
        self.ecg = _on(np.concatenate([np.asarray(s.ecg, np.float32) for s in shards]), device)
        self.abp = _on(np.concatenate([np.asarray(s.abp, np.float32) for s in shards]), device)
        self.starts = _on(offsets[shard_of] + starts, device)
        self.rows = self.ecg.unfold(0, window, 1) if len(self.ecg) >= window else None
        self.ecg_center, self.ecg_inverse, self.abp_center, self.abp_inverse = (
            _on(np.array([value], np.float32), device)
            for value in (
                stats.ecg_center,
                1.0 / stats.ecg_scale,
                stats.abp_center,
                1.0 / stats.abp_scale,
            )
        )

    def batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ECG [n, 1, window] and ABP [n] of window positions (a device tensor)."""
        starts = self.starts[positions]
        x = (self.rows[starts] - self.ecg_center) * self.ecg_inverse
        y = (self.abp[starts + self.window - 1] - self.abp_center) * self.abp_inverse
        return x.unsqueeze(1), y


def _on(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def side_ranges(side: Sequence[Sequence]) -> dict[str, tuple[int, float]]:
    """Record id → (source start, source stop) of one split side; one range per record."""
    ranges: dict[str, tuple[int, float]] = {}
    for record_id, start, stop in side:
        if record_id in ranges:
            raise InputError(f"split: record {record_id} appears twice on one side")
        ranges[record_id] = (int(start), float("inf") if stop is None else float(stop))
    return ranges


def select_windows(shard: Shard, ranges: dict[str, tuple[int, float]], window: int) -> WindowSet:
    """Shard window starts whose every sample lies inside its record's range on this side,
    from the shard's segments (its window index is never read)."""
    lower = np.full(len(shard.records), np.inf)
    upper = np.full(len(shard.records), -np.inf)
    for index, record_id in enumerate(shard.records):
        if record_id in ranges:
            lower[index], upper[index] = ranges[record_id]
    stride = int(shard.attrs["stride"])
    segments = shard.segments.astype(np.int64)
    record, start, stop, source = segments.T
    n = windows_per_segment(stop - start, int(shard.attrs["window"]), stride)
    # a record not on this side has lower +inf and upper -inf: no window
    k_first = np.clip(np.ceil((lower[record] - source) / stride), 0, n).astype(np.int64)
    k_last = np.clip(np.floor((upper[record] - window - source) / stride), -1, n - 1)
    k_last = k_last.astype(np.int64)
    count = np.maximum(k_last - k_first + 1, 0)
    keep = count > 0
    return WindowSet(start[keep] + k_first[keep] * stride, count[keep], stride)


def _window_rows(signal: np.ndarray, window: int) -> np.ndarray:
    """Every `window`-long slice of `signal` as the rows of a view (none if it is shorter)."""
    if len(signal) < window:
        return np.zeros((0, window), dtype=signal.dtype)
    return sliding_window_view(signal, window)


class WindowFeed:
    """Batches gathered at once from in-memory or memory-mapped shard arrays, never per window."""

    def __init__(
        self,
        shards: Sequence[Shard],
        starts: Sequence[np.ndarray],
        *,
        window: int,
        stats: NormStats,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        max_windows: int | None = None,
        order: np.ndarray | None = None,
        device: torch.device | str = "cpu",
        resident: bool | None = None,
    ) -> None:
        self.window = window
        self.stats = stats
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.max_windows = max_windows
        self._sets = [WindowSet.of(s) for s in starts]
        self._offsets = np.cumsum([0, *(len(s) for s in self._sets)], dtype=np.int64)
        self._ecg = [_window_rows(shard.ecg, window) for shard in shards]
        self._abp = [shard.abp for shard in shards]
        self._single = len(shards) == 1
        self.n_windows = int(self._offsets[-1])
        # unshuffled order: positions into the starts laid end to end (None: as laid)
        self._order = None if order is None else np.asarray(order, np.int64)
        self.device = torch.device(device)
        needed = sum(2 * 4 * len(shard.ecg) for shard in shards)  # ECG and ABP, float32
        self.placement = choose_placement(self.device, needed, resident)
        self._resident = None
        if self.placement == "resident":
            shard_of, positions = self.locate(np.arange(self.n_windows))
            self._resident = ResidentSignals(
                shards,
                shard_of,
                self.starts(shard_of, positions),
                window=window,
                stats=stats,
                device=self.device,
            )

    def windows_per_epoch(self) -> int:
        if self.max_windows is None:
            return self.n_windows
        return min(self.n_windows, self.max_windows)

    def __len__(self) -> int:
        return -(-self.windows_per_epoch() // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Window positions of one epoch, deterministic in (seed, epoch)."""
        if not self.shuffle:
            if self._order is None:
                return np.arange(self.windows_per_epoch())
            return self._order[: self.windows_per_epoch()]
        rng = np.random.default_rng([self.seed, epoch])
        if self.windows_per_epoch() < self.n_windows:
            return rng.choice(self.n_windows, size=self.windows_per_epoch(), replace=False)
        return rng.permutation(self.n_windows)

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shard of each window position, and the position within that shard's starts."""
        positions = np.asarray(positions, np.int64)
        shard_of = np.searchsorted(self._offsets, positions, side="right") - 1
        return shard_of, positions - self._offsets[shard_of]

    def starts(self, shard_of: np.ndarray, within: np.ndarray) -> np.ndarray:
        """Window starts (into each shard's arrays) of positions within their shards."""
        starts = np.empty(len(within), dtype=np.int64)
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            starts[mask] = self._sets[shard].at(within[mask])
        return starts

    def gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (ECG windows [n, window], ABP targets [n]) for window positions, in mmHg/mV."""
        shard_of, within = self.locate(positions)
        starts = self.starts(shard_of, within)
        if self._single:
            return self._ecg[0][starts], self._abp[0][starts + self.window - 1]
        ecg = np.empty((len(positions), self.window), dtype=np.float32)
        abp = np.empty(len(positions), dtype=np.float32)
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            ecg[mask] = self._ecg[shard][starts[mask]]
            abp[mask] = self._abp[shard][starts[mask] + self.window - 1]
        return ecg, abp

    def normalise(self, ecg: np.ndarray, abp: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float32 tensors: ECG [n, 1, window], ABP [n]."""
        x, y = self.stats.scale_ecg(ecg), self.stats.scale_abp(abp)
        return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)

    def batches(
        self, epoch: int, start_batch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, from `start_batch` on (to resume mid-epoch), on the device."""
        order = self.epoch_order(epoch)
        firsts = range(start_batch * self.batch_size, len(order), self.batch_size)
        if self._resident is not None:
            on_device = torch.from_numpy(order.astype(np.int64)).to(self.device)
            for first in firsts:
                yield self._resident.batch(on_device[first : first + self.batch_size])
            return
        for first in firsts:
            x, y = self.normalise(*self.gather(order[first : first + self.batch_size]))
            if self.placement == "pinned":
                x = x.pin_memory().to(self.device, non_blocking=True)
                y = y.pin_memory().to(self.device, non_blocking=True)
            yield x, y
