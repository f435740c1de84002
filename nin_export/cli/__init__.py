"""The `nin-export` command line: parses options, calls the library, prints. No logic lives here.

``_app`` is the frame (the error boundary, consoles, progress), ``options`` the option groups declared
once, ``render`` the printing; one module per command family registers its commands below. Start-up
imports no torch, onnxruntime, onnxsim or matplotlib: each command imports what it needs when it runs.
"""

from __future__ import annotations

import click

from .. import __version__
from ._app import Cli, console, err_console, one_line
from .bench import bench_cmd, report_cmd
from .doctor import doctor_cmd
from .export import inspect_cmd, onnx_cmd
from .models import models_cmd, summary_cmd
from .pipeline import pipeline_cmd
from .quantize import quantize_cmd, sensitivity_cmd
from .train import eval_cmd, train_cmd
from .trt import trt_cmd

__all__ = ["cli", "main", "console", "err_console", "one_line"]

_one_line = one_line  # the name tests (and older callers) import


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nin-export")
def cli() -> None:
    """Network-in-Network from PyTorch to ONNX, FP16/INT8 and TensorRT, measured against its FC-headed twin.

    Every mistake ends in one 'error:' line and exit status 1; 'nin-export --debug COMMAND ...' (or
    NIN_EXPORT_DEBUG=1) prints the traceback too, for a bug report.

    \b
    Example:
      nin-export models
      nin-export onnx --model nin-cifar10 -o out/
      nin-export inspect out/nin-cifar10.sim.onnx
    """


for _command in (
    models_cmd,
    summary_cmd,
    onnx_cmd,
    inspect_cmd,
    quantize_cmd,
    sensitivity_cmd,
    doctor_cmd,
    trt_cmd,
    bench_cmd,
    report_cmd,
    train_cmd,
    eval_cmd,
    pipeline_cmd,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="nin-export")
