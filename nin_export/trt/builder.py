"""ONNX -> TensorRT engine plan + JSON sidecar, for the graph as it is.

Precision comes from the graph (a strongly typed network); on TensorRT 10 the FP16 builder flag is
offered as an option instead. Which precision to build, and whether the graph must be converted
first, is settled once in ``trt/convert.py``.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import onnx

from .. import __version__
from ..core._io import atomic_path, check_outputs, sha256_file, write_json
from ..core.defaults import DEFAULT_BATCH_PROFILE, DEFAULT_RTX_TARGETS, DEFAULT_WORKSPACE_MIB
from ..core.enums import Precision
from ..core.errors import NinExportError
from ..core.gpu import gpu_info
from ..core.meta import ModelMeta
from ..core.onnx_utils import graph_precision, load_onnx, read_metadata
from ..quantize.qdq import has_uint8_activations
from ._api import TrtFlavour, TrtModule, load_trt, trt_dtype_name
from .sidecar import SIDECAR_SCHEMA, EngineInfo, current_gpu, sidecar_path

__all__ = [
    "Profile",
    "BuildOptions",
    "BuildResult",
    "build_engine",
    "ParseError",
    "BuildError",
    "DEFAULT_BATCH_PROFILE",
    "DEFAULT_WORKSPACE_MIB",
    "DEFAULT_RTX_TARGETS",
]

Progress = Callable[[str], None]


class ParseError(NinExportError):
    """The TensorRT ONNX parser refused the graph (message lists every error, node by node)."""


class BuildError(NinExportError):
    """TensorRT could not build an engine."""


@dataclass(frozen=True)
class Profile:
    """min/opt/max shapes for one input."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass
class BuildOptions:
    flavour: TrtFlavour = TrtFlavour.AUTO
    batch: tuple[int, int, int] | None = None  # MIN:OPT:MAX batch; None: DEFAULT_BATCH_PROFILE for a dynamic batch
    min_shape: tuple[int, ...] | None = None
    opt_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    timing_cache: str | None = None
    targets: Sequence[str] = ()  # TensorRT-RTX AOT targets, e.g. ("SM86", "SM89")
    builder_fp16: bool = False  # TensorRT 10: weakly typed network + BuilderFlag.FP16 on an FP32 graph


@dataclass
class BuildResult:
    engine: Path
    sidecar: Path
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # warnings for the user
    steps: list[str] = field(default_factory=list)  # what was done on the way, for the user

    @property
    def engine_info(self) -> EngineInfo:
        """``info`` (what the sidecar holds) as a typed record."""
        return EngineInfo.from_dict(self.info)


def _dims(vi: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


def resolve_profiles(model: onnx.ModelProto, opts: BuildOptions) -> dict[str, Profile]:
    """One profile for the (single) image input, from --batch or --min/opt/max-shape and the ONNX shape."""
    inputs = [i for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}]
    if len(inputs) != 1:
        raise NinExportError(f"expected one input, the ONNX has {len(inputs)}")
    inp = inputs[0]
    dims = _dims(inp)
    hw = ModelMeta.from_dict(read_metadata(model), "ONNX metadata").input_size or (None, None)
    mn_s, op_s, mx_s = opts.min_shape, opts.opt_shape, opts.max_shape
    if mn_s is not None or op_s is not None or mx_s is not None:
        if opts.batch is not None:
            raise NinExportError("give either --batch or --min-shape/--opt-shape/--max-shape, not both")
        if mn_s is None or op_s is None or mx_s is None:
            raise NinExportError("--min-shape, --opt-shape and --max-shape go together: give all three")
        mn, op, mx = tuple(mn_s), tuple(op_s), tuple(mx_s)
    else:
        mn, op, mx = _shape_profile(inp.name, dims, hw, opts.batch)
    for s, what in ((mn, "min"), (op, "opt"), (mx, "max")):
        if len(s) != len(dims):
            raise NinExportError(f"--{what}-shape {'x'.join(map(str, s))} has {len(s)} dims; input '{inp.name}' has {len(dims)}")
        for axis, (d, v) in enumerate(zip(dims, s)):
            if d is not None and d != v:
                raise NinExportError(f"--{what}-shape {'x'.join(map(str, s))}: dim {axis} of '{inp.name}' is fixed at {d}")
    if not all(a <= b <= c for a, b, c in zip(mn, op, mx)):
        raise NinExportError(
            f"unsupported profile: need min <= opt <= max in every dim, got min {'x'.join(map(str, mn))}, "
            f"opt {'x'.join(map(str, op))}, max {'x'.join(map(str, mx))}"
        )
    _check_profile_memory(inp.name, mx)
    return {inp.name: Profile(mn, op, mx)}


def _shape_profile(
    name: str, dims: list[int | None], hw: tuple[int, int] | tuple[None, None], batch: tuple[int, int, int] | None
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) from the ONNX shape: dynamic H/W from the metadata's input size, a dynamic batch from
    ``batch`` (or DEFAULT_BATCH_PROFILE); a fixed batch only as itself."""
    base = [d if d is not None else (hw[i - 2] if i >= 2 else None) for i, d in enumerate(dims)]
    rest = [d for d in base[1:] if d is not None]
    if len(rest) != len(base[1:]):
        raise NinExportError(f"input '{name}' has dynamic dims {dims}: give --min-shape/--opt-shape/--max-shape")
    fixed = dims[0]
    if fixed is None:
        b = batch or DEFAULT_BATCH_PROFILE
        return (b[0], *rest), (b[1], *rest), (b[2], *rest)
    if batch is not None and set(batch) != {fixed}:
        raise NinExportError(
            f"the ONNX has a fixed batch of {fixed}; --batch {':'.join(map(str, batch))} "
            f"needs an ONNX exported with a dynamic batch ('nin-export onnx --batch dynamic')"
        )
    return (fixed, *rest), (fixed, *rest), (fixed, *rest)


LARGEST_RTX_MEMORY = 96 << 30  # the largest memory of a TensorRT-RTX target card (RTX PRO 6000 Blackwell)


def _check_profile_memory(name: str, mx: tuple[int, ...]) -> None:
    """Refuse a profile whose largest input alone (float32) cannot fit on the GPU (or, building ahead of time,
    on any card TensorRT-RTX targets): a --batch of 2^31-1 is a typo, not a plan."""
    gpu = gpu_info()
    limit, where = (gpu["memory_bytes"], gpu["name"]) if gpu else (LARGEST_RTX_MEMORY, "the largest card TensorRT-RTX targets")
    need = 4
    for d in mx:
        need *= d
    if need > limit:
        raise NinExportError(
            f"the profile's largest input {'x'.join(map(str, mx))} of '{name}' needs {need / 2**30:.1f} GiB by itself, "
            f"more than {where} has ({limit / 2**30:.0f} GiB): lower the maximum batch (--batch MIN:OPT:MAX or --max-shape)"
        )


def _parse_errors(parser: Any) -> str:
    lines = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        where = []
        try:
            if e.node() >= 0:
                where.append(f"node {e.node()}")
            if e.node_name():
                where.append(e.node_name())
            if e.node_operator():
                where.append(f"({e.node_operator()})")
        except AttributeError:
            pass
        lines.append(f"{' '.join(where) or 'graph'}: {e.desc()}")
    return "; ".join(lines)


def _progress_monitor(trtm: TrtModule, say: Progress):
    trt = trtm.trt
    if getattr(trt, "IProgressMonitor", None) is None:
        return None

    class Monitor(trt.IProgressMonitor):  # type: ignore[name-defined]  # a class of the TensorRT imported at run time
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):  # noqa: ANN001
            if parent_phase is None:
                say(f"TensorRT: {phase_name}")

        def step_complete(self, phase_name, step):  # noqa: ANN001
            return True  # keep building

        def phase_finish(self, phase_name):  # noqa: ANN001
            pass

    return Monitor()


def _logger(trtm: TrtModule, sink: list[str]):
    trt = trtm.trt

    class Logger(trt.ILogger):  # type: ignore[name-defined]  # a class of the TensorRT imported at run time
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg):  # noqa: ANN001
            if severity <= trt.ILogger.Severity.WARNING:
                sink.append(f"{str(severity).split('.')[-1].lower()}: {msg}")

    return Logger()


def default_engine_path(src: Path, precision: Precision, trtm: TrtModule) -> Path:
    stem = src.name[: -len(".onnx")] if src.name.endswith(".onnx") else src.stem
    for suffix in (".sim", ".fp16", ".int8", ".fp32"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    tag = "rtx." if trtm.is_rtx else ""
    return src.with_name(f"{stem}.{precision.value}.{tag}engine")


def _check_options(opts: BuildOptions, trtm: TrtModule, notes: list[str]) -> None:
    """What the installed TensorRT can do with these options (precision itself is settled in convert)."""
    if opts.builder_fp16 and not trtm.has_builder_fp16:
        raise NinExportError(
            f"--builder-fp16 needs TensorRT 10 (BuilderFlag.FP16); {trtm.describe()} is strongly typed only: "
            f"use --fp16, which converts the graph"
        )
    if opts.targets and not trtm.supports_aot_targets:
        raise NinExportError(f"--target applies to TensorRT-RTX; {trtm.describe()} builds for the GPU it runs on")
    if not 1 <= opts.workspace_mib <= 1 << 20:
        raise NinExportError(f"--workspace must be in 1..{1 << 20} MiB, got {opts.workspace_mib}")
    if opts.timing_cache and trtm.is_rtx:
        notes.append("--timing-cache ignored: TensorRT-RTX's timing cache has no effect and would force a GPU during the build")


def _parse(trtm: TrtModule, src: Path, strongly_typed: bool, logger: Any, say: Progress) -> tuple[Any, Any]:
    """(builder, network) with ``src`` parsed into it; every parser error listed, node by node."""
    trt = trtm.trt
    builder = trt.Builder(logger)
    network = builder.create_network(trtm.network_flags(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    say(f"parsing {src.name} with {trtm.describe()}")
    # parse_from_file resolves external data next to the model; parse(bytes) would not
    ok = parser.parse_from_file(os.fspath(src)) if hasattr(parser, "parse_from_file") else parser.parse(src.read_bytes())
    if not ok:
        raise ParseError(f"TensorRT's ONNX parser refused {src.name} ({parser.num_errors} error(s)): {_parse_errors(parser)}")
    return builder, network


def _aot_targets(trtm: TrtModule, config: Any, opts: BuildOptions, notes: list[str]) -> list[str]:
    """TensorRT-RTX ahead-of-time targets set on ``config``; their compute capabilities ("8.6", ...)."""
    if not trtm.supports_aot_targets:
        return []
    gpu = current_gpu()
    names = [t.upper() for t in opts.targets] or (["CURRENT"] if gpu else list(DEFAULT_RTX_TARGETS))
    cc_enum = trtm.trt.ComputeCapability
    unknown = [t for t in names if not hasattr(cc_enum, t) or t == "NONE"]
    if unknown:
        valid = [n for n in dir(cc_enum) if n.startswith("SM")]
        hint = " (Hopper, SM90, is not a TensorRT-RTX target)" if any(u.startswith("SM9") for u in unknown) else ""
        raise NinExportError(f"unknown --target {', '.join(unknown)}: choose from {', '.join(valid)}{hint}")
    config.num_compute_capabilities = len(names)
    for i, t in enumerate(names):
        config.set_compute_capability(getattr(cc_enum, t), i)
    if "SM75" in names:
        notes.append(
            "TensorRT-RTX 1.7 cannot compile FP32 GEMMs (the FC heads) for Turing, SM75: FC-headed models fail to build there"
        )
    return [gpu["compute_capability"] if t == "CURRENT" and gpu else f"{t[2:-1]}.{t[-1]}" for t in names]


def _configure(trtm: TrtModule, builder: Any, opts: BuildOptions, profiles: dict[str, Profile], say: Progress) -> Any:
    """Builder config: workspace, FP16 flag (TensorRT 10 option), the profile, progress, timing cache."""
    trt = trtm.trt
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_mib) << 20)
    if opts.builder_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if trtm.is_rtx and hasattr(trt.BuilderFlag, "REQUIRE_USER_ALLOCATION"):
        # TensorRT-RTX needs it for CUDA stream capture (--cuda-graph); it costs nothing here: the
        # nin-cifar10 engine came out 136 bytes smaller and the context allocates once, as before
        config.set_flag(trt.BuilderFlag.REQUIRE_USER_ALLOCATION)
    prof = builder.create_optimization_profile()
    for name, p in profiles.items():
        prof.set_shape(name, p.min, p.opt, p.max)
    config.add_optimization_profile(prof)
    monitor = _progress_monitor(trtm, say)
    if monitor is not None:
        config.progress_monitor = monitor
    if opts.timing_cache and not trtm.is_rtx:
        tc_path = Path(opts.timing_cache)
        cache = config.create_timing_cache(tc_path.read_bytes() if tc_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return config


def _io_table(network: Any) -> list[dict[str, Any]]:
    io = []
    for mode, count, get in (("input", network.num_inputs, network.get_input), ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            t = get(i)
            io.append({"name": t.name, "mode": mode, "dtype": trt_dtype_name(t.dtype), "shape": list(t.shape)})
    return io


def _sidecar(
    out: Path,
    plan_sha: str,
    src: Path,
    model: onnx.ModelProto,
    trtm: TrtModule,
    opts: BuildOptions,
    precision: Precision,
    profiles: dict[str, Profile],
    targets: list[str],
    io: list[dict[str, Any]],
    seconds: float,
    log: list[str],
) -> dict[str, Any]:
    meta = ModelMeta.from_dict(read_metadata(model), f"ONNX metadata of {src.name}")
    return {
        "schema": SIDECAR_SCHEMA,
        "engine": out.name,
        "bytes": out.stat().st_size,
        "sha256": plan_sha,
        "flavour": trtm.flavour.value,
        "trt_version": trtm.version,
        "gpu": current_gpu(),  # the GPU the build ran on, if any
        "targets": targets,
        "precision": precision.value,
        "precision_path": "FP32 graph + BuilderFlag.FP16 (weakly typed)" if opts.builder_fp16 else "graph (strongly typed network)",
        "strongly_typed": not opts.builder_fp16,
        "stream_capture_ready": not trtm.is_rtx or hasattr(trtm.trt.BuilderFlag, "REQUIRE_USER_ALLOCATION"),
        "workspace_mib": opts.workspace_mib,
        "profiles": [{name: p.to_dict() for name, p in profiles.items()}],
        "io": io,
        "source_onnx": {"file": src.name, "sha256": sha256_file(src), "bytes": src.stat().st_size},
        "model": meta.model,
        "model_metadata": meta.to_dict(),
        "build_seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "producer": f"nin-export {__version__}",
        "builder_warnings": [m for m in log if m.startswith("warning")][:20],
    }


def build_engine(
    onnx_path: str | os.PathLike,
    options: BuildOptions | None = None,
    output: str | os.PathLike | None = None,
    progress: Progress | None = None,
    model: onnx.ModelProto | None = None,
) -> BuildResult:
    """Build a serialized engine from an ONNX whose graph carries its precision; write it with its sidecar.
    ``model`` is the already loaded graph of ``onnx_path``, if the caller has it."""
    opts = options or BuildOptions()
    say = progress or (lambda _m: None)
    src = Path(onnx_path)
    model = model if model is not None else load_onnx(src)  # a corrupt ONNX fails here with one line
    trtm = load_trt(opts.flavour)
    notes: list[str] = []
    _check_options(opts, trtm, notes)
    precision = Precision.FP16 if opts.builder_fp16 else graph_precision(model)
    if precision is Precision.INT8 and has_uint8_activations(model):
        raise NinExportError(
            f"'{src}' is an onnxruntime CPU graph (uint8 activations with zero points), which TensorRT does not run as "
            f"written: quantize for TensorRT (the default --int8-target tensorrt)"
        )
    profiles = resolve_profiles(model, opts)
    out = Path(output) if output else default_engine_path(src, precision, trtm)
    check_outputs([out, sidecar_path(out)], [src])
    log: list[str] = []
    logger = _logger(trtm, log)
    builder, network = _parse(trtm, src, not opts.builder_fp16, logger, say)
    config = _configure(trtm, builder, opts, profiles, say)
    targets = _aot_targets(trtm, config, opts, notes)
    say(
        f"building {precision.value if not opts.builder_fp16 else 'fp32 graph + FP16 builder flag'} engine"
        + (f" for {', '.join(targets)}" if targets else "")
    )
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        errors = "; ".join(m for m in log if m.startswith(("error", "internal"))) or "no reason given"
        raise BuildError(f"TensorRT could not build {src.name}: {errors[:500]}")
    cache_bytes = bytes(config.get_timing_cache().serialize()) if opts.timing_cache and not trtm.is_rtx else None
    with atomic_path(out, suffix=".engine") as tmp:
        tmp.write_bytes(plan)
        plan_sha = sha256_file(tmp)
        info = _sidecar(tmp, plan_sha, src, model, trtm, opts, precision, profiles, targets, _io_table(network), seconds, log)
        info["engine"] = out.name
        side = write_json(sidecar_path(out), info)  # the sidecar first: an engine never appears without one
    if cache_bytes is not None and opts.timing_cache:  # cache_bytes: only where a timing cache was asked for
        with atomic_path(opts.timing_cache) as tmp:
            tmp.write_bytes(cache_bytes)
    return BuildResult(out, side, info, notes)
