"""One error type for everything a user can get wrong.

The CLI prints ``str(error)`` on one line and exits non-zero; messages say what is wrong and what
to do about it.
"""

from __future__ import annotations

__all__ = [
    "NinExportError",
    "UnknownModelError",
    "WeightsError",
    "InputSizeError",
    "OnnxFileError",
    "OutputPathError",
    "VerificationError",
    "BackendUnavailableError",
    "FileFormatError",
    "ModelOptionError",
    "first_line",
]


class NinExportError(Exception):
    """Base class of every error a user can cause."""


class UnknownModelError(NinExportError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(NinExportError):
    """A weights file is missing, corrupt or belongs to another model."""


class InputSizeError(NinExportError, ValueError):
    """An input size the model cannot take."""


class OnnxFileError(NinExportError):
    """A missing or corrupt ONNX file."""


class OutputPathError(NinExportError):
    """An output location that cannot be written."""


class VerificationError(NinExportError):
    """An artifact disagrees with its parent beyond tolerance."""


class BackendUnavailableError(NinExportError):
    """A backend (TensorRT, CUDA, ...) that is not installed or cannot run here."""


class ModelOptionError(NinExportError, ValueError):
    """A model option out of range (num_classes, in_channels, fc_width below 1, ...)."""


class FileFormatError(NinExportError):
    """A file nin-export reads (sidecar, calibration cache, results, pipeline state, config) with the wrong structure."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (at most ``limit`` characters), or its type name."""
    for line in str(e).strip().splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(e).__name__
