"""Runners share one protocol (after Polygraphy): a context manager with ``infer(feed) -> outputs``
and ``time_infer(feed) -> seconds`` on the backend's best clock.

Imports are lazy so that an onnxruntime process never loads torch (its memory is measured alone).
"""

from __future__ import annotations

from typing import Any

from .base import Runner

__all__ = ["Runner", "OrtRunner", "TorchRunner"]


def __getattr__(name: str) -> Any:
    if name == "OrtRunner":
        from .onnxrt import OrtRunner

        return OrtRunner
    if name == "TorchRunner":
        from .torch_runner import TorchRunner

        return TorchRunner
    raise AttributeError(name)
