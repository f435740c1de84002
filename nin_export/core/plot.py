"""matplotlib, imported only when a chart is drawn, and charts saved atomically."""

from __future__ import annotations

from pathlib import Path

from ._io import atomic_path

__all__ = ["pyplot", "save_figure"]


def pyplot():
    import matplotlib  # lazy: only a chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
    return path
