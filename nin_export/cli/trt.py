"""'trt': build a TensorRT engine and its sidecar."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..core.defaults import DEFAULT_ONNX_DIR
from ..core.enums import Precision
from ._app import console, progress
from .options import BUILD, CONVERSION, CONVERT, INT8_ONLY, OUTPUT_FILE, given, precision_flags, refuse_unused
from .render import print_build

PRECISION = precision_flags(
    fp32="Build from an FP32 graph as it is.",
    fp16="FP16: converts an FP32 graph first (as 'nin-export quantize --fp16').",
    int8="INT8: quantizes an FP32 graph to Q/DQ first (needs --calib-data).",
)


def _newest_onnx() -> str:
    """No path given: the newest FP32 ONNX in the default output directory's manifest, and said."""
    from ..core.manifest import MANIFEST_NAME, default_onnx

    found = default_onnx(DEFAULT_ONNX_DIR)
    console.print(escape(f"using {found} (the newest FP32 ONNX in {Path(DEFAULT_ONNX_DIR) / MANIFEST_NAME})"))
    return os.fspath(found)


def _refuse_unused(onnx_path: str, precision: Precision | None) -> None:
    """trt converts an FP32 graph only for --fp16/--int8: quantize options anywhere else would do nothing."""
    if precision is Precision.FP16:
        refuse_unused(INT8_ONLY, "with --fp16 (INT8 options)")
    if precision not in (Precision.FP16, Precision.INT8):
        refuse_unused(CONVERSION, "without --fp16 or --int8 (the graph is built as it is)")
    elif given(CONVERSION) and Path(onnx_path).is_file():
        from ..core.onnx_utils import graph_precision, load_onnx

        graph = graph_precision(load_onnx(onnx_path))
        if graph is precision:
            refuse_unused(CONVERSION, f"on a graph that is already {graph.value.upper()} (it is built as it is)")


@click.command("trt")
@click.argument("onnx_path", metavar="[MODEL.onnx]", type=click.Path(dir_okay=False), required=False)
@PRECISION
@BUILD.part("builder_fp16")
@CONVERT
@BUILD.part("batch", "min_shape", "opt_shape", "max_shape", "workspace", "timing_cache", "backend", "targets")
@OUTPUT_FILE.but(help="Engine file (default beside the ONNX: <name>.<precision>[.rtx].engine); the sidecar is <engine>.json.")
def trt_cmd(onnx_path: str | None, output: str | None, **kw: Any) -> None:
    """Build a TensorRT engine (a plain plan trtexec can load) and its JSON sidecar.

    Precision lives in the graph: the network is strongly typed, so one ONNX serves TensorRT 10
    (Jetson), TensorRT 11 and TensorRT-RTX. TensorRT-RTX builds ahead of time without a GPU.
    --fp16/--int8 on an FP32 graph convert it first, with every calibration option of 'quantize'.

    Without MODEL.onnx, the newest FP32 ONNX recorded in out/manifest.json is used (what 'nin-export
    onnx' just wrote), and said.

    \b
    Example:
      nin-export trt --fp16
      nin-export trt out/nin-cifar10.sim.onnx --fp16
      nin-export trt out/nin-cifar10.sim.onnx --int8 --calib-data digits --calib-count 500 --batch 1:8:32
      nin-export trt out/nin-cifar10.int8.onnx --backend tensorrt-rtx --target SM86 --target SM89
    """
    from ..trt.convert import engine_from_onnx

    onnx_path = onnx_path or _newest_onnx()
    precision = PRECISION.parse(kw)
    opts = BUILD.parse(kw)
    _refuse_unused(onnx_path, precision)
    qopts = CONVERT.parse(kw, precision) if precision is not None and precision is not Precision.FP32 else None
    print_build(engine_from_onnx(onnx_path, precision, opts, qopts, output=output, progress=progress))
