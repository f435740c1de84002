"""The benchmark's power options (which source, how long to sample idle power) and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.defaults import DEFAULT_IDLE_S, DEFAULT_IDLE_SETTLE_S
from ...core.errors import NinExportError
from .base import SOURCES

__all__ = ["PowerOptions", "power_choices"]


def power_choices() -> list[str]:
    """What ``--power`` takes: "auto" (the first source this machine has), "none", or a registered source."""
    return ["auto", "none", *SOURCES]


@dataclass(frozen=True)
class PowerOptions:
    """``source``: "auto", "none" or a registered source name; idle power is sampled for ``idle_s`` (0: not
    measured) after ``idle_settle_s`` with nothing running."""

    source: str = "auto"
    idle_s: float = DEFAULT_IDLE_S
    idle_settle_s: float = DEFAULT_IDLE_SETTLE_S

    def check(self) -> None:
        """Raise NinExportError, saying what is wrong, for an unknown source or an idle time out of range."""
        if self.source not in power_choices():
            raise NinExportError(f"power source '{self.source}' is not one of auto, none, {', '.join(SOURCES)}")
        if not (self.idle_s == 0 or 1 <= self.idle_s <= 60) or not 0 <= self.idle_settle_s <= 60:
            raise NinExportError(
                f"idle power is sampled for 1..60 s (0: not measured) after 0..60 s of settling, got --idle-s "
                f"{self.idle_s:g} and a settling time of {self.idle_settle_s:g} s"
            )
