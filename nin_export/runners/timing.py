"""Timing, trtexec-style: warm up by time, then run while fewer than N iterations or T ms have passed.

What each figure means, with trtexec's names (``sampleReporting.cpp``):

- ``median``, ``p99`` ... : the per-inference latency on the runner's clock. ``clock`` says which: ``host``
  (host to host around one inference: CPU runners, onnxruntime's GPU providers) or ``cuda-events`` (the GPU
  compute time between CUDA events on the runner's stream: trtexec's "GPU Compute Time").
- ``images_per_s`` / ``qps``: batches (queries) and images over the timed loop's total host wall time
  (trtexec's "Throughput" over "Total Host Walltime"), the same definition on every runtime.
- ``compute_images_per_s``: batch / mean latency, labelled as such; above ``images_per_s`` when the host,
  copies or launches leave the device idle between inferences.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .base import Runner

__all__ = ["TimingOptions", "LatencyStats", "percentile", "measure", "latency_stats"]


@dataclass(frozen=True)
class TimingOptions:
    warmup_ms: float = 200.0
    min_iters: int = 10
    min_ms: float = 3000.0


@dataclass
class LatencyStats:
    """Milliseconds per inference (one batch = one query) on ``clock``; throughput over the loop's wall time."""

    batch: int
    iterations: int
    total_ms: float  # the timed loop's host wall time (trtexec's Total Host Walltime)
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    qps: float  # queries per second of wall time
    images_per_s: float  # images per second of wall time (trtexec's Throughput x batch)
    cv: float  # coefficient of variation of the latencies
    clock: str = "host"  # "host" or "cuda-events" (GPU compute time)
    compute_images_per_s: float | None = None  # batch / mean latency: the clock's own rate, not wall time

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_ms: np.ndarray, p: float) -> float:
    """trtexec's percentile: sorted[n - 1 - int((1 - p/100) * n)]."""
    n = len(sorted_ms)
    return float(sorted_ms[max(0, n - 1 - int((1 - p / 100) * n))])


def latency_stats(lat_ms: list[float], batch: int, wall_ms: float, clock: str = "host") -> LatencyStats:
    """Statistics of per-inference latencies, and throughput over ``wall_ms`` of host wall time."""
    a = np.sort(np.asarray(lat_ms, dtype=float))
    mean = float(a.mean())
    wall_s = wall_ms / 1000.0
    return LatencyStats(
        batch,
        len(a),
        wall_ms,
        float(a[0]),
        mean,
        float(np.median(a)),
        percentile(a, 90),
        percentile(a, 95),
        percentile(a, 99),
        float(a[-1]),
        len(a) / wall_s if wall_s > 0 else float("inf"),
        batch * len(a) / wall_s if wall_s > 0 else float("inf"),
        float(a.std() / mean) if mean > 0 else 0.0,
        clock,
        batch * 1000.0 / mean if mean > 0 else None,
    )


def _record(lat: list[float], seconds: float | None) -> None:
    if seconds is not None:
        lat.append(seconds * 1000.0)


def measure(
    runner: Runner,
    feed: Mapping[str, np.ndarray],
    options: TimingOptions = TimingOptions(),
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    window: AbstractContextManager[Any] | None = None,
) -> LatencyStats:
    """Time ``runner.time_infer(feed)`` (the backend's best clock) after a warm-up by time.

    A pipelined runner (GPU runners keep one iteration in flight, as trtexec does) returns None from
    ``time_infer`` until an earlier iteration completes and hands the rest over in ``drain_timing()``; the
    wall time ends when the last timed iteration has completed. ``window`` (a power sampler, say) is entered
    just around the timed loop, warm-up excluded."""
    t0 = clock()
    while (clock() - t0) * 1000 < options.warmup_ms:
        runner.time_infer(feed)
    runner.drain_timing()
    runner.reset_split()  # GPU runners keep per-iteration splits: the timed ones only
    lat: list[float] = []
    started = 0
    with window if window is not None else nullcontext():
        t0 = clock()
        while started < options.min_iters or (clock() - t0) * 1000 < options.min_ms:
            _record(lat, runner.time_infer(feed))
            started += 1
            if should_stop is not None and should_stop():
                break
        for s in runner.drain_timing():
            _record(lat, s)
        wall_ms = (clock() - t0) * 1000
    batch = int(next(iter(feed.values())).shape[0])
    return latency_stats(lat, batch, wall_ms, runner.clock)
