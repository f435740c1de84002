"""Jetson: ``tegrastats``, whose lines carry the board's rails and the RAM in use.

Rails print as ``NAME now/avg`` in mW: ``VDD_IN 4937mW/4937mW`` on JetPack 5/6, ``POM_5V_IN 2545/2547`` on
JetPack 4. Like the INA3221 rails they come from, they measure whatever runs on the board: every device.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from .base import PowerSample, PowerSampler, PowerSourceUnavailable, register_source
from .jetson import board_total

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+: read by the type checker only

__all__ = ["TegrastatsSampler", "parse_tegrastats"]

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(mW)?/(\d+)(mW)?")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ", "NC"}


def parse_tegrastats(line: str) -> dict[str, Any]:
    """One tegrastats line: {"rails": {name: watts now}, "ram_used_mb", "ram_total_mb"} (what the line has).
    Rails print as ``NAME now/avg`` in mW, with a "mW" suffix from JetPack 5 on."""
    out: dict[str, Any] = {"rails": {}}
    for name, now, _u, _avg, _u2 in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            out["rails"][name] = int(now) / 1000.0
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    return out


@register_source("tegrastats", devices=None, order=20)
class TegrastatsSampler(PowerSampler):
    """``tegrastats --interval MS`` in a subprocess; each line is a sample."""

    name = "tegrastats"
    STARTUP_S = 5.0

    def __init__(self, exe: str | None = None, interval_ms: int = 100) -> None:
        super().__init__()
        found = exe or shutil.which("tegrastats")
        if not found:
            raise PowerSourceUnavailable("tegrastats is not on PATH (JetPack installs it in /usr/bin)")
        self.exe = found
        self.interval_ms = interval_ms
        self._proc: subprocess.Popen | None = None
        self.ram_used_mb: list[int] = []

    def _poll(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self._stop.is_set():
                break
            parsed = parse_tegrastats(line)
            if parsed["rails"]:
                self.samples.append(PowerSample(time.perf_counter(), board_total(parsed["rails"]), parsed["rails"]))
                self._first.set()
            if "ram_used_mb" in parsed:
                self.ram_used_mb.append(parsed["ram_used_mb"])

    def start(self) -> Self:
        """Start tegrastats and wait (up to ``STARTUP_S``) for its first line, so that the window starts with
        a sample: a short timed loop would otherwise end before the subprocess has printed anything."""
        self.samples, self.ram_used_mb = [], []
        self._stop.clear()
        self._first = threading.Event()
        self._proc = subprocess.Popen(
            [self.exe, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._thread = threading.Thread(target=self._poll, name="nin-export-tegrastats", daemon=True)
        self._thread.start()
        self._first.wait(self.STARTUP_S)
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> Self:
        self._t1 = time.perf_counter()
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self

    @property
    def sample_interval_s(self) -> float | None:
        return self.interval_ms / 1000.0

    def summary(self) -> dict[str, Any]:
        s = super().summary()
        if self.ram_used_mb:
            s["ram_used_mb_max"] = max(self.ram_used_mb)
        return s
