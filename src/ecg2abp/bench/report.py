"""Time and memory of the report's streaming pass over one variant's stored predictions."""

import json
import resource
import time
from pathlib import Path

from ecg2abp.errors import InputError


def _anonymous_mb() -> float:
    """Resident anonymous memory (not file pages of memory-mapped shards), MiB; 0 off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_report_stream(results: Path, variant: str) -> dict:
    """One stream_variant pass over results/{experiment}'s predictions of `variant`, all folds."""
    from ecg2abp.report.streaming import stream_variant

    results = Path(results)
    metric_files = sorted((results / "eval" / variant).glob("fold_*/seed_*/metrics.json"))
    if not metric_files:
        raise InputError(f"{results}: no eval/{variant}/fold_*/seed_*/metrics.json")
    protocol = json.loads(metric_files[0].read_text())["protocol"]
    before = _anonymous_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    stream = stream_variant(
        variant,
        [path.parent / "predictions.parquet" for path in metric_files],
        metric_files,
        results / "splits" / f"{protocol}.json",
        sorted((results / "shards").glob("*.h5")),
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    samples = stream.levels["point"].metrics.error.n
    return {
        "benchmark": "report_stream",
        "variant": variant,
        "folds": len(metric_files),
        "samples": samples,
        "beats": stream.levels["sbp"].metrics.error.n,
        "records": len(stream.records()),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "samples_per_cpu_s": round(samples / cpu) if cpu > 0 else None,
        "anon_mb_before": round(before, 1),
        "anon_mb_after": round(_anonymous_mb(), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
