"""One benchmark job in its own process: load one runner, time every batch, measure memory.

Runs under multiprocessing's spawn start method, so the process holds nothing but the runner it
measures (an onnxruntime job never imports torch), and its peak RSS is that runner's.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import first_line
from .runtimes import RunTarget, get_runtime
from .timing import TimingOptions, measure

__all__ = ["BenchJob", "run_job"]


@dataclass(frozen=True)
class BenchJob:
    """One runtime x precision for one model, every batch: what crosses into the worker process."""

    runtime: str  # a row of runtimes.RUNTIMES
    target: RunTarget
    batches: tuple[int, ...]
    input_shape: tuple[int, int, int]
    timing: TimingOptions = field(default_factory=TimingOptions)
    reference_inputs: str | None = None  # .npy of held-out inputs whose outputs are returned
    jetson: bool = False  # unified memory: record the system-wide delta too


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _peak_rss_bytes() -> int:
    """Peak RSS of this process's own address space (VmHWM). ru_maxrss would not do: Linux carries it
    over fork and exec, so a spawned worker would report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux; elsewhere a fallback


def _system_used_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _time_batches(runner: Any, job: BenchJob) -> dict[int, dict[str, Any]]:
    name = runner.input_names[0]
    out: dict[int, dict[str, Any]] = {}
    for b in job.batches:
        x = np.random.default_rng(b).standard_normal((b, *job.input_shape)).astype(np.float32)
        try:
            st = measure(runner, {name: x}, job.timing)
            row: dict[str, Any] = {"latency_ms": st.to_dict()}
            e2e = getattr(runner, "last_end_to_end_s", None)
            if e2e is not None:
                row["end_to_end_ms_last"] = e2e * 1000
            out[b] = row
        except Exception as e:  # noqa: BLE001  (a batch the runtime refuses fails its row only)
            out[b] = {"error": f"{type(e).__name__}: {first_line(e)}"}
    return out


def _reference_outputs(runner: Any, job: BenchJob) -> np.ndarray:
    name = runner.input_names[0]
    xs = np.load(job.reference_inputs)  # type: ignore[arg-type]
    step = max(1, min(32, max(job.batches)))
    outs = [next(iter(runner.infer({name: xs[i : i + step]}).values())) for i in range(0, len(xs), step)]
    return np.concatenate(outs).astype(np.float32)


def run_job(job: BenchJob) -> dict[str, Any]:
    """Returns {"batches": {b: {...}}, "memory": {...}, "outputs": array | None, "error": str | None}."""
    out: dict[str, Any] = {"batches": {}, "memory": {}, "outputs": None, "error": None}
    sys_before, sys_loaded = _system_used_bytes(), None
    rss_before = _rss_bytes()
    try:
        with get_runtime(job.runtime).factory(job.target) as runner:
            out["memory"]["rss_after_load_bytes"] = _rss_bytes()
            out["batches"] = _time_batches(runner, job)
            if job.reference_inputs:
                out["outputs"] = _reference_outputs(runner, job)
            out["memory"].update(runner.device_memory())
            sys_loaded = _system_used_bytes()  # while the runner still holds its memory
    except Exception as e:  # noqa: BLE001  (reported as the row's failure reason, never a silent gap)
        out["error"] = f"{type(e).__name__}: {first_line(e)}"
        if os.environ.get("NIN_EXPORT_DEBUG"):
            out["traceback"] = traceback.format_exc()
    out["memory"].update(rss_before_load_bytes=rss_before, peak_rss_bytes=_peak_rss_bytes())
    if job.jetson and sys_before is not None and sys_loaded is not None:
        out["memory"]["system_used_delta_bytes"] = sys_loaded - sys_before  # unified memory: what the job took
    out["finished"] = time.time()
    return out
