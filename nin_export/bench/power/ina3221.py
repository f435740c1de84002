"""Jetson: the INA3221 rails in sysfs, in either layout.

JetPack 4.6 (L4T 32) lays them out under ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/``
(``rail_name_<c>``, ``in_power<c>_input`` mW, ``in_voltage<c>_input`` mV, ``in_current<c>_input`` mA);
JetPack 5.x and 6.x (L4T 35/36) under ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/``
(``in<c>_label``, ``in<c>_input`` mV, ``curr<c>_input`` mA; channel 7 is the "sum of shunt voltages", not a
rail). The board rails measure whatever runs on the board, so this source serves every device.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from .base import PowerSample, PowerSampler, PowerSourceUnavailable, read_int, register_source
from .jetson import board_rail, board_total

__all__ = ["SKIP_LABELS", "Ina3221Sampler", "find_ina3221_rails"]

SKIP_LABELS = ("sum of shunt voltages", "nc")  # not rails: the shunt sum, and channels wired to nothing (jtop skips "NC")


def _milliwatts(power: Path) -> Callable[[], float]:
    """Watts from a power file in mW."""
    return lambda: read_int(power) / 1000.0


def _volt_amps(v: Path, i: Path) -> Callable[[], float]:
    """Watts from a voltage file in mV and a current file in mA."""
    return lambda: read_int(v) * read_int(i) / 1e6


def _iio_rails(root: Path) -> dict[str, Callable[[], float]]:
    """JetPack 4.6: the ina3221x driver's iio devices (mW where the channel has a power file, else mV x mA)."""
    rails: dict[str, Callable[[], float]] = {}
    for dev in sorted(root.glob("ina3221x/*-*/iio:device*")):
        for label_file in sorted(dev.glob("rail_name_*")):
            c = label_file.name.rsplit("_", 1)[1]
            label = label_file.read_text().strip()
            if label.lower() in SKIP_LABELS:
                continue
            power = dev / f"in_power{c}_input"
            if power.exists():
                rails[label] = _milliwatts(power)
            else:
                rails[label] = _volt_amps(dev / f"in_voltage{c}_input", dev / f"in_current{c}_input")
    return rails


def _hwmon_rails(root: Path, rails: dict[str, Callable[[], float]]) -> None:
    """JetPack 5.x and 6.x: the upstream ina3221 driver's hwmon devices (mV x mA), added to ``rails``; a label
    seen before is suffixed with its sensor's address."""
    for dev in sorted(root.glob("ina3221/*-*/hwmon/hwmon*")):
        for label_file in sorted(dev.glob("in*_label")):
            c = label_file.name[2:-6]
            label = label_file.read_text().strip()
            v, i = dev / f"in{c}_input", dev / f"curr{c}_input"
            if label.lower() in SKIP_LABELS or not (v.exists() and i.exists()):
                continue
            rails[label if label not in rails else f"{label}@{dev.parent.parent.name}"] = _volt_amps(v, i)


def find_ina3221_rails(root: str | os.PathLike = "/sys/bus/i2c/drivers") -> dict[str, Callable[[], float]]:
    """{rail label: a function that returns its watts}, for every INA3221 channel under ``root``, in
    either layout (JetPack 4.6 iio, JetPack 5/6 hwmon)."""
    root = Path(root)
    rails = _iio_rails(root)
    _hwmon_rails(root, rails)
    return rails


@register_source("ina3221", devices=None, order=10)
class Ina3221Sampler(PowerSampler):
    """Every INA3221 rail. A rail that fails to read is dropped from then on (and named in ``dropped``);
    the others go on, so one bad channel does not cost every sample."""

    name = "ina3221"

    def __init__(self, root: str | os.PathLike = "/sys/bus/i2c/drivers") -> None:
        super().__init__()
        self.rails = find_ina3221_rails(root)
        self.dropped: dict[str, str] = {}
        if not self.rails:
            raise PowerSourceUnavailable(f"no INA3221 rails under {root}")

    def describe(self) -> str:
        board = board_rail(self.rails)
        dropped = f"; unreadable, left out: {', '.join(self.dropped)}" if self.dropped else ""
        return f"INA3221 sysfs ({board or ' + '.join(self.rails)}{dropped})"

    def read(self) -> PowerSample:
        rails = {}
        for k, f in list(self.rails.items()):
            try:
                rails[k] = f()
            except (OSError, ValueError) as e:
                self.dropped[k] = f"{type(e).__name__}: {e}"
                del self.rails[k]
        if not rails:
            raise OSError("no INA3221 rail could be read")
        return PowerSample(time.perf_counter(), board_total(rails), rails)
