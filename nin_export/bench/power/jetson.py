"""What the Jetson sources share: the board-level input rail, and NvMap's per-process memory.

A board-level rail (VDD_IN, POM_5V_IN) is preferred where there is one, as tegrastats' users read it;
otherwise every rail is summed. NvMap holds the GPU buffers in a Jetson's unified memory, which RSS misses.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["BOARD_RAILS", "NVMAP_CLIENTS", "board_rail", "board_total", "nvmap_process_bytes"]

BOARD_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")  # the whole module's input, where a board has one
NVMAP_CLIENTS = "/sys/kernel/debug/nvmap/iovmm/clients"  # debugfs: root only


def board_rail(rails: dict) -> str | None:
    """The name of the board-level rail among ``rails``, or None where there is none."""
    return next((r for r in BOARD_RAILS if r in rails), None)


def board_total(rails: dict[str, float]) -> float:
    """The board rail's watts where there is one, else the sum of every rail."""
    board = board_rail(rails)
    return rails[board] if board is not None else sum(rails.values())


def nvmap_process_bytes(pid: int | None = None, path: str | os.PathLike = NVMAP_CLIENTS) -> int | None:
    """What NvMap holds for ``pid`` (the "CLIENT PROCESS PID SIZE" table jtop reads; sizes in K), or
    None where the file is not readable (it is root-only) or lists no such process."""
    pid = os.getpid() if pid is None else pid
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    total = None
    for line in lines[1:]:
        f = line.split()
        if len(f) >= 4 and f[-2] == str(pid) and (m := re.fullmatch(r"(\d+)([KMG]?)", f[-1])):
            total = (total or 0) + int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
    return total
