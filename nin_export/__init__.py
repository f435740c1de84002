"""nin-export: Network-in-Network from PyTorch to ONNX, FP16/INT8 and TensorRT, measured against an FC-headed twin."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("nin-export")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"

from .core.errors import NinExportError  # noqa: E402

__all__ = ["__version__", "NinExportError"]
