"""'bench' and 'report': measure NiN against its twin on every runtime, and render the results.

The bench options are as they were; BenchConfig's construction moves to the library when bench is reworked."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..core.defaults import DEFAULT_BATCHES, DEFAULT_DATA, DEFAULT_IDLE_S, DEFAULT_IDLE_SETTLE_S, DEFAULT_MODEL
from ..core.enums import Precision
from ..core.errors import NinExportError
from ..core.parse import cap_threads
from ..runners.timing import TimingOptions
from ..runtimes import RUNTIMES, get_runtime, runtime_help
from ._app import console, err_console, progress_bar, warn
from .options import TIMING
from .render import print_report


def _given_engines(cfg: Any, engines: tuple[str, ...], baseline_engines: tuple[str, ...]) -> None:
    from ..bench.run import engine_precision

    for (name, _), paths in zip(cfg.pair(), (engines, baseline_engines)):
        for p in paths:
            if not Path(p).is_file():
                raise NinExportError(f"engine '{p}' not found")
            prec, note = engine_precision(Path(p), name)
            if note:
                warn([note])
            given = cfg.artifacts.setdefault(name, {})
            if f"engine-{prec.value}" in given:
                raise NinExportError(
                    f"two {prec.value.upper()} engines of {name}: '{given[f'engine-{prec.value}']}' and '{p}'; "
                    f"give one engine per precision"
                )
            given[f"engine-{prec.value}"] = p


def _bench_config(
    model: str,
    baseline: str | None,
    backends: str | None,
    precisions: str | None,
    batches: str | None,
    threads: int | None,
    timing: TimingOptions,
    data: str,
    weights: str | None,
    baseline_weights: str | None,
    output_dir: str,
    engines: tuple[str, ...] = (),
    baseline_engines: tuple[str, ...] = (),
    power: str = "auto",
    idle_s: float = DEFAULT_IDLE_S,
    cuda_graph: bool = False,
    streams: int = 1,
    verify_trt: bool = False,
):
    from ..bench.power import PowerOptions
    from ..bench.run import BenchConfig
    from ..core.parse import parse_batch_list, parse_choice_list

    cfg = BenchConfig(
        model=model,
        baseline=baseline,
        out_dir=output_dir,
        threads=threads,
        timing=timing,
        data=None if data.lower() == "none" else data,
        power=PowerOptions(source=power, idle_s=idle_s),
        cuda_graph=cuda_graph,
        streams=streams,
        verify_trt=verify_trt,
    )
    if backends:
        names = [r.alias for r in RUNTIMES] + [r.name for r in RUNTIMES]
        cfg.runtimes = parse_choice_list(backends, "backends", names, same=lambda v: get_runtime(v).name)
    if precisions:
        cfg.precisions = [Precision(p) for p in parse_choice_list(precisions, "precisions", [p.value for p in Precision])]
    if batches:
        cfg.batches = parse_batch_list(batches)
    cfg.threads, note = cap_threads(threads)
    warn([note] if note else [])
    cfg.weights = {n: w for (n, _), w in zip(cfg.pair(), (weights, baseline_weights)) if w}
    _given_engines(cfg, engines, baseline_engines)
    return cfg


@click.command("bench")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="NiN variant to measure.")
@click.option("--baseline", "-b", default=None, help="Model to compare with (default: the model's FC-headed twin).")
@click.option("--backends", default=None, metavar="LIST", help=f"Comma-separated runtimes (default: every one): {runtime_help()}.")
@click.option("--precisions", default=None, metavar="LIST", help="fp32,fp16,int8 (default: all three).")
@click.option(
    "--batch", "batches", default=None, metavar="LIST", help=f"Batch sizes (default {','.join(map(str, DEFAULT_BATCHES))})."
)
@click.option(
    "--threads", type=int, default=None, help="CPU threads for the CPU runtimes: torch, onnxruntime, OpenVINO (default: theirs)."
)
@TIMING
@click.option(
    "--power",
    type=click.Choice(["auto", "none", "ina3221", "tegrastats", "nvml", "rapl"]),
    default="auto",
    show_default=True,
    help="Power source for energy per image: Jetson INA3221 sysfs or tegrastats, NVML (desktop GPUs), RAPL (x86); "
    "auto takes the first this machine has.",
)
@click.option(
    "--idle-s",
    type=float,
    default=DEFAULT_IDLE_S,
    show_default=True,
    help=f"Idle power is sampled this long (1..60 s; 0: not measured), once before any work, after "
    f"{DEFAULT_IDLE_SETTLE_S:g} s with nothing running.",
)
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
@click.option("--baseline-weights", default=None, type=click.Path(dir_okay=False), help="Checkpoint for --baseline.")
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
    from ..bench.run import run_bench

    cfg = _bench_config(timing=TIMING.parse(kw), **kw)
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
