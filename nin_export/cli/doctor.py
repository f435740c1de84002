"""'doctor': what this machine can do, each path smoke-tested, in doctor.json."""

from __future__ import annotations

import click
from rich.markup import escape

from ._app import console, debug, progress
from .options import OUTPUT_FILE
from .render import print_doctor


@click.command("doctor")
@OUTPUT_FILE.but(default="doctor.json", show_default=True, help="Where the JSON report goes.")
def doctor_cmd(output: str) -> None:
    """Check what this machine can do: list its capabilities, smoke-test every path, write doctor.json.

    Lists CPU, GPU and compute capability, driver, CUDA, torch's CUDA, onnxruntime's providers,
    TensorRT and TensorRT-RTX, Jetson model, L4T, nvpmodel, jetson_clocks, DLA cores and power
    sources; then exports a small NiN, makes FP16 and INT8 graphs, builds an engine, runs it
    against onnxruntime, times onnxruntime and samples power. Each check passes, fails or is
    skipped with the reason (an engine does not run without an NVIDIA GPU). Attach doctor.json to
    a bug report. Exit status 1 when a check failed.

    \b
    Example:
      nin-export doctor
      nin-export doctor -o /tmp/jetson-doctor.json
    """
    from ..core._io import check_outputs, write_json
    from ..doctor import run_doctor

    check_outputs([output])
    doc = run_doctor(progress=progress, debug=debug())
    print_doctor(doc)
    write_json(output, doc)
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    console.print(escape(f"wrote {output} ({doc['seconds']:.0f} s)"))
    if failed:
        raise SystemExit(1)
