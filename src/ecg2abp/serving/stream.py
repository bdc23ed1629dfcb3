"""`ecg2abp stream`: ECG samples in as they arrive (stdin or a 127.0.0.1 TCP port), ABP out.

One ECG value per line at the model's rate; one CSV line per sample out (sample, time, ABP,
spread, flag) as soon as it is final: its window is complete and the ECG rules can no longer
flag it (a fixed `lookahead` of samples later). The rows equal `predict`'s on the same
recording except that ECG saturation is judged against the extremes seen so far, not the whole
record's. At the end (end of input, SIGINT or SIGTERM) a JSON summary with the processing
latency (median, p99) goes to stderr; falling behind real time is reported as it happens.
"""

import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import numpy as np

from ecg2abp.errors import InputError
from ecg2abp.serving.ensemble import ServingModel
from ecg2abp.serving.pipeline import FLAGS, CausalPipeline, Rows

READ_BYTES = 1 << 16
HOST = "127.0.0.1"
RECORD_ID = "stream"
WARN_EVERY_S = 10.0
LATENCY_BINS = np.logspace(-6, 2, 801)  # 1 µs … 100 s, 1.2 % wide: quantiles without a list


class _Stop(Exception):
    """Raised by the signal handler to leave a blocking read."""


class _Signals:
    """SIGINT/SIGTERM end the stream: at once while waiting for input, else after the push."""

    def __init__(self) -> None:
        self.waiting = False
        self.received = False

    def handle(self, signum, frame) -> None:
        self.received = True
        if self.waiting:
            raise _Stop

    @contextmanager
    def installed(self) -> Iterator["_Signals"]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def read(self, read: Callable[[int], bytes], n: int) -> bytes:
        if self.received:
            raise _Stop
        self.waiting = True
        try:
            return read(n)
        finally:
            self.waiting = False


class Latency:
    """Histogram of per-sample latencies (bounded memory) with quantiles."""

    def __init__(self) -> None:
        self.counts = np.zeros(len(LATENCY_BINS) + 1, np.int64)

    def add(self, seconds: float, n: int) -> None:
        self.counts[np.searchsorted(LATENCY_BINS, seconds)] += n

    def quantile_ms(self, q: float) -> float | None:
        total = int(self.counts.sum())
        if total == 0:
            return None
        index = int(np.searchsorted(np.cumsum(self.counts), math.ceil(q * total)))
        return round(float(LATENCY_BINS[min(index, len(LATENCY_BINS) - 1)]) * 1e3, 3)


def _parse(lines: list[bytes], first_line: int, where: str) -> np.ndarray:
    values = np.empty(len(lines))
    for i, line in enumerate(lines):
        text = line.strip()
        try:
            values[i] = float(text) if text else math.nan
        except ValueError:
            shown = text[:40].decode(errors="replace")
            raise InputError(f"{where} line {first_line + i}: not a number: {shown!r}") from None
    return values


def _write_rows(out: TextIO, rows: Rows, fs: float) -> None:
    spread = rows.spread
    for i in range(len(rows)):
        fields = [str(int(rows.sample[i])), f"{rows.sample[i] / fs:.3f}", f"{rows.abp[i]:.4f}"]
        if spread is not None:
            fields.append(f"{spread[i]:.4f}")
        fields.append(FLAGS[rows.flag[i]])
        out.write(",".join(fields) + "\n")
    out.flush()


def run_stream(
    model: ServingModel,
    read: Callable[[int], bytes],
    out: TextIO,
    *,
    where: str = "stdin",
    log: TextIO = sys.stderr,
) -> dict:
    """Predict from `read` (returns b"" at end) until end of input or a signal; summary dict."""
    pipeline = CausalPipeline(model, RECORD_ID, batch_size=1024)
    header = ["sample", "time", "abp_pred", *(["abp_spread"] if model.has_spread else []), "flag"]
    out.write(",".join(header) + "\n")
    latency, tail, n_lines, rows_out, behind = Latency(), b"", 0, 0, 0
    last_warning = -math.inf
    stopped_by = "end of input"
    with _Signals().installed() as signals:
        try:
            while block := signals.read(read, READ_BYTES):
                arrived = time.perf_counter()
                lines = (tail + block).split(b"\n")
                tail = lines.pop()
                values = _parse(lines, n_lines + 1, where)
                n_lines += len(values)
                rows = pipeline.push(values)
                _write_rows(out, rows, model.fs)
                took = time.perf_counter() - arrived
                latency.add(took, len(rows))
                rows_out += len(rows)
                if len(values) and took > len(values) / model.fs:
                    behind += 1
                    if arrived - last_warning > WARN_EVERY_S:
                        last_warning = arrived
                        print(
                            f"ecg2abp stream: behind real time ({model.fs:g} Hz): "
                            f"{took * 1e3:.1f} ms for {len(values)} samples",
                            file=log,
                        )
        except _Stop:
            stopped_by = "signal"
        with _ignoring_signals():
            if tail.strip():
                values = _parse([tail], n_lines + 1, where)
                n_lines += 1
                _write_rows(out, pipeline.push(values), model.fs)
            final = pipeline.finish()
            _write_rows(out, final, model.fs)
            rows_out += len(final)
    summary = {
        "samples_in": n_lines,
        "rows_out": rows_out,
        "stopped_by": stopped_by,
        "lookahead_samples": pipeline.lookahead,
        "latency_ms_median": latency.quantile_ms(0.5),
        "latency_ms_p99": latency.quantile_ms(0.99),
        "pushes_behind_real_time": behind,
    }
    print(json.dumps(summary), file=log)
    return summary


@contextmanager
def _ignoring_signals() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stream_stdin(model: ServingModel, out: TextIO) -> dict:
    fd = sys.stdin.fileno()
    return run_stream(model, lambda n: os.read(fd, n), out)


def stream_tcp(model: ServingModel, port: int, out: TextIO, log: TextIO = sys.stderr) -> dict:
    """Listen on 127.0.0.1:`port` (0: any free port), serve one connection until it closes."""
    with socket.create_server((HOST, port)) as server:
        print(json.dumps({"listening": f"{HOST}:{server.getsockname()[1]}"}), file=log, flush=True)
        with _Signals().installed() as signals:
            try:
                connection, _ = signals.read(lambda _: server.accept(), 0)
            except _Stop:
                return {"samples_in": 0, "rows_out": 0, "stopped_by": "signal"}
        with connection:
            return run_stream(model, connection.recv, out, where=f"{HOST}:{port}", log=log)
