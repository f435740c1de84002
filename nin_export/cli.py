"""The `nin-export` command line: parses options, calls the library, prints. No logic lives here."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .core._format import fmt_bytes, fmt_int, fmt_macs
from .core._proc import Terminated, handle_termination, signal_name
from .core.defaults import (
    DEFAULT_AGREEMENT_FLOOR,
    DEFAULT_BATCH_PROFILE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCHES,
    DEFAULT_CACHE_DIR,
    DEFAULT_CALIB_COUNT,
    DEFAULT_DATA,
    DEFAULT_EPOCHS,
    DEFAULT_EVAL_COUNT,
    DEFAULT_FC_WIDTH,
    DEFAULT_IDLE_S,
    DEFAULT_IDLE_SETTLE_S,
    DEFAULT_LR,
    DEFAULT_MODEL,
    DEFAULT_ONNX_DIR,
    DEFAULT_PATIENCE,
    DEFAULT_RTX_TARGETS,
    DEFAULT_WORKSPACE_MIB,
    DYNAMO_OPSET,
    HEAD_BIAS,
    MIN_CALIB_IMAGES,
    TORCHSCRIPT_OPSET,
)
from .core.enums import CalibMethod, Exporter, Int8Target, Optimizer, Precision, Quantizer
from .core.errors import NinExportError, first_line
from .core.parse import cap_threads
from .runners.timing import TimingOptions
from .runtimes import RUNTIMES, get_runtime, runtime_help
from .trt._api import TrtFlavour

# Piped output (CI logs, files) gets a wide fixed width so figures are never cut.
console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 132)
err_console = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 132)


DEBUG_ENV = "NIN_EXPORT_DEBUG"


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


# What to lower, per command, when memory runs out
_OOM_OPTION = {
    "onnx": "--batch or --input-size",
    "train": "--batch-size or --input-size",
    "bench": "--batch",
    "quantize": "--calib-count or --eval-count",
    "sensitivity": "--calib-count or --eval-count",
    "trt": "--batch (the profile's maximum) or --workspace",
    "eval": "--limit",
    "pipeline": "the [train] batch_size or the [bench] batches",
}
_OOM_SIGNS = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc", "failed to allocate")


def _out_of_memory(e: BaseException, command: str | None) -> str | None:
    """One line for running out of memory anywhere (torch, onnxruntime, numpy, TensorRT), naming what to lower."""
    text = str(e).lower()
    if not isinstance(e, MemoryError) and not any(sign in text for sign in _OOM_SIGNS):
        return None
    what = _OOM_OPTION.get(command or "", "the batch size or input size")
    return f"out of memory ({type(e).__name__}: {first_line(e, 120)}): lower {what}"


def _one_line(e: BaseException, command: str | None = None) -> str:
    """What the user reads: the message of our own errors, the cause of a system error, the type and
    first line of anything else (with the way to see the traceback)."""
    if isinstance(e, NinExportError):
        return str(e)
    if (oom := _out_of_memory(e, command)) is not None:
        return oom
    if isinstance(e, click.ClickException):
        return f"{e.format_message()} (see --help)"
    if isinstance(e, OSError) and e.strerror:
        where = f" '{e.filename}'" if e.filename else ""
        return f"{e.strerror}{where}: free space or choose another path" if e.errno in (28, 27) else f"{e.strerror}{where}"
    return f"unexpected {type(e).__name__}: {first_line(e)} (rerun with --debug for the traceback, and report it)"


class Cli(click.Group):
    """The one boundary: any exception, usage errors included, becomes one ``error:`` line on stderr and
    exit status 1 (Ctrl-C: 130). ``--debug`` or NIN_EXPORT_DEBUG=1 prints the traceback first."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--debug" in argv[:1]:  # a global switch, before the command
            os.environ[DEBUG_ENV] = "1"
            argv = argv[1:]
        if not argv:  # bare 'nin-export': the help, as 'nin-export --help' prints it
            argv = ["--help"]
        if not _debug():  # libraries' own warnings are not the user's business; --debug shows them
            warnings.simplefilter("ignore")
        handle_termination()  # SIGTERM and SIGHUP end a command as Ctrl-C does: temporary files and children cleaned up
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.Abort, KeyboardInterrupt) as e:  # click turns KeyboardInterrupt (and Terminated) into Abort
            sig = e if isinstance(e, Terminated) else e.__cause__ or e.__context__
            if isinstance(sig, Terminated):
                err_console.print(f"interrupted by {signal_name(sig.signum)}: temporary files removed, nothing half-written kept")
                sys.exit(128 + sig.signum)
            err_console.print("interrupted")
            sys.exit(130)
        except Exception as e:  # noqa: BLE001  (the boundary: nothing escapes as a traceback)
            if _debug():
                import traceback

                traceback.print_exc()
            lines = _one_line(e, argv[0] if argv else None).splitlines() or [type(e).__name__]
            err_console.print(f"[bold red]error:[/] {escape(' '.join(line.strip() for line in lines))}", soft_wrap=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _progress(msg: str) -> None:
    err_console.print(f"[dim]-[/] {escape(msg)}")


def _warn(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)


def _bar() -> Progress:
    """A progress bar on a terminal; off a terminal (logs, CI) the per-epoch and per-row lines suffice."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def _print_headlines(heads: list[dict[str, Any]], with_machine: bool = True) -> None:
    """The one headline line per model pair: twin / NiN ratios."""
    for h in heads:
        lat = ", ".join(f"{k} {v:.2f}x" for k, v in h["latency_ratio_batch1"].items() if v)
        who = f"{h['machine']}: " if with_machine else ""
        x = {k: f"{h[k]:.2f}x" if h[k] else "-" for k in ("params_ratio", "fp32_weight_ratio", "macs_ratio")}
        console.print(
            f"[bold]{escape(who)}{escape(h['baseline'])} / {escape(h['model'])}[/]: params {x['params_ratio']}, FP32 "
            f"weights {x['fp32_weight_ratio']}, MACs {x['macs_ratio']}; batch-1 median latency {lat or '-'}"
        )


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


# --- models / summary ---------------------------------------------------------------------------


@cli.command("models")
def models_cmd() -> None:
    """List every model with its parameters, MACs and input shape at its defaults.

    \b
    Example:
      nin-export models
    """
    from .models import create_model, get_spec, list_models
    from .models.summary import summarize

    table = Table(title="nin-export models (defaults)")
    for col, just in (
        ("model", "left"),
        ("head", "left"),
        ("twin", "left"),
        ("input", "left"),
        ("classes", "right"),
        ("params", "right"),
        ("MACs", "right"),
        ("fp32", "right"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for name in list_models():
        spec = get_spec(name)
        s = summarize(create_model(name), (spec.in_channels, *spec.input_size))
        table.add_row(
            name,
            spec.head,
            spec.twin or "-",
            "x".join(map(str, (spec.in_channels, *spec.input_size))),
            str(spec.num_classes),
            fmt_int(s.params),
            fmt_macs(s.macs),
            fmt_bytes(s.params * 4),
        )
    console.print(table)
    console.print(
        "head gap: global average pooling, any input size from the smallest the trunk takes; "
        "head fc: fully connected, input size fixed when built (--input-size)."
    )


def _model_options(f: Callable) -> Callable:
    f = click.option(
        "--fc-width", type=int, default=None, help=f"Hidden width of an fc-* twin's head (default {DEFAULT_FC_WIDTH})."
    )(f)
    f = click.option(
        "--init",
        type=click.Choice(["default", "paper"]),
        default=None,
        help="Weight init when no --weights: modern Kaiming (default) or the paper's Gaussian.",
    )(f)
    f = click.option("--input-size", default=None, metavar="HxW", help="Input height x width, e.g. 32x32 (default: the model's).")(
        f
    )
    f = click.option("--in-channels", type=int, default=None, help="Input channels (default: the model's, 3).")(f)
    f = click.option("--num-classes", type=int, default=None, help="Number of classes (default: the model's).")(f)
    return f


def _build(model: str, weights: str | None = None, **kw: Any):
    from .models import build_model

    try:
        return build_model(model, weights, **kw)
    except ValueError as e:  # num_classes < 1 and the like
        raise NinExportError(str(e)) from None


@cli.command("summary")
@click.argument("model")
@_model_options
def summary_cmd(model: str, **kw: Any) -> None:
    """Per-layer table (output shape, params, MACs) and totals with weight bytes per precision.

    \b
    Example:
      nin-export summary nin-imagenet
      nin-export summary nin-cifar10 --num-classes 100 --input-size 48x48
    """
    from .models.summary import WEIGHT_BYTES_RULE, summarize

    m = _build(model, **kw)
    cfg = m.config
    s = summarize(m, (cfg["in_channels"], *cfg["input_size"]))
    table = Table(title=f"{model}: input {cfg['in_channels']}x{cfg['input_size'][0]}x{cfg['input_size'][1]}")
    for col, just in (("layer", "left"), ("type", "left"), ("output", "left"), ("params", "right"), ("MACs", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for layer in s.layers:
        table.add_row(
            layer.name,
            layer.type,
            "x".join(map(str, layer.output_shape)),
            fmt_int(layer.params) if layer.params else "",
            fmt_int(layer.macs) if layer.macs else "",
        )
    table.add_section()
    table.add_row("total", "", "x".join(map(str, s.output_shape)), fmt_int(s.params), fmt_int(s.macs))
    console.print(table)
    console.print(
        f"params {fmt_int(s.params)}, MACs {fmt_macs(s.macs)} per image; weights "
        + ", ".join(f"{p} {fmt_bytes(b)}" for p, b in s.weight_bytes().items())
    )
    console.print(f"({WEIGHT_BYTES_RULE})")


# --- onnx ----------------------------------------------------------------------------------------


@cli.command("onnx")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="Registered model name (see 'nin-export models').")
@click.option(
    "--weights",
    "-w",
    type=click.Path(dir_okay=False),
    default=None,
    help="State_dict or checkpoint (.pt); loaded with weights_only=True. Random init if omitted.",
)
@_model_options
@click.option(
    "--opset",
    type=int,
    default=None,
    help=f"ONNX opset (default {DYNAMO_OPSET} with the dynamo exporter, {TORCHSCRIPT_OPSET} with TorchScript; "
    f">= 13 for per-channel INT8).",
)
@click.option(
    "--exporter",
    type=click.Choice([e.value for e in Exporter]),
    default=Exporter.AUTO.value,
    show_default=True,
    help="auto: torch.onnx's dynamo exporter where the installed torch does it well (2.6+ with onnxscript), "
    "else the TorchScript-based one (torch 2.3 on JetPack 6).",
)
@click.option("--batch", default=None, metavar="N|dynamic", help="Fixed batch size, or 'dynamic' (default).")
@click.option("--dynamic-hw", is_flag=True, default=False, help="NiN variants: dynamic height and width as well.")
@click.option("--no-simplify", is_flag=True, default=False, help="Skip onnxsim.")
@click.option("--name", default=None, help="Base name of the files (default: the model name).")
@click.option(
    "-o", "--output-dir", default=DEFAULT_ONNX_DIR, show_default=True, help="Directory for the ONNX files and manifest.json."
)
def onnx_cmd(
    model: str,
    weights: str | None,
    opset: int | None,
    exporter: str,
    batch: str | None,
    dynamic_hw: bool,
    no_simplify: bool,
    name: str | None,
    output_dir: str,
    **kw: Any,
) -> None:
    """Export a model to ONNX, simplify it with onnxsim, and verify both against PyTorch.

    Writes OUT/<name>.onnx and OUT/<name>.sim.onnx (metadata embedded) and records both, with
    their verification figures, in OUT/manifest.json.

    \b
    Example:
      nin-export onnx --model nin-cifar10 --weights ckpt.pt -o out/
      nin-export onnx --model nin-imagenet --batch 1 --opset 13 --exporter torchscript
      nin-export onnx --model nin-seed --dynamic-hw --input-size 96x96
    """
    from .core.parse import parse_batch
    from .export.exporter import ExportOptions, export_model

    opts = ExportOptions(
        opset=opset, batch=parse_batch(batch), dynamic_hw=dynamic_hw, simplify=not no_simplify, exporter=Exporter(exporter)
    )
    m = _build(model, weights, **kw)
    res = export_model(m, output_dir, name, weights=weights, options=opts, progress=_progress)
    tol = opts.tolerance.describe()
    for fname, agree in res.verification.items():
        console.print(f"[green]verified[/] {escape(fname)}: {agree.describe()}  (tolerance {tol})")
    if res.sim_path:
        console.print(f"nodes: {res.nodes} -> {res.sim_nodes} after onnxsim")
    console.print(
        escape(
            f"wrote {res.onnx_path}"
            + (f" and {res.sim_path}" if res.sim_path else "")
            + f"; manifest {Path(output_dir) / 'manifest.json'}"
        )
    )


# --- inspect -------------------------------------------------------------------------------------


@cli.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False))
def inspect_cmd(path: str) -> None:
    """Describe an ONNX file (I/O, opset, op histogram, parameters, metadata) or an engine (its
    sidecar; with a GPU and the matching TensorRT, also its I/O and layers).

    \b
    Example:
      nin-export inspect out/nin-cifar10.sim.onnx
      nin-export inspect out/nin-cifar10.fp16.rtx.engine
    """
    from .core.onnx_utils import describe_onnx

    if path.endswith((".engine", ".plan")):
        _inspect_engine(path)
        return
    info = describe_onnx(path)
    console.print(escape(f"{info.path}") + f"  {fmt_bytes(info.bytes)}, opset {info.opset}, producer {escape(info.producer)}")
    for kind, items in (("input", info.inputs), ("output", info.outputs)):
        for io in items:
            console.print(escape(f"  {kind:6} {io['name']}: {io['dtype']} [{', '.join(map(str, io['shape']))}]"))
    declared = info.metadata.get("params")
    params = fmt_int(info.params)
    if isinstance(declared, int) and declared != info.params:
        params = f"{fmt_int(declared)} (model); {params} stored, identical initializers shared"
    console.print(f"  params {params}")
    console.print(
        escape(f"  {sum(info.op_histogram.values())} nodes: " + ", ".join(f"{op} x{n}" for op, n in info.op_histogram.items()))
    )
    if info.metadata:
        table = Table(title="metadata", show_header=False)
        table.add_column("key")
        table.add_column("value")
        for k, v in info.metadata.items():
            table.add_row(escape(k), escape(str(v)))
        console.print(table)


def _inspect_engine(path: str) -> None:
    from .trt.inspect import describe_engine, describe_plain_plan

    side, live, why = describe_engine(path)
    if side is None:
        plain = describe_plain_plan(Path(path))
        err_console.print(f"[yellow]warning:[/] {escape(plain['note'])}", soft_wrap=True)
        console.print(escape(f"{path}  {fmt_bytes(plain['bytes'])}, sha256 {plain['sha256'][:16]}..., plain plan (no sidecar)"))
        console.print(escape(f"  {plain['validity']}"))
    else:
        _print_sidecar(path, side)
    if live is None:
        console.print(f"  [dim]engine not loaded: {escape(why)}[/]")
        return
    console.print(f"  device memory {fmt_bytes(live['device_memory_bytes'])}; {live['num_layers']} layers")
    for layer in live["layers"]:
        console.print(escape(f"    {layer}"))


def _print_sidecar(path: str, side: dict[str, Any]) -> None:
    console.print(
        escape(
            f"{path}  {fmt_bytes(side['bytes'])}, {side['flavour']} {side['trt_version']}, {side['precision']} "
            f"({side['precision_path']})"
        )
    )
    gpu = side.get("gpu") or {}
    console.print(
        "  targets: "
        + (
            ", ".join(side["targets"])
            if side["targets"]
            else f"{gpu.get('name')} (compute capability {gpu.get('compute_capability')})"
        )
    )
    for io in side["io"]:
        console.print(escape(f"  {io['mode']:6} {io['name']}: {io['dtype']} [{', '.join(map(str, io['shape']))}]"))
    _print_profiles(side["profiles"][0])
    src = side["source_onnx"]
    console.print(
        escape(
            f"  from {src['file']} (sha256 {src['sha256'][:16]}...), built {side['created']} in "
            f"{side['build_seconds']} s by {side.get('producer', '?')}"
        )
    )


def _print_profiles(profiles: dict[str, dict[str, list[int]]]) -> None:
    for name, p in profiles.items():
        console.print(
            escape(
                f"  profile {name}: min {'x'.join(map(str, p['min']))}, opt {'x'.join(map(str, p['opt']))}, "
                f"max {'x'.join(map(str, p['max']))}"
            )
        )


# --- quantize ------------------------------------------------------------------------------------


def _stack(*options: Callable) -> Callable[[Callable], Callable]:
    """One decorator applying ``options`` so that --help lists them in this order."""

    def apply(f: Callable) -> Callable:
        for opt in reversed(options):
            f = opt(f)
        return f

    return apply


# The calibration options that 'quantize', 'trt --int8/--fp16' and 'sensitivity' share.
_calib_options = _stack(
    click.option(
        "--calib-data",
        default=None,
        metavar="SRC",
        help="Images: a directory (recursive), a .npy/.npz in model layout, or 'digits' (built in). "
        "FP16 uses it for the held-out check only (default digits).",
    ),
    click.option(
        "--calib-method",
        type=click.Choice([m.value for m in CalibMethod]),
        default=CalibMethod.MINMAX.value,
        show_default=True,
        help="Range calibration: minmax (the observed range), entropy (TensorRT's: the least-KL threshold of |x|, "
        "2048 bins, 128 levels) or percentile (99.999th percentile of |x|).",
    ),
    click.option(
        "--calib-count",
        type=int,
        default=DEFAULT_CALIB_COUNT,
        show_default=True,
        help=f"Calibration images (at least {MIN_CALIB_IMAGES}; at most what the data's calibration split has).",
    ),
    click.option(
        "--eval-count",
        type=int,
        default=DEFAULT_EVAL_COUNT,
        show_default=True,
        help="Held-out images for the check against FP32.",
    ),
    click.option(
        "--calib-cache", default=None, metavar="DIR", help=f"Calibration cache directory (default ./{DEFAULT_CACHE_DIR})."
    ),
    click.option("--no-calib-cache", is_flag=True, default=False, help="Neither read nor write a calibration cache."),
    click.option(
        "--quantize-head", is_flag=True, default=False, help="INT8: also quantize global average pooling and what follows."
    ),
)

# The INT8 controls that 'quantize' and 'trt --int8' add to the calibration options.
_int8_options = _stack(
    click.option(
        "--agreement-floor",
        type=float,
        default=DEFAULT_AGREEMENT_FLOOR,
        show_default=True,
        help="INT8 with trained weights: the least top-1 agreement with FP32 on held-out images that passes.",
    ),
    click.option(
        "--exclude",
        multiple=True,
        metavar="NODE_OR_PATTERN",
        help="INT8: keep this Conv/Gemm node in float (a name or a glob such as 'node_conv2d_*'; repeatable). "
        "'nin-export sensitivity' lists the nodes.",
    ),
    click.option(
        "--min-agreement",
        type=float,
        default=None,
        metavar="P",
        help="INT8: keep the most sensitive layers in float, one at a time, until top-1 agreement with FP32 "
        "reaches P (e.g. 0.99) on one half of the held-out images; the other half, unseen, gives the figures.",
    ),
    click.option(
        "--float-dtype",
        type=click.Choice([Precision.FP16.value, Precision.FP32.value]),
        default=None,
        help="INT8: the precision of the layers left in float (the head, --exclude, --min-agreement); inputs and "
        "outputs stay float32 (default fp16 for --int8-target tensorrt, fp32 for ort-cpu).",
    ),
    click.option(
        "--quantizer",
        type=click.Choice([q.value for q in Quantizer]),
        default=Quantizer.ORT.value,
        show_default=True,
        help="INT8: onnxruntime's quantizer (built in) or NVIDIA ModelOpt's ONNX PTQ (pip install 'nin-export[modelopt]').",
    ),
)


def _quantize_options(f: Callable) -> Callable:
    """The calibration options, then the INT8 controls."""
    return _calib_options(_int8_options(f))


# What each mode uses: an option given on the command line that the mode does not use is refused, not ignored
_INT8_ONLY = ("calib_method", "calib_count", "calib_cache", "no_calib_cache", "quantize_head", "agreement_floor")
_INT8_ONLY += ("exclude", "min_agreement", "quantizer", "float_dtype", "int8_target")
_FP16_ONLY = ("keep_io_types",)
_CONVERSION = ("calib_data", "eval_count", *_INT8_ONLY, *_FP16_ONLY)


def _given(names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` that were typed on the command line (not defaults), as the user typed them."""
    ctx = click.get_current_context()
    opts = {p.name: p.opts[0] for p in ctx.command.params if isinstance(p, click.Option)}
    return [opts[n] for n in names if n in opts and ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE]


def _refuse_unused(names: tuple[str, ...], mode: str) -> None:
    if given := _given(names):
        raise NinExportError(
            f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} nothing {mode}: drop {'it' if len(given) == 1 else 'them'}"
        )


def _make_quantize_options(
    precision: Precision,
    calib_data: str | None,
    calib_method: str,
    calib_count: int,
    eval_count: int,
    calib_cache: str | None,
    no_calib_cache: bool,
    quantize_head: bool,
    agreement_floor: float = DEFAULT_AGREEMENT_FLOOR,
    exclude: tuple[str, ...] = (),
    min_agreement: float | None = None,
    quantizer: str = Quantizer.ORT.value,
    float_dtype: str | None = None,
    int8_target: str = Int8Target.TENSORRT.value,
    keep_io_types: bool = True,
    synthetic: bool = False,
):
    from .quantize.ptq import QuantizeOptions

    if no_calib_cache and calib_cache:
        raise NinExportError("--calib-cache and --no-calib-cache contradict each other: pass one")
    return QuantizeOptions(
        precision,
        keep_io_types=keep_io_types,
        calib_data=calib_data,
        calib_method=CalibMethod(calib_method),
        calib_count=calib_count,
        eval_count=eval_count,
        allow_synthetic=synthetic,
        quantize_head=quantize_head,
        agreement_floor=agreement_floor,
        cache_dir=None if no_calib_cache else (calib_cache or DEFAULT_CACHE_DIR),
        exclude=list(exclude),
        min_agreement=min_agreement,
        quantizer=Quantizer(quantizer),
        float_dtype=Precision(float_dtype) if float_dtype else None,
        target=Int8Target(int8_target),
    )


def _one_precision(fp16: bool, int8: bool, fp32: bool = False) -> Precision | None:
    chosen = [p for p, on in ((Precision.FP32, fp32), (Precision.FP16, fp16), (Precision.INT8, int8)) if on]
    if len(chosen) > 1:
        raise NinExportError(f"choose one precision: {' and '.join('--' + p.value for p in chosen)} were both given")
    return chosen[0] if chosen else None


@cli.command("quantize")
@click.argument("onnx_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.option("--fp16", is_flag=True, help="Float16 compute (float32 I/O unless --no-keep-io-types).")
@click.option("--int8", is_flag=True, help="INT8 post-training quantization as explicit Q/DQ.")
@click.option("--keep-io-types/--no-keep-io-types", default=True, show_default=True, help="FP16: keep float32 inputs/outputs.")
@click.option(
    "--int8-target",
    type=click.Choice([t.value for t in Int8Target]),
    default=Int8Target.TENSORRT.value,
    show_default=True,
    help="INT8: tensorrt (int8 Q/DQ on Conv/Gemm inputs, every TensorRT) or ort-cpu (onnxruntime's fastest CPU layout: "
    "uint8 activations, every op it quantizes; TensorRT refuses it).",
)
@_quantize_options
@click.option("--synthetic", is_flag=True, default=False, help="Calibrate on random noise (accuracy figures become meaningless).")
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Output file (default: beside the input, <name>.fp16.onnx / <name>.int8.onnx).",
)
def quantize_cmd(
    onnx_path: str, fp16: bool, int8: bool, keep_io_types: bool, synthetic: bool, output: str | None, **q: Any
) -> None:
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
    from .quantize.ptq import quantize

    precision = _one_precision(fp16, int8)
    if precision is None:
        raise NinExportError("choose a precision: --fp16 or --int8")
    if precision is Precision.FP16:
        _refuse_unused(_INT8_ONLY, "with --fp16 (INT8 options)")
    else:
        _refuse_unused(_FP16_ONLY, "with --int8 (an FP16 option)")
    opts = _make_quantize_options(precision, keep_io_types=keep_io_types, synthetic=synthetic, **q)
    res = quantize(onnx_path, opts, output, progress=_progress)
    _warn(res.notes)
    a = res.agreement
    console.print(
        escape(
            f"checked {res.path.name} against {res.parent.name} on {a.n_samples} held-out images: "
            f"top-1 agreement {a.top1_agreement:.1%}, cosine {a.cosine:.6f}, max abs {a.max_abs:.3g}"
        )
    )
    if res.cache:
        console.print(escape(f"calibration cache: {res.cache}"))
    if res.float_layers:
        console.print(escape(f"kept in float: {', '.join(f['node'] for f in res.float_layers)}"))
    console.print(
        escape(
            f"wrote {res.path} ({fmt_bytes(res.path.stat().st_size)}, parent {fmt_bytes(res.parent.stat().st_size)}); "
            f"manifest {res.path.parent / 'manifest.json'}"
        )
    )


@cli.command("sensitivity")
@click.argument("onnx_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@_calib_options
@click.option(
    "-o",
    "--output-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where sensitivity.json/.md/.png go (default: <name>.sensitivity/ beside the model).",
)
def sensitivity_cmd(onnx_path: str, output_dir: str | None, **q: Any) -> None:
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
    from .core._io import check_outputs
    from .quantize.ptq import analyze
    from .quantize.sensitivity import write_sensitivity

    src = Path(onnx_path)
    out = Path(output_dir) if output_dir else src.with_name(src.name.removesuffix(".onnx") + ".sensitivity")
    stem = "sensitivity"
    check_outputs([out / f"{stem}.{ext}" for ext in ("json", "md", "png")], [src])
    opts = _make_quantize_options(Precision.INT8, **q)
    s = analyze(src, opts, progress=_progress)
    out.mkdir(parents=True, exist_ok=True)
    paths = write_sensitivity(s, out, stem)
    full = s.full_int8
    console.print(escape(f"every layer in INT8: top-1 agreement {full['top1_agreement']:.1%}, SQNR {full['sqnr_db']:.1f} dB"))
    for i, r in enumerate(s.layers[:5], 1):
        console.print(escape(f"  {i}. {r.node} ({r.op_type}): agreement {r.top1_agreement:.1%}, SQNR {r.sqnr_db:.1f} dB"))
    console.print(escape("wrote " + ", ".join(str(p) for p in paths)))


@cli.command("doctor")
@click.option(
    "-o", "--output", default="doctor.json", show_default=True, type=click.Path(dir_okay=False), help="Where the JSON report goes."
)
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
    from .core._io import check_outputs, write_json
    from .doctor import run_doctor

    check_outputs([output])
    doc = run_doctor(progress=_progress, debug=_debug())
    _print_doctor(doc)
    write_json(output, doc)
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    console.print(escape(f"wrote {output} ({doc['seconds']:.0f} s)"))
    if failed:
        raise SystemExit(1)


def _print_doctor(doc: dict[str, Any]) -> None:
    caps = doc["capabilities"]
    gpu = caps.get("gpu") or {}
    jetson = caps.get("jetson") or {}
    facts = Table(title="this machine", show_header=False, box=None)
    for k, v in (
        ("CPU", caps["cpu"]),
        ("GPU", f"{gpu.get('name')} (compute {gpu.get('compute_capability')}, driver {gpu.get('driver')})" if gpu else "none"),
        ("torch", f"{caps.get('torch')} (CUDA {caps.get('torch_cuda')}, sees a GPU: {caps.get('torch_sees_gpu')})"),
        ("onnxruntime", f"{caps['onnxruntime']}: {', '.join(caps['onnxruntime_providers'])}"),
        ("TensorRT", caps.get("tensorrt") or "not installed"),
        ("TensorRT-RTX", caps.get("tensorrt_rtx") or "not installed"),
        ("Jetson", f"{jetson.get('model')}, L4T {jetson.get('l4t')}, nvpmodel {jetson.get('nvpmodel')}" if jetson else "no"),
        ("jetson_clocks", str(jetson.get("jetson_clocks")) if jetson else "-"),
        ("DLA cores", str(caps.get("dla_cores")) if caps.get("dla_cores") is not None else "-"),
        *((f"power: {k}", v) for k, v in caps["power_sources"].items()),
    ):
        facts.add_row(escape(k), escape(str(v)))
    console.print(facts)
    table = Table(title="checks")
    for col in ("check", "status", "seconds", "detail"):
        table.add_column(col, overflow="fold")
    colour = {"passed": "green", "failed": "red", "skipped": "yellow"}
    for c in doc["checks"]:
        table.add_row(escape(c["name"]), f"[{colour[c['status']]}]{c['status']}[/]", f"{c['seconds']:.1f}", escape(c["detail"]))
    console.print(table)


# --- trt -----------------------------------------------------------------------------------------


def _newest_onnx() -> str:
    """No path given: the newest FP32 ONNX in the default output directory's manifest, as after 'nin-export onnx'."""
    from .core.manifest import MANIFEST_NAME, newest_fp32_onnx

    d = Path(DEFAULT_ONNX_DIR)
    if not (d / MANIFEST_NAME).is_file():
        raise NinExportError(
            f"no MODEL.onnx given, and no {d / MANIFEST_NAME} to take the newest FP32 ONNX from: run 'nin-export onnx' "
            f"first, or give the path"
        )
    found = newest_fp32_onnx(d)
    if found is None:
        raise NinExportError(
            f"no MODEL.onnx given, and {d / MANIFEST_NAME} records no FP32 ONNX that is still there: give the path"
        )
    console.print(escape(f"using {found} (the newest FP32 ONNX in {d / MANIFEST_NAME})"))
    return os.fspath(found)


def _refuse_trt_unused(onnx_path: str, precision: Precision | None) -> None:
    """trt converts an FP32 graph only for --fp16/--int8: quantize options anywhere else would do nothing."""
    if precision is Precision.FP16:
        _refuse_unused(_INT8_ONLY, "with --fp16 (INT8 options)")
    if precision not in (Precision.FP16, Precision.INT8):
        _refuse_unused(_CONVERSION, "without --fp16 or --int8 (the graph is built as it is)")
    elif _given(_CONVERSION) and Path(onnx_path).is_file():
        from .core.onnx_utils import graph_precision, load_onnx

        graph = graph_precision(load_onnx(onnx_path))
        if graph is precision:
            _refuse_unused(_CONVERSION, f"on a graph that is already {graph.value.upper()} (it is built as it is)")


@cli.command("trt")
@click.argument("onnx_path", metavar="[MODEL.onnx]", type=click.Path(dir_okay=False), required=False)
@click.option("--fp32", is_flag=True, help="Build from an FP32 graph as it is.")
@click.option("--fp16", is_flag=True, help="FP16: converts an FP32 graph first (as 'nin-export quantize --fp16').")
@click.option("--int8", is_flag=True, help="INT8: quantizes an FP32 graph to Q/DQ first (needs --calib-data).")
@click.option(
    "--builder-fp16",
    is_flag=True,
    default=False,
    help="TensorRT 10 only: FP16 through BuilderFlag.FP16 on the FP32 graph instead of an FP16 graph.",
)
@_quantize_options
@click.option(
    "--batch",
    default=None,
    metavar="MIN:OPT:MAX",
    help=f"Batch profile for a dynamic batch (default {':'.join(map(str, DEFAULT_BATCH_PROFILE))}).",
)
@click.option("--min-shape", default=None, metavar="NxCxHxW", help="Profile minimum shape (with --opt-shape, --max-shape).")
@click.option("--opt-shape", default=None, metavar="NxCxHxW", help="Profile optimum shape.")
@click.option("--max-shape", default=None, metavar="NxCxHxW", help="Profile maximum shape.")
@click.option(
    "--workspace", type=int, default=DEFAULT_WORKSPACE_MIB, show_default=True, metavar="MiB", help="Workspace memory pool limit."
)
@click.option(
    "--timing-cache", default=None, type=click.Path(dir_okay=False), help="Timing cache file, read and updated (TensorRT 10/11)."
)
@click.option(
    "--backend",
    type=click.Choice([b.value for b in TrtFlavour]),
    default=TrtFlavour.AUTO.value,
    show_default=True,
    help="Which TensorRT: auto prefers full TensorRT, then TensorRT-RTX.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="SMxx",
    help="TensorRT-RTX ahead-of-time target, repeatable: SM75 SM80 SM86 SM89 SM120 SM121 or CURRENT "
    f"(default: CURRENT with a GPU, else {' '.join(DEFAULT_RTX_TARGETS)}).",
)
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Engine file (default beside the ONNX: <name>.<precision>[.rtx].engine); the sidecar is <engine>.json.",
)
def trt_cmd(
    onnx_path: str,
    fp32: bool,
    fp16: bool,
    int8: bool,
    builder_fp16: bool,
    batch: str | None,
    min_shape: str | None,
    opt_shape: str | None,
    max_shape: str | None,
    workspace: int,
    timing_cache: str | None,
    backend: str,
    targets: tuple[str, ...],
    output: str | None,
    **q: Any,
) -> None:
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
    from .core.parse import parse_batch_profile, parse_shape
    from .trt import BuildOptions
    from .trt.convert import engine_from_onnx

    onnx_path = onnx_path or _newest_onnx()
    precision = _one_precision(fp16, int8, fp32)
    opts = BuildOptions(
        flavour=TrtFlavour(backend),
        batch=parse_batch_profile(batch) if batch else None,
        min_shape=parse_shape(min_shape) if min_shape else None,
        opt_shape=parse_shape(opt_shape) if opt_shape else None,
        max_shape=parse_shape(max_shape) if max_shape else None,
        workspace_mib=workspace,
        timing_cache=timing_cache,
        targets=targets,
        builder_fp16=builder_fp16,
    )
    _refuse_trt_unused(onnx_path, precision)
    qopts = _make_quantize_options(precision or Precision.FP16, **q) if precision in (Precision.FP16, Precision.INT8) else None
    _print_build(engine_from_onnx(onnx_path, precision, opts, qopts, output=output, progress=_progress))


def _print_build(res: Any) -> None:
    _warn(res.notes)
    for step in res.steps:
        console.print(escape(step))
    i = res.info
    console.print(
        f"[green]built[/] {escape(str(res.engine))} ({fmt_bytes(i['bytes'])}) with {i['flavour']} {i['trt_version']} in "
        f"{i['build_seconds']:.1f} s: {i['precision']} via {i['precision_path']}"
    )
    console.print("  targets: " + (", ".join(i["targets"]) if i["targets"] else f"this GPU ({(i['gpu'] or {}).get('name')})"))
    _print_profiles(i["profiles"][0])
    console.print(escape(f"  sidecar {res.sidecar}"))


# --- bench / report ------------------------------------------------------------------------------


def _csv_list(value: str, what: str, choices: list[str], same: Callable[[str], str] = str) -> list[str]:
    """A comma-separated choice list; an entry given twice (or under two names ``same`` maps together, an
    alias beside its name) is refused: it would be measured once and look like a typo's silent fix."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in choices]
    if not items or bad:
        raise NinExportError(f"bad --{what} '{value}': choose from {', '.join(choices)}, comma-separated")
    seen: dict[str, str] = {}
    for v in items:
        if same(v) in seen:
            raise NinExportError(f"bad --{what} '{value}': '{v}' is given twice (as '{seen[same(v)]}' too); name each once")
        seen[same(v)] = v
    return items


def _given_engines(cfg: Any, engines: tuple[str, ...], baseline_engines: tuple[str, ...]) -> None:
    from .bench.run import engine_precision

    for (name, _), paths in zip(cfg.pair(), (engines, baseline_engines)):
        for p in paths:
            if not Path(p).is_file():
                raise NinExportError(f"engine '{p}' not found")
            prec, note = engine_precision(Path(p), name)
            if note:
                _warn([note])
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
    warmup_ms: float,
    min_iters: int,
    min_ms: float,
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
    from .bench.run import BenchConfig
    from .core.parse import parse_batch_list

    cfg = BenchConfig(
        model=model,
        baseline=baseline,
        out_dir=output_dir,
        threads=threads,
        timing=TimingOptions(warmup_ms, min_iters, min_ms),
        data=None if data.lower() == "none" else data,
        power=power,
        idle_s=idle_s,
        cuda_graph=cuda_graph,
        streams=streams,
        verify_trt=verify_trt,
    )
    if backends:
        names = [r.alias for r in RUNTIMES] + [r.name for r in RUNTIMES]
        cfg.runtimes = _csv_list(backends, "backends", names, same=lambda v: get_runtime(v).name)
    if precisions:
        cfg.precisions = [Precision(p) for p in _csv_list(precisions, "precisions", [p.value for p in Precision])]
    if batches:
        cfg.batches = parse_batch_list(batches)
    cfg.threads, note = cap_threads(threads)
    _warn([note] if note else [])
    cfg.weights = {n: w for (n, _), w in zip(cfg.pair(), (weights, baseline_weights)) if w}
    _given_engines(cfg, engines, baseline_engines)
    return cfg


_T = TimingOptions()


@cli.command("bench")
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
@click.option("--warmup-ms", type=float, default=_T.warmup_ms, show_default=True, help="Warm-up per row, by time.")
@click.option("--min-iters", type=int, default=_T.min_iters, show_default=True, help="At least this many timed iterations per row.")
@click.option("--min-ms", type=float, default=_T.min_ms, show_default=True, help="And at least this long per row.")
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
    from .bench.run import run_bench

    cfg = _bench_config(**kw)
    with _bar() as bar:
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
    from .bench.report import render_report

    rep = render_report(paths, out_dir)
    _print_headlines(rep["headline"])
    console.print(escape(f"report {rep['markdown']}; CSV {rep['csv']}; plots {', '.join(p.name for p in rep['plots'])}"))


@cli.command("report")
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


# --- train / eval --------------------------------------------------------------------------------


@cli.command("train")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="Registered model.")
@click.option(
    "--data",
    default=DEFAULT_DATA,
    show_default=True,
    metavar="SRC",
    help="Image folder (one sub-directory per class), labelled .npz, or 'digits' (built in).",
)
@click.option("--epochs", type=int, default=DEFAULT_EPOCHS, show_default=True, help="Most epochs (one-cycle schedule over them).")
@click.option(
    "--patience",
    type=int,
    default=DEFAULT_PATIENCE,
    show_default=True,
    help="Stop when validation top-1 has not improved for this many epochs, keeping the best (0: off).",
)
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True, help="Batch size.")
@click.option(
    "--optimizer",
    type=click.Choice([o.value for o in Optimizer]),
    default=Optimizer.ADAMW.value,
    show_default=True,
    help="adamw or sgd (momentum 0.9, Nesterov); both with a one-cycle schedule.",
)
@click.option(
    "--lr",
    type=float,
    default=None,
    help=f"Peak learning rate (default {DEFAULT_LR[Optimizer.ADAMW]:g} for adamw, {DEFAULT_LR[Optimizer.SGD]:g} for sgd).",
)
@click.option(
    "--dropout",
    type=float,
    default=0.0,
    show_default=True,
    help="Dropout while training (as timm's --drop; the paper's is 0.5). Exported graphs have none.",
)
@click.option(
    "--head-bias",
    type=float,
    default=None,
    help=f"NiN only: initial bias of the last conv before global average pooling (default {HEAD_BIAS:g}; 0 lets its "
    "ReLU close and the logits stay at 0).",
)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA where PyTorch sees a GPU), cpu or cuda.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation and the batch order.")
@click.option(
    "--amp",
    type=click.Choice(["auto", "bf16", "off"]),
    default="auto",
    show_default=True,
    help="Mixed precision: auto is bf16 autocast on a CPU with native bf16 kernels (AVX512-BF16, AMX), "
    "else float32; weights and the optimizer stay float32.",
)
@click.option("--threads", type=int, default=None, help="CPU threads (default: torch's).")
@click.option("--input-size", default=None, metavar="HxW", help="Input size (default: the model's).")
@click.option("--in-channels", type=int, default=None, help="Input channels (default: the model's).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Checkpoint (default <model>.pt).")
def train_cmd(model: str, data: str, output: str | None, **kw: Any) -> None:
    """Train a model on labelled images; the checkpoint carries its model, classes, input size,
    normalization and accuracy. The data's fixed split keeps a test part that training never sees.

    \b
    Example:
      nin-export train --model nin-cifar10 --data digits -o nin.pt
      nin-export train --model nin-seed --data ~/flowers --input-size 96 --epochs 30 --dropout 0.5
    """
    from .train import TrainOptions, train

    opts = TrainOptions(**kw)
    opts.threads, note = cap_threads(opts.threads)
    _warn([note] if note else [])
    dest = output or f"{model}.pt"
    with _bar() as bar:
        task = bar.add_task("training", total=None)
        meta = train(
            model,
            data,
            dest,
            opts,
            progress=lambda m, d, t: bar.update(task, description=escape(m), completed=d, total=t),
            on_epoch=lambda h: bar.console.print(
                f"[dim]-[/] epoch {h['epoch']}/{h['epochs']}: loss {h['train_loss']:.3f}, validation top-1 {h['val_top1']:.1%}"
            ),
        )
    acc = meta["accuracy"]
    kept = f", weights of epoch {meta['kept_epoch']}" if meta["kept_epoch"] != len(meta["history"]) else ""
    console.print(
        escape(
            f"trained {model} on {meta['dataset']} ({meta['split']['train']} images, {len(meta['classes'])} classes) "
            f"in {meta['train_seconds']} s, {len(meta['history'])} epochs{kept}: validation top-1 "
            f"{acc['val_top1']:.1%}, test top-1 {acc['test_top1']:.1%}"
            + (f", top-5 {acc['test_top5']:.1%}" if acc["test_top5"] is not None else "")
        )
    )
    console.print(escape(f"wrote {dest}"))


@cli.command("eval")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--data", default=DEFAULT_DATA, show_default=True, metavar="SRC", help="Labelled images (same source as training).")
@click.option("--model", "-m", default=None, help="Model name, when the artifact does not carry it.")
@click.option("--runtime", default=None, help=f"Runtime (default: the first that runs this kind of file): {runtime_help()}.")
@click.option("--limit", type=int, default=None, help="Evaluate on the first N held-out images only.")
def eval_cmd(artifact: str, data: str, model: str | None, runtime: str | None, limit: int | None) -> None:
    """Top-1 (and top-5) accuracy of a checkpoint, an ONNX (FP32, FP16, INT8) or an engine, on the
    held-out part of the data's fixed split: the same images for every artifact.

    \b
    Example:
      nin-export eval nin.pt --data digits
      nin-export eval out/nin-cifar10.int8.onnx --data digits
    """
    from .evaluate import evaluate

    r = evaluate(artifact, data, limit=limit, model=model, runtime=runtime)
    console.print(
        escape(
            f"{r.artifact} ({r.kind}, {r.runtime}): top-1 {r.top1:.2%}"
            + (f", top-5 {r.top5:.2%}" if r.top5 is not None else "")
            + f" on {r.samples} held-out images of {r.data}"
        )
    )


# --- pipeline ------------------------------------------------------------------------------------


@cli.command("pipeline")
@click.option("--model", "-m", default=None, help=f"NiN variant (default {DEFAULT_MODEL}).")
@click.option("--baseline", "-b", default=None, help="Model to compare with (default: the model's FC-headed twin).")
@click.option("--data", default=None, metavar="SRC", help="Labelled images: training, calibration, evaluation (default digits).")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Checkpoint for --model: skip its training.")
@click.option("--baseline-weights", default=None, type=click.Path(dir_okay=False), help="Checkpoint for --baseline.")
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
    from .pipeline import PipelineConfig, load_config, run_pipeline

    cfg = load_config(config_file) if config_file else PipelineConfig()
    for key, val in (("model", model), ("baseline", baseline), ("data", data), ("out_dir", output_dir)):
        if val is not None:
            setattr(cfg, key, val)
    if epochs is not None:
        cfg.train.epochs = epochs
    names = cfg.models()
    cfg.weights = dict(cfg.weights, **{n: w for n, w in zip(names, (weights, baseline_weights)) if w})
    summary = run_pipeline(cfg, progress=_progress)
    table = Table(title=f"{names[0]} vs {names[1]}: accuracy of every artifact on held-out {escape(cfg.data)}")
    for col in ("model", "artifact", "top-1", "size"):
        table.add_column(col, justify="right" if col in ("top-1", "size") else "left", no_wrap=True)
    for m, info in summary["models"].items():
        for label, path in info["artifacts"].items():
            r = info["accuracy"].get(label) or {}
            table.add_row(m, label, f"{r['top1']:.1%}" if "top1" in r else "-", fmt_bytes(Path(path).stat().st_size))
    console.print(table)
    _print_headlines(summary["headline"], with_machine=False)
    console.print(f"ran {len(summary['ran'])} steps, skipped {len(summary['skipped'])} up to date")
    console.print(escape(f"report: {summary['report']}"))
    if summary["failed"]:  # everything that could run did; the run still failed
        _warn([f"{stage} failed: {why}" for stage, why in summary["failed"].items()])
        raise NinExportError(f"{len(summary['failed'])} step(s) failed: {', '.join(summary['failed'])} (see the warnings above)")


def main() -> None:
    cli(prog_name="nin-export")


if __name__ == "__main__":
    main()
