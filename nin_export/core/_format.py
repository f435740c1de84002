"""Number formatting shared by the CLI and the reports."""

from __future__ import annotations

__all__ = ["fmt_bytes", "fmt_int", "fmt_macs", "share"]


def fmt_bytes(n: float | None, digits: int = 2) -> str:
    """1536 -> '1.50 KiB'; bytes below 1 KiB as a whole number; None -> '-'."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{digits}f} {unit}"
        n /= 1024
    return str(n)  # unreachable


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_macs(n: int) -> str:
    return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.1f} M"


def share(p: float) -> str:
    """A share given as a fraction (an agreement floor, --min-agreement), as a percentage with the precision
    it was given: 0.999 is 99.9%, never rounded up to an impossible-looking 100%."""
    return f"{p * 100:.10g}%"
