"""GPU timing as trtexec does it, for the TensorRT and PyTorch CUDA runners.

- I/O buffers are bound once per input shape: pinned host buffers and device buffers, reused by every
  iteration (the caller fills the pinned input only when it is given new data).
- Each iteration enqueues host-to-device copies, the compute and device-to-host copies on the runner's
  own stream, between four CUDA events recorded on that stream, then waits on the last event: copies and
  compute are ordered by the stream, and nothing runs on the default stream.
- H2D, compute, D2H and the host's end-to-end time (enqueue to completion) are kept for every iteration.
  The latency a runner reports to ``timing.measure`` is the compute time (trtexec's "GPU Compute Time");
  ``split()`` gives the rest, and their sum (trtexec's "Host Latency").
- One difference from trtexec: an iteration is waited for before the next is enqueued (trtexec enqueues
  one batch ahead), so these are latencies; throughput with overlap comes from ``multi_stream_throughput``.
- Throughput over N streams (trtexec's --infStreams): N independent I/O sets (and, for TensorRT, N
  execution contexts), each enqueued on its own stream, all waited on per round.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

__all__ = ["SplitTimer", "split_summary", "multi_stream_throughput"]


class SplitTimer:
    """Four events on one stream around H2D, compute and D2H; every iteration's times kept."""

    def __init__(self, torch: Any, stream: Any) -> None:
        self.torch, self.stream = torch, stream
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self.reset()

    def reset(self) -> None:
        self.h2d_ms: list[float] = []
        self.compute_ms: list[float] = []
        self.d2h_ms: list[float] = []
        self.end_to_end_ms: list[float] = []

    def run(self, h2d: Callable[[], None], compute: Callable[[], None], d2h: Callable[[], None]) -> float:
        """One iteration; returns its compute time in seconds."""
        e0, e1, e2, e3 = self.events
        t0 = time.perf_counter()
        with self.torch.cuda.stream(self.stream):
            e0.record(self.stream)
            h2d()
            e1.record(self.stream)
            compute()
            e2.record(self.stream)
            d2h()
            e3.record(self.stream)
        e3.synchronize()
        self.end_to_end_ms.append((time.perf_counter() - t0) * 1000)
        self.h2d_ms.append(e0.elapsed_time(e1))
        self.compute_ms.append(e1.elapsed_time(e2))
        self.d2h_ms.append(e2.elapsed_time(e3))
        return self.compute_ms[-1] / 1000.0

    def split(self) -> dict[str, Any]:
        return split_summary(self.h2d_ms, self.compute_ms, self.d2h_ms, self.end_to_end_ms)


def split_summary(h2d: list[float], compute: list[float], d2h: list[float], e2e: list[float]) -> dict[str, Any]:
    """Median and mean of each part over every iteration, and the end-to-end percentiles."""

    def stats(xs: list[float]) -> dict[str, float] | None:
        if not xs:
            return None
        a = np.sort(np.asarray(xs))
        n = len(a)
        return {
            "median": float(np.median(a)),
            "mean": float(a.mean()),
            "p99": float(a[max(0, n - 1 - int(0.01 * n))]),
            "max": float(a[-1]),
        }

    return {
        "iterations": len(e2e),
        "h2d_ms": stats(h2d),
        "compute_ms": stats(compute),
        "d2h_ms": stats(d2h),
        "host_latency_ms": stats([a + b + c for a, b, c in zip(h2d, compute, d2h)]),  # trtexec's Host Latency
        "end_to_end_ms": stats(e2e),
        "method": "CUDA events on the runner's stream around H2D, compute, D2H; host end-to-end every iteration",
    }


def multi_stream_throughput(
    torch: Any, lanes: list[tuple[Any, Callable[[], None]]], batch: int, seconds: float = 2.0, warmup_s: float = 0.3
) -> dict[str, Any]:
    """``lanes``: (stream, enqueue one H2D + compute + D2H on it). Rounds of one enqueue per lane, all
    streams waited on per round, for ``seconds`` after a warm-up; images per second over the wall time."""

    def round_() -> None:
        for stream, enqueue in lanes:
            with torch.cuda.stream(stream):
                enqueue()
        for stream, _ in lanes:
            stream.synchronize()

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup_s:
        round_()
    rounds, t0 = 0, time.perf_counter()
    while rounds < 3 or time.perf_counter() - t0 < seconds:
        round_()
        rounds += 1
    wall = time.perf_counter() - t0
    return {"streams": len(lanes), "batch": batch, "rounds": rounds, "images_per_s": rounds * len(lanes) * batch / wall}
