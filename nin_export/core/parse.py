"""Parsers for the sizes, shapes and batch lists users type: one place for the CLI and the library."""

from __future__ import annotations

import os
from typing import Callable, Sequence

from .errors import InputSizeError, NinExportError

__all__ = [
    "parse_input_size",
    "parse_shape",
    "parse_batch_profile",
    "parse_batch",
    "parse_batch_list",
    "parse_choice_list",
    "batch_profile_for",
    "cap_threads",
]


def parse_input_size(value: int | str | Sequence[int] | None) -> tuple[int, int] | None:
    """Accept 32, '32', '32x32', '224,224' or (H, W); return (H, W) or None."""
    if value is None:
        return None
    if isinstance(value, int):
        hw = (value, value)
    elif isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            nums = [int(p) for p in parts if p.strip()]
        except ValueError:
            raise InputSizeError(f"bad input size '{value}': write it as HxW, e.g. 224x224, or one number") from None
        if len(nums) == 1:
            nums = nums * 2
        if len(nums) != 2:
            raise InputSizeError(f"bad input size '{value}': write it as HxW, e.g. 224x224, or one number")
        hw = (nums[0], nums[1])
    else:
        try:
            hw = (int(value[0]), int(value[1]))
        except (TypeError, ValueError, IndexError):
            raise InputSizeError(f"bad input size {value!r}: give [height, width]") from None
    if min(hw) < 1:
        raise InputSizeError(f"bad input size {hw[0]}x{hw[1]}: height and width must be positive")
    return hw


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' (or 'input:1x3x224x224', trtexec style) -> (1, 3, 224, 224)."""
    body = text.split(":", 1)[1] if ":" in text else text
    try:
        dims = tuple(int(d) for d in body.lower().split("x"))
    except ValueError:
        raise NinExportError(f"bad shape '{text}': write it as NxCxHxW, e.g. 1x3x224x224") from None
    if any(d < 1 for d in dims):
        raise NinExportError(f"bad shape '{text}': every dimension must be positive")
    return dims


def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """'1:8:32' -> (1, 8, 32); '8' -> (8, 8, 8)."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise NinExportError(f"bad --batch '{text}': write MIN:OPT:MAX, e.g. 1:8:32, or one number") from None
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise NinExportError(f"bad --batch '{text}': write MIN:OPT:MAX with positive numbers, e.g. 1:8:32")
    return parts[0], parts[1], parts[2]


def parse_batch(value: str | None) -> int | None:
    """An export batch: a positive number, or 'dynamic' / None for a dynamic batch."""
    if value is None or value.lower() == "dynamic":
        return None
    try:
        b = int(value)
    except ValueError:
        raise NinExportError(f"--batch must be a positive number or 'dynamic', got '{value}'") from None
    if b < 1:
        raise NinExportError(f"--batch must be a positive number or 'dynamic', got '{value}'")
    return b


def parse_batch_list(value: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32], every size positive."""
    try:
        out = [int(b) for b in value.split(",") if b.strip()]
    except ValueError:
        raise NinExportError(f"bad --batch '{value}': give batch sizes like 1,8,32") from None
    if not out or min(out) < 1:
        raise NinExportError(f"bad --batch '{value}': batch sizes must be positive, like 1,8,32")
    if len(set(out)) != len(out):
        twice = sorted({b for b in out if out.count(b) > 1})
        raise NinExportError(f"bad --batch '{value}': {', '.join(map(str, twice))} given twice; name each size once")
    return out


def batch_profile_for(batches: Sequence[int]) -> tuple[int, int, int]:
    """The engine profile that covers a benchmark's batch sizes: 1 : max/2 : max (the one rule bench and
    pipeline share)."""
    top = max(batches)
    return 1, max(1, top // 2), top


def cap_threads(threads: int | None) -> tuple[int | None, str | None]:
    """``threads`` capped at this machine's CPU count (more only thrash, and 100,000 of them exhaust memory),
    with a note saying so; values below 1 are refused."""
    if threads is None:
        return None, None
    if threads < 1:
        raise NinExportError(f"--threads must be at least 1, got {threads}")
    cpus = os.cpu_count() or 1
    if threads > cpus:
        return cpus, f"--threads {threads} is more than this machine's {cpus} CPUs: using {cpus}"
    return threads, None


def parse_choice_list(value: str, what: str, choices: Sequence[str], same: Callable[[str], str] = str) -> list[str]:
    """'a,b' -> ['a', 'b'], every entry one of ``choices``. An entry given twice (or under two names ``same``
    maps together, an alias beside its name) is refused: it would be measured once and look like a typo's
    silent fix. ``what`` names the option in the message (--what)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in choices]
    if not items or bad:
        raise NinExportError(f"bad --{what} '{value}': choose from {', '.join(choices)}, comma-separated")
    seen: dict[str, str] = {}
    for v in items:
        if same(v) in seen:
            raise NinExportError(f"bad --{what} '{value}': '{v}' is given twice (as '{seen[same(v)]}' too); name each once")
        seen[same(v)] = v
    return items
