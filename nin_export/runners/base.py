"""The runner protocol shared by every backend."""

from __future__ import annotations

import abc
import time
from typing import Any, Mapping, TypeVar

import numpy as np

__all__ = ["Runner"]

R = TypeVar("R", bound="Runner")


class Runner(abc.ABC):
    """Activate (load), infer, time, deactivate (free). Use as a context manager.

    Subclasses implement ``activate_impl``, ``infer_impl`` and ``deactivate_impl``; the public
    methods hold the state checks.
    """

    name: str = "runner"
    clock: str = "host"  # what time_infer measures: "host" (host to host) or "cuda-events" (GPU compute time)

    def __init__(self) -> None:
        self.is_active = False

    def __enter__(self: R) -> R:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        if self.is_active:
            raise RuntimeError(f"{self.name} is already active")
        self.activate_impl()
        self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError(f"{self.name} must be activated before infer()")
        return self.infer_impl(feed)

    def time_infer(self, feed: Mapping[str, np.ndarray]) -> float | None:
        """Seconds for one inference, host to host. GPU runners override this with device events and keep
        one iteration in flight: they return an earlier iteration's time, or None while none has completed."""
        start = time.perf_counter()
        self.infer(feed)
        return time.perf_counter() - start

    # --- optional capabilities: a runner that has them overrides these; the defaults say "none" ---------

    def drain_timing(self) -> list[float]:
        """Wait for the iterations still in flight; their times in seconds (none for unpipelined runners)."""
        return []

    def reset_split(self) -> None:  # noqa: B027  (optional: only runners that keep splits reset them)
        """Forget the per-iteration splits kept so far (after the warm-up)."""

    def split(self) -> dict[str, Any] | None:
        """H2D / compute / D2H / enqueue of every timed iteration, where the runner times on a GPU."""
        return None

    def throughput(self, feed: Mapping[str, np.ndarray], streams: int, seconds: float = 2.0) -> dict[str, Any] | None:
        """Images per second over ``streams`` streams, where the runner can run several at once."""
        return None

    def settings(self) -> dict[str, Any]:
        """What the runner runs with, as its backend reports it (precision hint, threads, streams); none by default."""
        return {}

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
        """(min, opt, max) shapes an engine accepts for input ``name``; None where any shape goes."""
        return None

    @property
    @abc.abstractmethod
    def input_names(self) -> list[str]: ...

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def infer_batches(self, x: np.ndarray, batch: int = 32) -> np.ndarray:
        """The first output over every row of ``x``, fed ``batch`` rows at a time (one-input runners). A model
        with a fixed batch is fed exactly that many rows each time, the last chunk padded with zeros (whose
        outputs are dropped): a graph exported with --batch 1 works everywhere a dynamic one does."""
        name = self.input_names[0]
        fixed = self.fixed_batch()
        step = fixed or batch
        outs = []
        for i in range(0, len(x), step):
            chunk = x[i : i + step]
            n = len(chunk)
            if fixed and n < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(next(iter(self.infer({name: chunk}).values()))[:n])
        return np.concatenate(outs)

    def fixed_batch(self) -> int | None:
        """The one batch size the model takes, where its batch dimension is fixed; None where any goes."""
        return None

    def device_memory(self) -> dict[str, int]:
        """GPU memory figures this runner can read (bytes by name); none by default."""
        return {}

    def deactivate_impl(self) -> None:  # noqa: B027  (optional: runners with nothing to free leave it)
        pass
