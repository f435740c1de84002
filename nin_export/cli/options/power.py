"""The power options of 'bench' (into bench.power.PowerOptions: its sources, choices and defaults)."""

from __future__ import annotations

from typing import Any

import click

from ...bench.power import PowerOptions, power_choices
from ._base import Group, opt


class PowerArgs(Group):
    def parse(self, kw: dict[str, Any]) -> PowerOptions:
        values = self.take(kw)
        return PowerOptions(source=values["power"], idle_s=values["idle_s"])


_P = PowerOptions()
POWER = PowerArgs(
    opt(
        "--power",
        type=click.Choice(power_choices()),
        default=_P.source,
        show_default=True,
        help="Power source for energy per image: Jetson INA3221 sysfs or tegrastats, NVML (desktop GPUs), RAPL (x86); "
        "auto takes the first this machine has.",
    ),
    opt(
        "--idle-s",
        type=float,
        default=_P.idle_s,
        show_default=True,
        help=f"Idle power is sampled this long (1..60 s; 0: not measured), once before any work, after "
        f"{_P.idle_settle_s:g} s with nothing running.",
    ),
)
