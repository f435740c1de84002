"""'onnx' and 'inspect': export a model, describe an ONNX file or an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..core.defaults import DEFAULT_ONNX_DIR
from ._app import progress
from .options import EXPORT, MODEL, MODEL_SHAPE, OUTPUT_DIR, WEIGHTS, opt
from .render import print_export, print_live, print_onnx, print_plain_plan, print_sidecar


@click.command("onnx")
@MODEL
@WEIGHTS
@MODEL_SHAPE
@EXPORT
@opt("--name", default=None, help="Base name of the files (default: the model name).")
@OUTPUT_DIR.but(default=DEFAULT_ONNX_DIR, show_default=True, help="Directory for the ONNX files and manifest.json.")
def onnx_cmd(model: str, weights: str | None, name: str | None, output_dir: str, **kw: Any) -> None:
    """Export a model to ONNX, simplify it with onnxsim, and verify both against PyTorch.

    Writes OUT/<name>.onnx and OUT/<name>.sim.onnx (metadata embedded) and records both, with
    their verification figures, in OUT/manifest.json.

    \b
    Example:
      nin-export onnx --model nin-cifar10 --weights ckpt.pt -o out/
      nin-export onnx --model nin-imagenet --batch 1 --opset 13 --exporter torchscript
      nin-export onnx --model nin-seed --dynamic-hw --input-size 96x96
    """
    from ..export.exporter import export_model

    opts = EXPORT.parse(kw)
    m = MODEL_SHAPE.build(model, weights, kw)
    res = export_model(m, output_dir, name, weights=weights, options=opts, progress=progress)
    print_export(res, opts.tolerance.describe(), output_dir)


@click.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False))
def inspect_cmd(path: str) -> None:
    """Describe an ONNX file (I/O, opset, op histogram, parameters, metadata) or an engine (its
    sidecar; with a GPU and the matching TensorRT, also its I/O and layers).

    \b
    Example:
      nin-export inspect out/nin-cifar10.sim.onnx
      nin-export inspect out/nin-cifar10.fp16.rtx.engine
    """
    if path.endswith((".engine", ".plan")):
        _inspect_engine(path)
        return
    from ..core.onnx_utils import describe_onnx

    print_onnx(describe_onnx(path))


def _inspect_engine(path: str) -> None:
    from ..trt.inspect import describe_engine, describe_plain_plan

    info, live, why = describe_engine(path)
    if info is None:
        print_plain_plan(path, describe_plain_plan(Path(path)))
    else:
        print_sidecar(path, info)
    print_live(live, why)
