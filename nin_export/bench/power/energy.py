"""Idle power, measured once, and energy per image over a timed window: arithmetic on any sampler."""

from __future__ import annotations

import time
from typing import Any

from .base import PowerSampler

__all__ = ["measure_idle", "energy_figures"]


def measure_idle(sampler: PowerSampler, window_s: float, settle_s: float) -> dict[str, Any]:
    """Idle power, once: wait ``settle_s`` with nothing running (clocks come down after earlier work), then
    sample for ``window_s``. Returns the watts with the window, the settling time and the sampler's interval."""
    time.sleep(settle_s)
    sampler.start()
    time.sleep(window_s)
    sampler.stop()
    return {
        "source": sampler.describe(),
        "watts": sampler.mean_watts,
        "window_s": round(sampler.seconds, 3),
        "settle_s": settle_s,
        "interval_s": sampler.sample_interval_s,
        "samples": len(sampler.samples),
        "method": sampler.summary()["method"],
    }


def energy_figures(joules: float | None, seconds: float, images: int, idle_watts: float | None) -> dict[str, Any]:
    """Energy per image over a timed window of ``seconds`` of wall time in which ``images`` were inferred:
    gross, net of the idle power, and images per joule. Wall time, not compute time: the power was drawn
    over the whole window, copies, launches and host work included (trtexec's throughput is over wall time too)."""
    if joules is None or images <= 0 or seconds <= 0 or joules <= 0:
        return {"reason": "no power sample in the timed window: raise --min-ms"}
    return {
        "joules": joules,
        "window_s": seconds,
        "images": images,
        "mean_watts": joules / seconds,
        "idle_watts": idle_watts,
        "mj_per_image": joules / images * 1000,
        "mj_per_image_net": None if idle_watts is None else (joules - idle_watts * seconds) / images * 1000,
        "images_per_joule": images / joules,
    }
