"""GPU timing as trtexec does it (``sampleInference.cpp``, ``sampleReporting.cpp``), for the TensorRT and
PyTorch CUDA runners.

- I/O buffers are bound once per input shape: pinned host buffers and device buffers, reused by every
  iteration (the caller fills the pinned input only when it is given new data).
- Each iteration enqueues host-to-device copies, the compute and device-to-host copies on the runner's
  own stream, between four CUDA events recorded on that stream. The host time spent enqueuing is kept
  (trtexec's "Enqueue Time").
- Two iterations are in flight (trtexec's ``mDepth{2}``): iteration i+1 is enqueued before the host waits
  for iteration i. So the compute-start event of i+1 fires when the stream reaches it, with its kernels
  already queued behind it, and compute events time the GPU, not the host's launch. (Waiting for each
  iteration before enqueuing the next leaves the stream idle when the event fires: e1 -> e2 then measures
  the larger of the GPU work and the launch time.)
- H2D, compute, D2H and enqueue are kept for every iteration; the latency a runner reports to
  ``timing.measure`` is the compute time ("GPU Compute Time"); ``split()`` gives the rest, their sum
  ("Latency", host latency), and trtexec's warnings: enqueue-bound (median enqueue > 0.8 x median compute),
  transfer-bound (median H2D or D2H >= median compute) and unstable compute (coefficient of variation > 2.5%).
- CUDA graphs: ``capture_or_fallback`` captures the compute once after one plain enqueue, with thread-local
  capture mode; when capture is refused or fails, the runner goes on with plain enqueues and records why.
- Throughput over N streams (trtexec's --infStreams): N independent I/O sets (and, for TensorRT, N
  execution contexts), each enqueued on its own stream, all waited on per round.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import NinExportError, first_line

__all__ = ["SplitTimer", "split_summary", "timing_warnings", "capture_or_fallback", "multi_stream_throughput", "DEPTH"]

DEPTH = 2  # iterations in flight, as trtexec
ENQUEUE_BOUND = 0.8  # trtexec: median enqueue time above this fraction of median GPU compute time
UNSTABLE_CV = 0.025  # coefficient of variation of GPU compute time above which clocks should be locked


class SplitTimer:
    """Four events on one stream around H2D, compute and D2H; ``DEPTH`` iterations in flight; every
    iteration's times kept."""

    def __init__(self, torch: Any, stream: Any, depth: int = DEPTH) -> None:
        self.torch, self.stream, self.depth = torch, stream, depth
        self._free = deque([torch.cuda.Event(enable_timing=True) for _ in range(4)] for _ in range(depth))
        self._pending: deque[tuple[list[Any], float]] = deque()
        self.reset()

    def reset(self) -> None:
        self.h2d_ms: list[float] = []
        self.compute_ms: list[float] = []
        self.d2h_ms: list[float] = []
        self.enqueue_ms: list[float] = []

    def run(self, h2d: Callable[[], None], compute: Callable[[], None], d2h: Callable[[], None]) -> float | None:
        """Enqueue one iteration; once ``depth`` are in flight, wait for the oldest. Returns the compute time
        (seconds) of the iteration that completed, or None when none has yet."""
        done = self._collect(self._pending.popleft()) if len(self._pending) >= self.depth else None
        events = self._free.popleft()
        e0, e1, e2, e3 = events
        with self.torch.cuda.stream(self.stream):
            e0.record(self.stream)
            h2d()
            e1.record(self.stream)
            t0 = time.perf_counter()
            compute()  # trtexec brackets the enqueue call alone: the copies and event records are not enqueue time
            self.enqueue_ms.append((time.perf_counter() - t0) * 1000)
            e2.record(self.stream)
            d2h()
            e3.record(self.stream)
        self._pending.append((events, t0))
        return done

    @property
    def pending(self) -> int:
        """Iterations enqueued and not yet collected."""
        return len(self._pending)

    def drain(self) -> list[float]:
        """Wait for every iteration in flight; their compute times (seconds), oldest first."""
        return [self._collect(self._pending.popleft()) for _ in range(len(self._pending))]

    def _collect(self, item: tuple[list[Any], float]) -> float:
        events, _ = item
        e0, e1, e2, e3 = events
        e3.synchronize()
        self.h2d_ms.append(e0.elapsed_time(e1))
        self.compute_ms.append(e1.elapsed_time(e2))
        self.d2h_ms.append(e2.elapsed_time(e3))
        self._free.append(events)
        return self.compute_ms[-1] / 1000.0

    def split(self) -> dict[str, Any]:
        return split_summary(self.h2d_ms, self.compute_ms, self.d2h_ms, self.enqueue_ms[: len(self.compute_ms)])


def _stats(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    a = np.sort(np.asarray(xs, dtype=float))
    n = len(a)
    return {
        "median": float(np.median(a)),
        "mean": float(a.mean()),
        "p99": float(a[max(0, n - 1 - int(0.01 * n))]),
        "max": float(a[-1]),
        "cv": float(a.std() / a.mean()) if a.mean() > 0 else 0.0,
    }


def timing_warnings(split: dict[str, Any]) -> list[str]:
    """trtexec's performance warnings, from the medians of a ``split_summary``."""
    med = {k: (split.get(k) or {}).get("median") for k in ("enqueue_ms", "h2d_ms", "compute_ms", "d2h_ms")}
    compute = med["compute_ms"]
    if not compute:
        return []
    out = []
    if med["enqueue_ms"] is not None and med["enqueue_ms"] > ENQUEUE_BOUND * compute:
        out.append(
            f"enqueue-bound: median enqueue {med['enqueue_ms']:.3g} ms > {ENQUEUE_BOUND:g} x median GPU compute "
            f"{compute:.3g} ms; the GPU may be under-utilized (try --cuda-graph)"
        )
    for key, what in (("h2d_ms", "host-to-device"), ("d2h_ms", "device-to-host")):
        if med[key] is not None and med[key] >= compute:
            out.append(f"{what} transfer-bound: median {med[key]:.3g} ms >= median GPU compute {compute:.3g} ms")
    cv = (split.get("compute_ms") or {}).get("cv")
    if cv is not None and cv > UNSTABLE_CV:
        out.append(f"GPU compute time is unstable (coefficient of variation {cv:.1%}): lock the GPU clocks")
    return out


def split_summary(h2d: list[float], compute: list[float], d2h: list[float], enqueue: list[float]) -> dict[str, Any]:
    """Median and mean of each part over every iteration, their sum (trtexec's Latency), and the warnings."""
    out: dict[str, Any] = {
        "iterations": len(compute),
        "depth": DEPTH,
        "enqueue_ms": _stats(enqueue),
        "h2d_ms": _stats(h2d),
        "compute_ms": _stats(compute),
        "d2h_ms": _stats(d2h),
        "host_latency_ms": _stats([a + b + c for a, b, c in zip(h2d, compute, d2h)]),  # trtexec's Latency
        "method": f"CUDA events on the runner's stream around H2D, compute, D2H; {DEPTH} iterations in flight; "
        "enqueue on the host clock",
    }
    out["warnings"] = timing_warnings(out)
    return out


def capture_or_fallback(capture: Callable[[], Any], capturable: Callable[[], str | None] | None = None) -> tuple[Any, str | None]:
    """(graph, None) when ``capture()`` made one; (None, why) when ``capturable()`` says it cannot be done, or
    ``capture()`` refused (a NinExportError: its message is the reason) or failed: the caller then goes on with
    plain enqueues and records the reason."""
    if capturable is not None and (why := capturable()) is not None:
        return None, why
    try:
        return capture(), None
    except NinExportError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001  (CUDA and TensorRT raise their own types; any failure means: no graph)
        return None, f"CUDA graph capture failed ({type(e).__name__}: {first_line(e, 200)}); plain enqueue used"


def multi_stream_throughput(
    torch: Any, lanes: Sequence[tuple[Any, Callable[[], None]]], batch: int, seconds: float = 2.0, warmup_s: float = 0.3
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
