"""'pipeline': every step for a NiN and its twin, resumable; options given here override the settings file."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from ..core._format import fmt_bytes
from ..core.defaults import DEFAULT_EPOCHS, DEFAULT_MODEL
from ..core.errors import NinExportError
from ._app import console, progress, warn
from .options import BASELINE, BASELINE_WEIGHTS
from .render import print_headlines


@click.command("pipeline")
@click.option("--model", "-m", default=None, help=f"NiN variant (default {DEFAULT_MODEL}).")
@BASELINE
@click.option("--data", default=None, metavar="SRC", help="Labelled images: training, calibration, evaluation (default digits).")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Checkpoint for --model: skip its training.")
@BASELINE_WEIGHTS
@click.option("--epochs", type=int, default=None, help=f"Most training epochs (default {DEFAULT_EPOCHS}).")
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="JSON or TOML file of pipeline settings ([train], [quantize], [build], [bench] tables as in "
    "PipelineConfig); options given here win.",
)
@click.option("-o", "--output-dir", default=None, help="Directory for every artifact and the report (default runs/default).")
def pipeline_cmd(model, baseline, data, weights, baseline_weights, epochs, config_file, output_dir) -> None:
    """Everything for a NiN and its FC-headed twin: train (or take weights), export, simplify, FP16,
    INT8, engines where a TensorRT is installed, accuracy of every artifact, benchmark, report.

    Steps whose inputs and options are unchanged are skipped (and say so); after a failure, a rerun
    resumes where it stopped.

    \b
    Example:
      nin-export pipeline
      nin-export pipeline --model nin-imagenet --data ~/imagenette --epochs 10 -o runs/imagenette
      nin-export pipeline --config pipeline.toml
    """
    from ..pipeline import PipelineConfig, load_config, run_pipeline

    cfg = load_config(config_file) if config_file else PipelineConfig()
    cfg.override(model=model, baseline=baseline, data=data, out_dir=output_dir, epochs=epochs, weights=(weights, baseline_weights))
    names = cfg.models()
    summary = run_pipeline(cfg, progress=progress)
    table = Table(title=f"{names[0]} vs {names[1]}: accuracy of every artifact on held-out {escape(cfg.data)}")
    for col in ("model", "artifact", "top-1", "size"):
        table.add_column(col, justify="right" if col in ("top-1", "size") else "left", no_wrap=True)
    for m, info in summary["models"].items():
        for label, path in info["artifacts"].items():
            r = info["accuracy"].get(label) or {}
            table.add_row(m, label, f"{r['top1']:.1%}" if "top1" in r else "-", fmt_bytes(Path(path).stat().st_size))
    console.print(table)
    print_headlines(summary["headline"], with_machine=False)
    console.print(f"ran {len(summary['ran'])} steps, skipped {len(summary['skipped'])} up to date")
    console.print(escape(f"report: {summary['report']}"))
    if summary["failed"]:  # everything that could run did; the run still failed
        warn([f"{stage} failed: {why}" for stage, why in summary["failed"].items()])
        raise NinExportError(f"{len(summary['failed'])} step(s) failed: {', '.join(summary['failed'])} (see the warnings above)")
