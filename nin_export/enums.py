"""Enums shared by the library and the CLI (no heavy imports here)."""

from __future__ import annotations

from enum import Enum

__all__ = ["StrEnum", "Precision", "CalibMethod", "Optimizer", "BYTES_PER_PARAM"]


class StrEnum(str, Enum):
    """A string-valued enum that prints as its value (enum.StrEnum needs Python 3.11)."""

    def __str__(self) -> str:
        return self.value


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


BYTES_PER_PARAM = {Precision.FP32: 4, Precision.FP16: 2, Precision.INT8: 1}


class CalibMethod(StrEnum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"

    def ort(self):
        """The matching onnxruntime CalibrationMethod."""
        from onnxruntime.quantization import CalibrationMethod

        return {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[self.value]


class Exporter(StrEnum):
    AUTO = "auto"  # dynamo where the installed torch does it well (2.6+ with onnxscript), else TorchScript
    DYNAMO = "dynamo"  # torch.onnx.export(..., dynamo=True): torch.export + onnxscript
    TORCHSCRIPT = "torchscript"  # the TorchScript-based exporter: torch 2.3 on JetPack 6, deprecated in today's torch


class Optimizer(StrEnum):
    ADAMW = "adamw"
    SGD = "sgd"  # momentum 0.9, Nesterov
