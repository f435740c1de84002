"""'quantize' and 'sensitivity': FP16 and INT8 graphs, and the per-layer cost of INT8."""

from __future__ import annotations

from typing import Any

import click

from ..core.enums import Precision
from ..core.errors import NinExportError
from ._app import progress
from .options import CALIB, FP16_ONLY, INT8_ONLY, OUTPUT_DIR, OUTPUT_FILE, QUANTIZE, precision_flags, refuse_unused
from .render import print_quantize, print_sensitivity

PRECISION = precision_flags(
    fp16="Float16 compute (float32 I/O unless --no-keep-io-types).",
    int8="INT8 post-training quantization as explicit Q/DQ.",
)


@click.command("quantize")
@click.argument("onnx_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@PRECISION
@QUANTIZE
@OUTPUT_FILE.but(help="Output file (default: beside the input, <name>.fp16.onnx / <name>.int8.onnx).")
def quantize_cmd(onnx_path: str, output: str | None, **kw: Any) -> None:
    """Make an FP16 or INT8 (Q/DQ) ONNX that every TensorRT accepts, checked against its FP32 parent.

    INT8 is symmetric (zero points 0), per-channel on the weights' output-channel axis, biases in
    float, Q/DQ on the inputs of Conv/Gemm only (TensorRT's rules), calibrated on real images
    preprocessed as the ONNX metadata says. The result is compared with the parent on held-out
    images (top-1 agreement, cosine, max abs error) and recorded in the manifest beside it, with
    the layers kept in float.

    \b
    Example:
      nin-export quantize out/nin-cifar10.sim.onnx --fp16
      nin-export quantize out/nin-cifar10.sim.onnx --int8 --calib-data digits
      nin-export quantize out/nin-imagenet.sim.onnx --int8 --calib-data ~/imagenet-val --calib-count 500
      nin-export quantize out/nin-imagenet.sim.onnx --int8 --calib-data digits --min-agreement 0.99
      nin-export quantize out/nin-cifar10.sim.onnx --int8 --calib-data digits --exclude node_conv2d --quantizer modelopt
    """
    from ..quantize.ptq import quantize

    precision = PRECISION.parse(kw)
    if precision is None:
        raise NinExportError("choose a precision: --fp16 or --int8")
    if precision is Precision.FP16:
        refuse_unused(INT8_ONLY, "with --fp16 (INT8 options)")
    else:
        refuse_unused(FP16_ONLY, "with --int8 (an FP16 option)")
    res = quantize(onnx_path, QUANTIZE.parse(kw, precision), output, progress=progress)
    print_quantize(res)


@click.command("sensitivity")
@click.argument("onnx_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@CALIB
@OUTPUT_DIR.but(
    type=click.Path(file_okay=False), help="Where sensitivity.json/.md/.png go (default: <name>.sensitivity/ beside the model)."
)
def sensitivity_cmd(onnx_path: str, output_dir: str | None, **kw: Any) -> None:
    """Rank an FP32 model's layers by how much INT8 costs each: quantize one layer at a time.

    Each Conv/Gemm layer alone is put in INT8 (Q/DQ on its inputs, calibrated as 'quantize --int8'
    does) and compared with FP32 on held-out images: top-1 agreement and the logits' SQNR. Writes a
    JSON file, a Markdown table and a bar chart, most sensitive first. Keep the top layers in float
    with 'quantize --int8 --exclude LAYER', or let '--min-agreement P' pick them in this order.

    \b
    Example:
      nin-export sensitivity out/nin-cifar10.sim.onnx --calib-data digits
      nin-export sensitivity out/nin-imagenet.sim.onnx --calib-data ~/val --eval-count 500 -o sens/
    """
    from ..quantize.ptq import analyze
    from ..quantize.sensitivity import sensitivity_outputs, write_sensitivity

    out = sensitivity_outputs(onnx_path, output_dir)
    s = analyze(onnx_path, CALIB.parse(kw, Precision.INT8), progress=progress)
    print_sensitivity(s, write_sensitivity(s, out))
