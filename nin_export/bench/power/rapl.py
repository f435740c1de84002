"""x86 CPUs: Linux powercap RAPL energy counters (``/sys/class/powercap/intel-rapl:<N>/energy_uj``), where
readable. They measure the CPU packages, so this source serves CPU rows only."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .base import PowerSampler, PowerSourceUnavailable, read_int, register_source

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+: read by the type checker only

__all__ = ["RaplSampler"]


def _zone_name(d: Path) -> str:
    try:
        return (d / "name").read_text().strip()
    except OSError:
        return d.name


@register_source("rapl", devices=("cpu",), order=40)
class RaplSampler(PowerSampler):
    """Linux powercap RAPL package domains (energy_uj counters, wrap-around handled). The ``psys`` (platform)
    zone, where there is one, contains the packages: it is left out, so nothing is counted twice; it is
    used alone only where it is the one readable zone."""

    name = "rapl"

    def __init__(self, root: str | os.PathLike = "/sys/class/powercap") -> None:
        super().__init__()
        found = []
        for d in sorted(Path(root).glob("intel-rapl:*")):
            if d.name.count(":") != 1:  # top-level zones only; sub-zones (core, uncore, dram) are inside them
                continue
            try:
                read_int(d / "energy_uj")
                found.append((d, read_int(d / "max_energy_range_uj")))
            except (OSError, ValueError):
                continue
        packages = [z for z in found if _zone_name(z[0]) != "psys"]
        self.domains = packages or found
        if not self.domains:
            readable = "" if not any(Path(root).glob("intel-rapl:*")) else " (energy_uj is root-only since Linux 5.10)"
            raise PowerSourceUnavailable(f"no readable RAPL domain under {root}{readable}")
        self._e0: list[int] = []

    @property
    def sample_interval_s(self) -> float | None:
        return None  # an energy counter, read at start and stop

    def describe(self) -> str:
        return f"RAPL ({', '.join(_zone_name(d) for d, _ in self.domains)})"

    def _energy(self) -> list[int]:
        return [read_int(d / "energy_uj") for d, _ in self.domains]

    def start(self) -> Self:
        self.samples, self._energy_j = [], None
        self._e0 = self._energy()
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> Self:
        e1 = self._energy()
        self._t1 = time.perf_counter()
        uj = sum((b - a) % rng if b < a else b - a for (a, b, (_, rng)) in zip(self._e0, e1, self.domains))
        self._energy_j = uj / 1e6
        return self
