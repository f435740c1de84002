"""One benchmark job in its own process: load one runner, time every batch, measure memory.

Runs under multiprocessing's spawn start method, so the process holds nothing but the runner it
measures (an onnxruntime job never imports torch), and its peak RSS is that runner's.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from typing import Any

import numpy as np

__all__ = ["run_job"]


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
        info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
        kb = lambda k: int(info[k].split()[0]) * 1024  # noqa: E731
        return kb("MemTotal") - kb("MemAvailable")
    except (OSError, KeyError, ValueError):
        return None


def _make_runner(job: dict[str, Any]):
    backend, precision = job["backend"], job["precision"]
    if backend == "torch":
        import torch

        from .models import build_model
        from .runners.torch_runner import TorchRunner

        torch.set_num_threads(job["threads"]) if job.get("threads") else None
        model = build_model(job["model"], job["checkpoint"], **job.get("model_kwargs", {}))
        dtype = torch.float16 if precision == "fp16" else torch.float32
        return TorchRunner(model, device=job["device"], dtype=dtype, threads=job.get("threads"))
    if backend == "onnxruntime":
        from .runners.onnxrt import OrtRunner

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if job["device"] == "cuda" else None
        return OrtRunner(job["artifact"], providers=providers, threads=job.get("threads"))
    if backend == "tensorrt":
        from .trt.runner import TrtRunner

        return TrtRunner(job["artifact"])
    raise ValueError(f"unknown backend {backend}")


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Returns {"batches": {b: {...}}, "memory": {...}, "outputs": array | None, "error": str | None}."""
    from .bench import TimingOptions, measure

    out: dict[str, Any] = {"batches": {}, "memory": {}, "outputs": None, "error": None}
    sys_before = _system_used_bytes()
    sys_loaded: int | None = None
    rss_before = _rss_bytes()
    try:
        runner = _make_runner(job)
        with runner:
            out["memory"]["rss_after_load_bytes"] = _rss_bytes()
            name = runner.input_names[0]
            shape = tuple(job["input_shape"])
            timing = TimingOptions(**job["timing"])
            for b in job["batches"]:
                x = np.random.default_rng(b).standard_normal((b, *shape)).astype(np.float32)
                try:
                    st = measure(runner, {name: x}, timing)
                    row: dict[str, Any] = {"latency_ms": st.to_dict()}
                    e2e = getattr(runner, "last_end_to_end_s", None)
                    if job["backend"] == "tensorrt" and e2e is not None:
                        row["end_to_end_ms_last"] = e2e * 1000
                    out["batches"][b] = row
                except Exception as e:  # noqa: BLE001  (a batch the backend refuses fails its row only)
                    out["batches"][b] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}" if str(e) else type(e).__name__}
            if job.get("reference_inputs"):
                xs = np.load(job["reference_inputs"])
                step = max(1, min(32, max(job["batches"])))
                outs = [next(iter(runner.infer({name: xs[i:i + step]}).values())) for i in range(0, len(xs), step)]
                out["outputs"] = np.concatenate(outs).astype(np.float32)
            if job["backend"] == "tensorrt":
                out["memory"]["engine_device_memory_bytes"] = runner.device_memory_bytes()
            sys_loaded = _system_used_bytes()  # while the runner still holds its memory
            if job["device"] == "cuda":
                import torch

                out["memory"]["gpu_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    except Exception as e:  # noqa: BLE001  (reported as the row's failure reason, never a silent gap)
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        out["error"] = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
        if os.environ.get("NIN_EXPORT_DEBUG"):
            out["traceback"] = traceback.format_exc()
    out["memory"].update(rss_before_load_bytes=rss_before, peak_rss_bytes=_peak_rss_bytes())
    if job.get("jetson") and sys_before is not None and sys_loaded is not None:
        out["memory"]["system_used_delta_bytes"] = sys_loaded - sys_before  # unified memory: what the job took
    out["finished"] = time.time()
    return out
