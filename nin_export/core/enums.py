"""Enums shared by the library and the CLI (no heavy imports here)."""

from __future__ import annotations

from enum import Enum

__all__ = ["StrEnum", "Precision", "CalibMethod", "Int8Target", "Quantizer", "Optimizer"]


class StrEnum(str, Enum):
    """A string-valued enum that prints as its value (enum.StrEnum needs Python 3.11)."""

    def __str__(self) -> str:
        return self.value


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


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


class Int8Target(StrEnum):
    """Where an INT8 graph is meant to run: its Q/DQ placement and integer types."""

    TENSORRT = "tensorrt"  # int8 symmetric, Q/DQ on the inputs of Conv/Gemm/MatMul only (TensorRT's rules)
    ORT_CPU = "ort-cpu"  # the CPU runtimes' layout (onnxruntime, OpenVINO): uint8 asymmetric activations, every op quantized


class Quantizer(StrEnum):
    ORT = "ort"  # onnxruntime.quantization (built in)
    MODELOPT = "modelopt"  # NVIDIA ModelOpt's ONNX PTQ (modelopt.onnx.quantization), an optional extra


class Exporter(StrEnum):
    AUTO = "auto"  # dynamo where the installed torch does it well (2.6+ with onnxscript), else TorchScript
    DYNAMO = "dynamo"  # torch.onnx.export(..., dynamo=True): torch.export + onnxscript
    TORCHSCRIPT = "torchscript"  # the TorchScript-based exporter: torch 2.3 on JetPack 6, deprecated in today's torch


class Optimizer(StrEnum):
    ADAMW = "adamw"
    SGD = "sgd"  # momentum 0.9, Nesterov
