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
from .power import (
    Ina3221Sampler,
    NvmlSampler,
    PowerSampler,
    TegrastatsSampler,
    find_power_source,
    nvmap_process_bytes,
    sources_for,
)
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
    power: str = "auto"  # a power source of power.SOURCES, "auto" (the first this machine has) or "none"
    idle_s: float = 1.0  # idle power is sampled this long before each batch
    streams: int = 1  # GPU runners: above 1, also throughput over this many streams (trtexec's --infStreams)


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


def _sampler(job: BenchJob) -> tuple[PowerSampler | None, str]:
    if job.power == "none":
        return None, "power not sampled (--power none)"
    return find_power_source(sources_for(job.target.device) if job.power == "auto" else [job.power])


def _energy(sampler: PowerSampler, idle_w: float | None, images_per_s: float) -> dict[str, Any]:
    """Energy per image from the mean power over the timed window (warm-up included: steady state) and the
    throughput: gross, and net of the idle power measured just before."""
    s = sampler.summary()
    w = s["mean_watts"]
    if w is None or not images_per_s:
        return {"source": s["source"], "reason": "no power sample in the window: raise --min-ms"}
    net = None if idle_w is None else (w - idle_w) / images_per_s * 1000
    return {
        "source": s["source"],
        "method": s["method"],
        "samples": s["samples"],
        "idle_watts": idle_w,
        "mean_watts": w,
        "mj_per_image": w / images_per_s * 1000,
        "mj_per_image_net": net,
        "images_per_joule": images_per_s / w,
    }


def _measure_with_power(runner: Any, feed: dict[str, np.ndarray], job: BenchJob, sampler: PowerSampler | None, why: str):
    if sampler is None:
        return measure(runner, feed, job.timing), {"source": None, "reason": why}
    sampler.start()
    time.sleep(job.idle_s)
    idle_w = sampler.stop().mean_watts
    sampler.start()
    try:
        st = measure(runner, feed, job.timing)
    finally:
        sampler.stop()
    return st, _energy(sampler, idle_w, st.images_per_s)


def _time_batches(runner: Any, job: BenchJob, power: tuple[PowerSampler | None, str]) -> dict[int, dict[str, Any]]:
    name = runner.input_names[0]
    out: dict[int, dict[str, Any]] = {}
    for b in job.batches:
        x = np.random.default_rng(b).standard_normal((b, *job.input_shape)).astype(np.float32)
        try:
            st, energy = _measure_with_power(runner, {name: x}, job, *power)
            row: dict[str, Any] = {"latency_ms": st.to_dict(), "energy": energy}
            split = runner.split() if hasattr(runner, "split") else None
            if split is not None:  # H2D / compute / D2H and end-to-end of every timed iteration
                row["gpu_split"] = split
            if job.streams > 1 and hasattr(runner, "throughput"):
                row["multi_stream"] = runner.throughput({name: x}, job.streams)
            out[b] = row
        except Exception as e:  # noqa: BLE001  (a batch the runtime refuses fails its row only)
            out[b] = {"error": f"{type(e).__name__}: {first_line(e)}"}
    return out


def _device_memory_seen(sampler: PowerSampler | None) -> dict[str, Any]:
    """What the power source also sees of memory: NVML's per-process use (TensorRT's weights and workspace
    included, which torch's allocator counters miss), tegrastats' RAM in use (unified memory on Jetson)."""
    out: dict[str, Any] = {}
    if isinstance(sampler, NvmlSampler):
        out["nvml_process_bytes"] = sampler.process_memory_bytes()
    if isinstance(sampler, TegrastatsSampler) and sampler.ram_used_mb:
        out["tegrastats_ram_used_mb_max"] = max(sampler.ram_used_mb)
    if isinstance(sampler, (TegrastatsSampler, Ina3221Sampler)) and (nvmap := nvmap_process_bytes()) is not None:
        out["nvmap_process_bytes"] = nvmap  # Jetson: GPU buffers in unified memory (root-only debugfs)
    return out


def _reference_outputs(runner: Any, job: BenchJob) -> np.ndarray:
    xs = np.load(job.reference_inputs)  # type: ignore[arg-type]
    return runner.infer_batches(xs, max(1, min(32, max(job.batches)))).astype(np.float32)


def run_job(job: BenchJob) -> dict[str, Any]:
    """Returns {"batches": {b: {...}}, "memory": {...}, "outputs": array | None, "error": str | None}."""
    out: dict[str, Any] = {"batches": {}, "memory": {}, "outputs": None, "error": None}
    sys_before, sys_loaded = _system_used_bytes(), None
    rss_before = _rss_bytes()
    power = _sampler(job)
    try:
        with get_runtime(job.runtime).factory(job.target) as runner:
            out["memory"]["rss_after_load_bytes"] = _rss_bytes()
            out["batches"] = _time_batches(runner, job, power)
            if job.reference_inputs:
                out["outputs"] = _reference_outputs(runner, job)
            out["memory"].update(runner.device_memory())
            out["memory"].update(_device_memory_seen(power[0]))
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
