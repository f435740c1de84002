"""Enums shared by the library and the CLI (no heavy imports here)."""

from __future__ import annotations

from enum import Enum

__all__ = ["Precision", "CalibMethod", "BYTES_PER_PARAM"]


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    def __str__(self) -> str:
        return self.value


BYTES_PER_PARAM = {Precision.FP32: 4, Precision.FP16: 2, Precision.INT8: 1}


class CalibMethod(str, Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"

    def __str__(self) -> str:
        return self.value

    def ort(self):
        """The matching onnxruntime CalibrationMethod."""
        from onnxruntime.quantization import CalibrationMethod

        return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}[self.value]
