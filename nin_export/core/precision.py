"""The one table of precisions, as ``runtimes.RUNTIMES`` is of runtimes: for each, the bytes a weight takes,
the tolerance its graph is checked with against its FP32 parent, the token in its file names, its marker
in the plots, its CLI flag, and the converter that makes it from an FP32 graph (a function of
``nin_export.quantize.ptq``, named here so that this module imports nothing above it).

A new precision is a row here plus its converter (and its name in the ``Precision`` enum and the schemas).
"""

from __future__ import annotations

from dataclasses import dataclass

from .enums import Precision

__all__ = ["PrecisionInfo", "PRECISIONS", "precision_info", "BYTES_PER_PARAM"]


@dataclass(frozen=True)
class PrecisionInfo:
    precision: Precision
    bytes_per_weight: int  # a weight's bytes at this precision (INT8: biases stay FP32, see models.summary)
    # the check of a graph at this precision against its FP32 parent: max|diff| <= atol + rtol * max|ref|,
    # and cosine >= min_cosine (FP16 and INT8 change the logits, so they are judged by direction)
    atol: float
    rtol: float
    min_cosine: float
    marker: str  # matplotlib marker in the report's plots
    flag: str  # the CLI flag that asks for it (quantize, trt)
    help: str  # the flag's help
    converter: str | None  # the function of nin_export.quantize.ptq that makes it from FP32; None: FP32 itself

    @property
    def name(self) -> str:
        return self.precision.value

    def suffix(self) -> str:
        """The token in a file's name: MODEL.fp16.onnx, MODEL.int8.engine (FP32 has none: MODEL.onnx)."""
        return "" if self.converter is None else f".{self.name}"


PRECISIONS: dict[Precision, PrecisionInfo] = {
    p.precision: p
    for p in (
        PrecisionInfo(Precision.FP32, 4, 1e-4, 1e-3, 0.0, "o", "--fp32", "FP32: the graph as it is.", None),
        PrecisionInfo(
            Precision.FP16,
            2,
            float("inf"),
            0.0,
            0.999,
            "s",
            "--fp16",
            "Float16 compute (float32 I/O unless --no-keep-io-types).",
            "fp16_graph",
        ),
        PrecisionInfo(
            Precision.INT8,
            1,
            float("inf"),
            0.0,
            0.95,
            "^",
            "--int8",
            "INT8 post-training quantization as explicit Q/DQ.",
            "int8_graph",
        ),
    )
}

BYTES_PER_PARAM = {p: info.bytes_per_weight for p, info in PRECISIONS.items()}


def precision_info(precision: Precision | str) -> PrecisionInfo:
    """The row of a precision, or ValueError naming the precisions there are."""
    try:
        return PRECISIONS[Precision(precision)]
    except ValueError:
        raise ValueError(f"unknown precision '{precision}': one of {', '.join(p.value for p in PRECISIONS)}") from None
