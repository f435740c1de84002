"""A cross-check of nin-export's TensorRT runner against a proven one: the same engine and the same inputs
through Polygraphy's ``TrtRunner`` (NVIDIA's own tool, used on Jetson and desktops) and through ours.

Both are timed on the host clock, one synchronous inference at a time with its copies (Polygraphy's
``last_inference_time()`` covers H2D, execution and D2H), so the two medians measure the same thing.
Outputs must match within the engine tolerance of the engine's precision, and the medians within
``LATENCY_TOLERANCE`` of each other (plus ``LATENCY_SLACK_MS`` for sub-millisecond engines)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.enums import Precision
from ..core.errors import BackendUnavailableError
from ..core.verify import compare, random_inputs, tolerance_for
from ._api import load_trt
from .sidecar import current_gpu, read_sidecar, sidecar_path

__all__ = ["polygraphy_crosscheck", "LATENCY_TOLERANCE", "latencies_agree"]

LATENCY_TOLERANCE = 0.25  # relative difference of the two medians
LATENCY_SLACK_MS = 0.1  # Python work around a sub-millisecond engine differs between the two runners


def latencies_agree(ours_ms: float, theirs_ms: float) -> bool:
    """Whether two host-clock medians agree within the stated tolerance."""
    return abs(ours_ms - theirs_ms) <= LATENCY_TOLERANCE * theirs_ms + LATENCY_SLACK_MS


def _polygraphy(flavour: str) -> Any:
    if flavour == "tensorrt-rtx":
        os.environ["POLYGRAPHY_USE_TENSORRT_RTX"] = "1"  # read when polygraphy imports TensorRT
    try:
        from polygraphy.backend import trt as pg_trt
    except ImportError:
        raise BackendUnavailableError(
            "polygraphy is not installed: pip install 'nin-export[gpu]' (or pip install polygraphy)"
        ) from None
    return pg_trt


def _timed(infer: Any, seconds: Any, feed: dict[str, np.ndarray], iterations: int) -> tuple[np.ndarray, float]:
    """First output (after one warm-up) and median host milliseconds of ``seconds()`` after each of ``iterations``
    synchronous inferences."""
    out = next(iter(infer(feed).values()))
    times = []
    for _ in range(iterations):
        times.append(seconds(feed) * 1000)
    return np.asarray(out, dtype=np.float32), float(np.median(times))


def polygraphy_crosscheck(engine: str | os.PathLike, batch: int | None = None, iterations: int = 50) -> dict[str, Any]:
    """Run ``engine`` through Polygraphy's TrtRunner and nin-export's: outputs compared, host-clock medians
    compared. Raises BackendUnavailableError where it cannot run (no GPU, no Polygraphy, no TensorRT)."""
    from .runner import TrtRunner

    path = Path(engine)
    if current_gpu() is None:
        raise BackendUnavailableError("no CUDA GPU visible to torch: the cross-check runs the engine")
    side = read_sidecar(path, verify=False) if sidecar_path(path).exists() else {}
    pg_trt = _polygraphy(side.get("flavour") or load_trt().flavour.value)  # a plain plan: the TensorRT installed
    with TrtRunner(path) as ours:
        name = ours.input_names[0]
        mn, op, mx = ours.profile_range(name)
        b = batch or op[0]
        # the engine's own input dtype: Polygraphy checks it (an FP16-I/O engine takes float16)
        feed = {name: random_inputs([(b, *op[1:])], 0)[0].astype(ours.input_dtype(name))}
        out_ours, ms_ours = _timed(ours.infer, ours.host_infer_seconds, feed, iterations)
    with pg_trt.TrtRunner(pg_trt.EngineFromBytes(path.read_bytes())) as theirs:

        def seconds(f: dict[str, np.ndarray]) -> float:
            theirs.infer(f)
            return theirs.last_inference_time()

        out_theirs, ms_theirs = _timed(theirs.infer, seconds, feed, iterations)
    agreement = compare([out_theirs], [out_ours], tolerance_for(Precision(side.get("precision", "fp32")), engine=True))
    return {
        "engine": path.name,
        "batch": b,
        "iterations": iterations,
        "outputs_match": agreement.passed,
        "outputs": agreement.describe(),
        "median_ms_nin_export": ms_ours,
        "median_ms_polygraphy": ms_theirs,
        "latency_tolerance": f"|ours - polygraphy| <= {LATENCY_TOLERANCE:.0%} of polygraphy's + {LATENCY_SLACK_MS} ms",
        "latencies_agree": latencies_agree(ms_ours, ms_theirs),
        "passed": agreement.passed and latencies_agree(ms_ours, ms_theirs),
        "clock": "host, one synchronous inference with its copies at a time, on both",
    }
