"""Benchmark timing options (into runners.timing.TimingOptions, whose defaults they show)."""

from __future__ import annotations

from typing import Any

from ...runners.timing import TimingOptions
from ._base import Group, opt

# --- timing ---------------------------------------------------------------------------------------


class TimingArgs(Group):
    def parse(self, kw: dict[str, Any]) -> TimingOptions:
        return TimingOptions(**self.take(kw))


_T = TimingOptions()
TIMING = TimingArgs(
    opt("--warmup-ms", type=float, default=_T.warmup_ms, show_default=True, help="Warm-up per row, by time."),
    opt("--min-iters", type=int, default=_T.min_iters, show_default=True, help="At least this many timed iterations per row."),
    opt("--min-ms", type=float, default=_T.min_ms, show_default=True, help="And at least this long per row."),
)
