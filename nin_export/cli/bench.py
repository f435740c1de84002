"""'bench' and 'report': measure NiN against its twin on every runtime, and render the results."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..core.defaults import DEFAULT_BATCHES, DEFAULT_DATA, DEFAULT_MODEL
from ..core.parse import cap_threads
from ..runtimes import runtime_help
from ._app import console, err_console, progress_bar, warn
from .options import BASELINE, BASELINE_WEIGHTS, POWER, TIMING
from .render import print_report


@click.command("bench")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="NiN variant to measure.")
@BASELINE
@click.option("--backends", default=None, metavar="LIST", help=f"Comma-separated runtimes (default: every one): {runtime_help()}.")
@click.option("--precisions", default=None, metavar="LIST", help="fp32,fp16,int8 (default: all three).")
@click.option(
    "--batch", "batches", default=None, metavar="LIST", help=f"Batch sizes (default {','.join(map(str, DEFAULT_BATCHES))})."
)
@click.option(
    "--threads", type=int, default=None, help="CPU threads for the CPU runtimes: torch, onnxruntime, OpenVINO (default: theirs)."
)
@TIMING
@POWER
@click.option(
    "--cuda-graph",
    is_flag=True,
    default=False,
    help="TensorRT and PyTorch CUDA rows: capture the compute in a CUDA graph, replay it.",
)
@click.option(
    "--streams",
    type=int,
    default=1,
    show_default=True,
    help="GPU rows: also measure throughput over N streams (trtexec's --infStreams).",
)
@click.option(
    "--verify-trt",
    is_flag=True,
    default=False,
    help="Run each engine through Polygraphy's TrtRunner and nin-export's: outputs must match and host medians "
    "agree within 25% (needs a GPU and polygraphy).",
)
@click.option(
    "--data",
    default=DEFAULT_DATA,
    show_default=True,
    metavar="SRC",
    help="Held-out reference images and INT8 calibration ('none' to skip).",
)
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Checkpoint for --model (random init if omitted).")
@BASELINE_WEIGHTS
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A TensorRT engine of --model to measure as it is, repeatable (one per precision); a plain plan "
    "without a sidecar (trtexec's) is accepted with a warning.",
)
@click.option(
    "--baseline-engine", "baseline_engines", multiple=True, type=click.Path(dir_okay=False), help="The same for --baseline."
)
@click.option("-o", "--output-dir", default="bench", show_default=True, help="Directory for results.json and artifacts.")
@click.option("--report/--no-report", default=True, show_default=True, help="Render the report into OUT/report afterwards.")
def bench_cmd(report: bool, **kw: Any) -> None:
    """Measure NiN against its FC-headed twin on every runtime: latency, throughput, memory, size, agreement.

    Every model x runtime x precision x batch becomes a row with a status (ok, failed with the
    reason, or skipped with the reason: a runtime not installed here, a GPU runtime without a GPU).
    Results go to OUT/results.json, written after every row, so Ctrl-C keeps what was finished.

    \b
    Example:
      nin-export bench
      nin-export bench --model nin-imagenet --baseline fc-imagenet --backends torch,ort,trt --batch 1,16
      nin-export bench --precisions fp32,int8 --threads 2 --min-ms 1000 -o bench/quick
    """
    from ..bench.run import BenchConfig, given_engines, parse_bench_lists, run_bench

    timing, power = TIMING.parse(kw), POWER.parse(kw)
    data = kw.pop("data")
    cfg = BenchConfig(
        model=kw.pop("model"),
        baseline=kw.pop("baseline"),
        out_dir=kw.pop("output_dir"),
        threads=kw.pop("threads"),
        timing=timing,
        power=power,
        data=None if data.lower() == "none" else data,
        cuda_graph=kw.pop("cuda_graph"),
        streams=kw.pop("streams"),
        verify_trt=kw.pop("verify_trt"),
    )
    parse_bench_lists(cfg, kw.pop("backends"), kw.pop("precisions"), kw.pop("batches"))
    cfg.threads, note = cap_threads(cfg.threads)
    names = [n for n, _ in cfg.pair()]
    cfg.weights = {n: w for n, w in zip(names, (kw.pop("weights"), kw.pop("baseline_weights"))) if w}
    warn([note] if note else [])
    warn(given_engines(cfg, dict(zip(names, (list(kw.pop("engines")), list(kw.pop("baseline_engines")))))))
    with progress_bar() as bar:
        task = bar.add_task("starting", total=None)
        try:
            res = run_bench(cfg, progress=lambda m, d, t: bar.update(task, description=escape(m), completed=d, total=t))
        except KeyboardInterrupt:
            bar.stop()
            err_console.print(escape(f"interrupted: the rows finished so far are in {Path(cfg.out_dir) / 'results.json'}"))
            sys.exit(130)
    counts = {s: sum(r["status"] == s for r in res["rows"]) for s in ("ok", "failed", "skipped")}
    console.print(
        escape(
            f"{len(res['rows'])} rows: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped; "
            f"results {res['path']}"
        )
    )
    for r in res["rows"]:
        if r["status"] == "failed":
            err_console.print(
                f"[red]failed[/] {r['model']} {r['backend']} {r['precision']} batch {r['batch']}: {escape(str(r['reason']))}"
            )
        for w in (r.get("gpu_split") or {}).get("warnings") or []:  # trtexec's: enqueue- or transfer-bound, unstable
            err_console.print(escape(f"warning: {r['model']} {r['backend']} {r['precision']} batch {r['batch']}: {w}"))
    _print_crosschecks(res)
    if report:
        _print_report([res["path"]], os.fspath(Path(cfg.out_dir) / "report"))


def _print_crosschecks(res: dict[str, Any]) -> None:
    for name, info in res["models"].items():
        for prec, c in (info.get("trt_crosscheck") or {}).items():
            if c["status"] == "skipped" or "median_ms_polygraphy" not in c:
                err_console.print(escape(f"verify-trt {name} {prec}: {c['status']}: {c.get('reason')}"))
                continue
            console.print(
                escape(
                    f"verify-trt {name} {prec}: {c['status']}: outputs {'match' if c['outputs_match'] else 'differ'} "
                    f"({c['outputs']}); host median {c['median_ms_nin_export']:.3f} ms nin-export vs "
                    f"{c['median_ms_polygraphy']:.3f} ms Polygraphy ({c['latency_tolerance']})"
                )
            )


def _print_report(paths: list[str], out_dir: str) -> None:
    from ..bench.report import render_report

    print_report(render_report(paths, out_dir))


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output-dir", default="report", show_default=True, help="Directory for report.md, results.csv and plots.")
def report_cmd(results: tuple[str, ...], output_dir: str) -> None:
    """Render Markdown, CSV and PNG plots from benchmark JSON; several files merge into one comparison.

    \b
    Example:
      nin-export report bench/results.json -o report/
      nin-export report jetson/results.json desktop/results.json -o compare/
    """
    _print_report(list(results), output_dir)
