"""The interface every power source gives (start, stop, samples, mean watts, joules) and the registry of sources.

A source module defines a :class:`PowerSampler` subclass and registers it with :func:`register_source`,
saying which devices it measures and where it comes in the search order; the package imports every module
it holds (:func:`discover_sources`), so a new source is one new module. Nothing here prints: a sampler that
cannot run here raises :class:`PowerSourceUnavailable` with the reason.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+: read by the type checker only

__all__ = [
    "PowerSample",
    "PowerSampler",
    "PowerSourceUnavailable",
    "SourceInfo",
    "SOURCES",
    "register_source",
    "unregister_source",
    "source_info",
    "discover_sources",
    "power_sources",
    "find_power_source",
    "sources_for",
    "read_int",
]


@dataclass
class PowerSample:
    t: float  # time.perf_counter()
    watts: float
    rails: dict[str, float] = field(default_factory=dict)  # W per rail, where the source names them


class PowerSourceUnavailable(Exception):
    """This machine has no such power source; the message says why."""


class PowerSampler:
    """Start, stop, then read ``samples``, ``mean_watts`` and ``joules``. Subclasses give ``read()`` (one
    sample) or override start/stop (an energy counter, a subprocess)."""

    name = "power"
    interval_s = 0.05

    def __init__(self) -> None:
        self.samples: list[PowerSample] = []
        self._t0 = self._t1 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._energy_j: float | None = None  # from a hardware counter, where there is one

    def describe(self) -> str:
        return self.name

    @property
    def sample_interval_s(self) -> float | None:
        """Seconds between samples (None for a pure energy counter)."""
        return self.interval_s

    def read(self) -> PowerSample:  # pragma: no cover - each polling source defines it
        raise NotImplementedError

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.read())
            except (OSError, ValueError):
                pass  # a sensor that misses one read does not end the run
            self._stop.wait(self.interval_s)

    def start(self) -> Self:
        self.samples, self._energy_j = [], None
        self._stop.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._poll, name=f"nin-export-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Self:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._t1 = time.perf_counter()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def seconds(self) -> float:
        return max(self._t1 - self._t0, 0.0)

    @property
    def mean_watts(self) -> float | None:
        if self._energy_j is not None and self.seconds > 0:
            return self._energy_j / self.seconds
        return sum(s.watts for s in self.samples) / len(self.samples) if self.samples else None

    @property
    def joules(self) -> float | None:
        if self._energy_j is not None:
            return self._energy_j
        w = self.mean_watts
        return None if w is None else w * self.seconds

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.describe(),
            "seconds": self.seconds,
            "samples": len(self.samples),
            "mean_watts": self.mean_watts,
            "joules": self.joules,
            "method": "energy counter" if self._energy_j is not None else "power samples",
        }


def read_int(p: Path) -> int:
    """One integer from a sysfs file."""
    return int(p.read_text().strip())


# --- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceInfo:
    """A registered source: its sampler class, the devices whose draw it measures (None: any device, as a
    board's input rail measures whatever runs on the board) and its place in the search order (lowest first)."""

    name: str
    make: Callable[[], PowerSampler]
    devices: tuple[str, ...] | None
    order: int

    def measures(self, device: str) -> bool:
        return self.devices is None or device in self.devices


_INFO: dict[str, SourceInfo] = {}
# {name: sampler class}, in search order; the one dict, updated in place as sources register.
SOURCES: dict[str, Callable[[], PowerSampler]] = {}


def _reorder() -> None:
    SOURCES.clear()
    SOURCES.update((i.name, i.make) for i in sorted(_INFO.values(), key=lambda i: (i.order, i.name)))


def register_source(
    name: str, *, devices: Iterable[str] | None = None, order: int = 100
) -> Callable[[type[PowerSampler]], type[PowerSampler]]:
    """Class decorator: make the sampler class the power source ``name``, for ``devices`` (None: any device),
    at ``order`` in the search (lowest first; ties by name). Registering a name again from the same class
    (a reloaded module) replaces it; from another class is an error."""

    def register(cls: type[PowerSampler]) -> type[PowerSampler]:
        old = _INFO.get(name)
        if old is not None and _qualified(old.make) != _qualified(cls):
            raise ValueError(f"power source '{name}' is already {_qualified(old.make)}, not {_qualified(cls)}")
        if "name" not in vars(cls):
            cls.name = name
        _INFO[name] = SourceInfo(name, cls, None if devices is None else tuple(devices), order)
        _reorder()
        return cls

    return register


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def unregister_source(name: str) -> None:
    """Forget the source ``name`` (a no-op where there is none)."""
    _INFO.pop(name, None)
    _reorder()


def source_info(name: str) -> SourceInfo:
    """What ``name`` registered (KeyError where no source has that name)."""
    return _INFO[name]


def discover_sources(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of ``package`` found on ``path`` (a package's ``__path__``), so that each source
    module registers itself; modules whose name starts with "_" are skipped. Returns the modules' names."""
    names = [m.name for m in pkgutil.iter_modules(list(path)) if not m.ispkg and not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


# --- which one --------------------------------------------------------------------------------------


def power_sources() -> dict[str, str]:
    """{source: "available: <what>" or the reason it is not}, for every registered source."""
    out = {}
    for name, make in SOURCES.items():
        try:
            out[name] = f"available: {make().describe()}"
        except PowerSourceUnavailable as e:
            out[name] = str(e)
    return out


def find_power_source(order: list[str] | None = None) -> tuple[PowerSampler | None, str]:
    """The first available source of ``order`` (default: every one): (sampler, what it is) or (None, why none)."""
    reasons = []
    for name in order or list(SOURCES):
        try:
            s = SOURCES[name]()
            return s, s.describe()
        except PowerSourceUnavailable as e:
            reasons.append(f"{name}: {e}")
    return None, "no power source: " + "; ".join(reasons)


def sources_for(device: str) -> list[str]:
    """The sources that measure what a row on ``device`` draws, in search order, as each source declares: a
    Jetson's board rails for anything; else NVML for a CUDA row and RAPL for a CPU row (a desktop GPU's idle
    power says nothing of a CPU run)."""
    return [name for name in SOURCES if name in _INFO and _INFO[name].measures(device)]
