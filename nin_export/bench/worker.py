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

from ..core._io import proc_kib_field
from ..core.errors import first_line
from ..runners.base import Runner
from ..runners.timing import TimingOptions, measure
from ..runtimes import ArtifactKind, RunTarget, get_runtime
from .power import (
    Ina3221Sampler,
    NvmlSampler,
    PowerSampler,
    TegrastatsSampler,
    energy_figures,
    find_power_source,
    nvmap_process_bytes,
    sources_for,
)

__all__ = ["BenchJob", "Workload", "JobEnergy", "JobResult", "run_job", "crosscheck_job"]


@dataclass(frozen=True)
class Workload:
    """What the job feeds its runner: random inputs per batch size, then the held-out reference inputs."""

    batches: tuple[int, ...]
    input_shape: tuple[int, int, int]
    reference_inputs: str | None = None  # .npy of held-out inputs whose outputs are returned


@dataclass(frozen=True)
class JobEnergy:
    """How the job samples power around each timed loop."""

    source: str = "auto"  # a registered power source, "auto" (the first this machine has) or "none"
    idle_watts: float | None = None  # measured once by the parent before any work (net energy); None: unknown


@dataclass(frozen=True)
class BenchJob:
    """One runtime x precision for one model, every batch: what crosses into the worker process."""

    runtime: str  # a row of runtimes.RUNTIMES
    target: RunTarget
    work: Workload
    timing: TimingOptions = field(default_factory=TimingOptions)
    energy: JobEnergy = field(default_factory=JobEnergy)
    streams: int = 1  # GPU runners: above 1, also throughput over this many streams (trtexec's --infStreams)
    jetson: bool = False  # unified memory: record the system-wide delta too


@dataclass
class JobResult:
    """What a job sends back. ``batches``: per batch size, {"latency_ms", "energy", and "gpu_split" or
    "multi_stream" where measured} or {"skipped" | "error": why}."""

    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    outputs: np.ndarray | None = None  # on the reference inputs
    settings: dict[str, Any] = field(default_factory=dict)  # the runtime's settings as it reports them
    error: str | None = None  # the job failed: every row of it fails with this reason
    traceback: str | None = None  # NIN_EXPORT_DEBUG only
    finished: float | None = None


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _peak_rss_bytes() -> int:
    """Peak RSS of this process's own address space (VmHWM). ru_maxrss would not do: Linux carries it
    over fork and exec, so a spawned worker would report its parent's peak."""
    hwm = proc_kib_field("/proc/self/status", "VmHWM")
    return hwm if hwm is not None else int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def _system_used_bytes() -> int | None:
    total, free = proc_kib_field("/proc/meminfo", "MemTotal"), proc_kib_field("/proc/meminfo", "MemAvailable")
    return None if total is None or free is None else total - free


def _sampler(job: BenchJob) -> tuple[PowerSampler | None, str]:
    source = job.energy.source
    if source == "none":
        return None, "power not sampled (--power none)"
    if job.target.device == "cuda" and get_runtime(job.runtime).artifact is not ArtifactKind.ONNX:
        import torch  # noqa: F401  (this row's runner loads it anyway: NVML then measures the GPU torch runs on)
    return find_power_source(sources_for(job.target.device) if source == "auto" else [source])


def _measure_with_power(runner: Runner, feed: dict[str, np.ndarray], job: BenchJob, sampler: PowerSampler | None, why: str):
    """Latency, and energy per image over the timed loop's wall time (the sampler runs just around it)."""
    if sampler is None:
        return measure(runner, feed, job.timing), {"source": None, "reason": why}
    st = measure(runner, feed, job.timing, window=sampler)
    summary = sampler.summary()
    energy = energy_figures(sampler.joules, sampler.seconds, st.iterations * st.batch, job.energy.idle_watts)
    return st, {"source": summary["source"], "method": summary["method"], "samples": summary["samples"], **energy}


def _time_batches(runner: Runner, job: BenchJob, power: tuple[PowerSampler | None, str]) -> dict[int, dict[str, Any]]:
    name = runner.input_names[0]
    out: dict[int, dict[str, Any]] = {}
    fixed = runner.fixed_batch()
    for b in job.work.batches:
        if fixed is not None and b != fixed:
            out[b] = {"skipped": f"the artifact has a fixed batch of {fixed}: export it with a dynamic batch to measure {b}"}
            continue
        x = np.random.default_rng(b).standard_normal((b, *job.work.input_shape)).astype(np.float32)
        try:
            st, energy = _measure_with_power(runner, {name: x}, job, *power)
            row: dict[str, Any] = {"latency_ms": st.to_dict(), "energy": energy}
            split = runner.split()
            if split is not None:  # H2D / compute / D2H and enqueue of every timed iteration, trtexec's warnings
                row["gpu_split"] = split
            if job.streams > 1 and (ms := runner.throughput({name: x}, job.streams)) is not None:
                row["multi_stream"] = ms
            out[b] = row
        except Exception as e:  # noqa: BLE001  (a batch the runtime refuses fails its row only)
            out[b] = {"error": f"{type(e).__name__}: {first_line(e)}"}
    return out


def _device_memory_seen(sampler: PowerSampler | None) -> dict[str, Any]:
    """What the power source also sees of memory: NVML's per-process use (TensorRT's weights and workspace
    included, which torch's allocator counters miss), tegrastats' RAM in use (unified memory on Jetson)."""
    out: dict[str, Any] = {}
    if isinstance(sampler, NvmlSampler):
        out.update(sampler.memory_seen())
    if isinstance(sampler, TegrastatsSampler) and sampler.ram_used_mb:
        out["tegrastats_ram_used_mb_max"] = max(sampler.ram_used_mb)
    if isinstance(sampler, (TegrastatsSampler, Ina3221Sampler)) and (nvmap := nvmap_process_bytes()) is not None:
        out["nvmap_process_bytes"] = nvmap  # Jetson: GPU buffers in unified memory (root-only debugfs)
    return out


def _reference_outputs(runner: Runner, job: BenchJob) -> np.ndarray:
    assert job.work.reference_inputs is not None
    xs = np.load(job.work.reference_inputs)
    return runner.infer_batches(xs, max(1, min(32, max(job.work.batches)))).astype(np.float32)


def run_job(job: BenchJob) -> JobResult:
    """Load the runner, time every batch, then the reference outputs and memory; a failure is the result's error."""
    out = JobResult()
    sys_before, sys_loaded = _system_used_bytes(), None
    rss_before = _rss_bytes()
    power = _sampler(job)
    try:
        with get_runtime(job.runtime).factory(job.target) as runner:
            out.memory["rss_after_load_bytes"] = _rss_bytes()
            out.batches = _time_batches(runner, job, power)
            out.settings = runner.settings()
            if job.work.reference_inputs:
                out.outputs = _reference_outputs(runner, job)
            out.memory.update(runner.device_memory())
            out.memory.update(_device_memory_seen(power[0]))
            sys_loaded = _system_used_bytes()  # while the runner still holds its memory
    except Exception as e:  # noqa: BLE001  (reported as the row's failure reason, never a silent gap)
        out.error = f"{type(e).__name__}: {first_line(e)}"
        if os.environ.get("NIN_EXPORT_DEBUG"):
            out.traceback = traceback.format_exc()
    out.memory.update(rss_before_load_bytes=rss_before, peak_rss_bytes=_peak_rss_bytes())
    if job.jetson and sys_before is not None and sys_loaded is not None:
        out.memory["system_used_delta_bytes"] = sys_loaded - sys_before  # unified memory: what the job took
    out.finished = time.time()
    return out


def crosscheck_job(engine: str) -> dict[str, Any]:
    """The engine through Polygraphy's TrtRunner and ours (trt/crosscheck.py), in this process: passed,
    failed or skipped, with the figures or the reason."""
    from ..core.errors import BackendUnavailableError
    from ..trt.crosscheck import polygraphy_crosscheck

    try:
        c = polygraphy_crosscheck(engine)
    except BackendUnavailableError as e:
        return {"status": "skipped", "reason": first_line(e)}
    except Exception as e:  # noqa: BLE001  (the cross-check's failure is its result)
        return {"status": "failed", "reason": f"{type(e).__name__}: {first_line(e)}"}
    return dict(c, status="passed" if c["passed"] else "failed")
