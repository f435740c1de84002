"""Runners share one protocol (after Polygraphy): a context manager with ``infer(feed) -> outputs``
and ``time_infer(feed) -> seconds`` on the backend's best clock. TensorRT is imported lazily."""

from .base import Runner
from .onnxrt import OrtRunner
from .torch_runner import TorchRunner

__all__ = ["Runner", "OrtRunner", "TorchRunner"]
