"""Per-transaction latencies from pgbench's transaction log (-l), percentiles and CDF points.

pgbench 15 writes one line per transaction (or per sampled transaction with --sampling-rate):
  client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]
`time` is the latency in microseconds (with -R it is measured from the scheduled start, so it
includes the schedule lag, as pgbench's own "latency average" does), or "failed"/"skipped".
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass
class LatencyLog:
    latencies_ms: list[float]  # completed transactions, sorted
    failed: int = 0
    skipped: int = 0


def read_logs(prefix: str, remove: bool = True) -> LatencyLog:
    """Reads every `prefix.*` file pgbench wrote (one per thread with -j > 1)."""
    lat: list[float] = []
    failed = skipped = 0
    for path in sorted(glob.glob(glob.escape(prefix) + ".*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                t = parts[2]
                if t == "failed":
                    failed += 1
                elif t == "skipped":
                    skipped += 1
                else:
                    try:
                        lat.append(int(t) / 1000.0)
                    except ValueError:
                        continue
        if remove:
            os.unlink(path)
    lat.sort()
    return LatencyLog(lat, failed, skipped)


def percentile(sorted_vals: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in [0, 100]) of sorted values; NaN if empty."""
    if not sorted_vals:
        return math.nan
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def summary(sorted_vals: Sequence[float]) -> dict:
    if not sorted_vals:
        return {"n": 0}
    return {"n": len(sorted_vals), "mean": sum(sorted_vals) / len(sorted_vals),
            "p50": percentile(sorted_vals, 50), "p90": percentile(sorted_vals, 90),
            "p99": percentile(sorted_vals, 99), "p999": percentile(sorted_vals, 99.9),
            "max": sorted_vals[-1]}


def cdf_points(sorted_vals: Sequence[float], points: int = 400) -> list[tuple[float, float]]:
    """(latency_ms, fraction <= it) at `points` quantiles, denser in the tail (for a log-scale
    plot of 1 - F): quantiles 1 - 10^(-4 x) for x in [0, 1]."""
    n = len(sorted_vals)
    if n == 0:
        return []
    out = []
    for i in range(points + 1):
        q = 1 - 10 ** (-4 * i / points)
        k = max(0, min(n - 1, math.ceil(q * n) - 1))
        out.append((sorted_vals[k], (k + 1) / n))
    return out


def merge(runs: Iterable[Sequence[float]]) -> list[float]:
    out: list[float] = []
    for r in runs:
        out.extend(r)
    out.sort()
    return out


def read_timed_logs(prefix: str, remove: bool = True) -> list[tuple[float, float]]:
    """(completion time as Unix seconds, latency_ms) of every completed transaction in the
    `prefix.*` logs, sorted by time (for latency over time)."""
    out: list[tuple[float, float]] = []
    for path in sorted(glob.glob(glob.escape(prefix) + ".*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                try:
                    out.append((int(parts[4]) + int(parts[5]) / 1e6, int(parts[2]) / 1000.0))
                except ValueError:
                    continue  # failed / skipped
        if remove:
            os.unlink(path)
    out.sort()
    return out


def over_time(samples: Sequence[tuple[float, float]], t0: float, bin_s: float = 0.5) -> list[dict]:
    """Per time bin (seconds since t0): transactions, p50 and p99 latency."""
    bins: dict[int, list[float]] = {}
    for t, lat in samples:
        bins.setdefault(int((t - t0) // bin_s), []).append(lat)
    out = []
    for k in sorted(bins):
        v = sorted(bins[k])
        out.append({"t": round(k * bin_s, 3), "n": len(v), "p50": percentile(v, 50),
                    "p99": percentile(v, 99)})
    return out
