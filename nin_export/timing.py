"""Timing, trtexec-style: warm up by time, then run while fewer than N iterations or T ms have passed."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np

from .runners.base import Runner

__all__ = ["TimingOptions", "LatencyStats", "percentile", "measure"]


@dataclass(frozen=True)
class TimingOptions:
    warmup_ms: float = 200.0
    min_iters: int = 10
    min_ms: float = 3000.0


@dataclass
class LatencyStats:
    """Milliseconds per inference (one batch = one query); throughput in queries/s and images/s."""

    batch: int
    iterations: int
    total_ms: float
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    qps: float
    images_per_s: float
    cv: float  # coefficient of variation of the latencies

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_ms: np.ndarray, p: float) -> float:
    """trtexec's percentile: sorted[n - 1 - int((1 - p/100) * n)]."""
    n = len(sorted_ms)
    return float(sorted_ms[max(0, n - 1 - int((1 - p / 100) * n))])


def measure(
    runner: Runner,
    feed: Mapping[str, np.ndarray],
    options: TimingOptions = TimingOptions(),
    should_stop: Callable[[], bool] | None = None,
) -> LatencyStats:
    """Time ``runner.time_infer(feed)`` (the backend's best clock) after a warm-up by time."""
    t0 = time.perf_counter()
    while (time.perf_counter() - t0) * 1000 < options.warmup_ms:
        runner.time_infer(feed)
    reset = getattr(runner, "reset_split", None)  # GPU runners keep per-iteration splits: the timed ones only
    if reset is not None:
        reset()
    lat: list[float] = []
    t0 = time.perf_counter()
    while len(lat) < options.min_iters or (time.perf_counter() - t0) * 1000 < options.min_ms:
        lat.append(runner.time_infer(feed) * 1000.0)
        if should_stop is not None and should_stop():
            break
    total = (time.perf_counter() - t0) * 1000
    a = np.sort(np.asarray(lat))
    batch = int(next(iter(feed.values())).shape[0])
    mean = float(a.mean())
    return LatencyStats(
        batch,
        len(a),
        total,
        float(a[0]),
        mean,
        float(np.median(a)),
        percentile(a, 90),
        percentile(a, 95),
        percentile(a, 99),
        float(a[-1]),
        1000.0 / mean,
        batch * 1000.0 / mean,
        float(a.std() / mean),
    )
