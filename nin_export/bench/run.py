"""The benchmark: NiN against its FC-headed twin on every runtime of the table, every precision and
batch size. Each runtime x precision runs in a fresh process (``bench.worker``); rows are written
to ``results.json`` as they finish, so Ctrl-C keeps what was measured."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core._io import atomic_path, check_outputs, ensure_dir, write_json
from ..core._proc import spawn_call
from ..core.data import Preprocess, open_source
from ..core.defaults import DEFAULT_BATCHES, DEFAULT_DATA, DEFAULT_IDLE_S, DEFAULT_IDLE_SETTLE_S
from ..core.enums import Int8Target, Precision
from ..core.envinfo import environment
from ..core.errors import NinExportError, first_line
from ..core.parse import batch_profile_for
from ..core.verify import Tolerance, compare
from ..export.exporter import export_model
from ..models import DEFAULT_MODEL, build_model, get_spec
from ..models.summary import check_memory, summarize
from ..quantize.ptq import QuantizeOptions, quantize
from ..runners.timing import TimingOptions
from ..runtimes import RUNTIMES, ArtifactKind, RunTarget, Runtime, get_runtime
from ..trt import BuildOptions, read_sidecar, sidecar_path
from ..trt.convert import engine_from_onnx
from .results import new_results
from .worker import BenchJob, crosscheck_job, run_job

__all__ = ["BenchConfig", "run_bench", "DEFAULT_BATCHES", "engine_precision"]

ProgressFn = Callable[[str, int, int], None]  # (row being measured, done, total)


@dataclass
class BenchConfig:
    model: str = DEFAULT_MODEL
    baseline: str | None = None  # default: the model's FC-headed twin
    runtimes: list[str] | None = None  # names or short names from runtimes.RUNTIMES; default: every row
    precisions: list[Precision] = field(default_factory=lambda: list(Precision))
    batches: list[int] = field(default_factory=lambda: list(DEFAULT_BATCHES))
    threads: int | None = None
    timing: TimingOptions = field(default_factory=TimingOptions)
    out_dir: str = "bench"
    data: str | None = DEFAULT_DATA  # held-out reference images (agreement, accuracy) and INT8 calibration
    eval_count: int = 200
    calib_count: int = 300
    weights: dict[str, str] = field(default_factory=dict)  # model -> checkpoint
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create_model kwargs
    seed: int = 0
    # model -> {"onnx-fp32"|"onnx-fp16"|"onnx-int8"|"engine-fp32"|...: path}: artifacts made elsewhere
    # (by the pipeline), used as they are instead of being made again
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)
    power: str = "auto"  # power source for energy per image: auto, none, or one of power.SOURCES
    idle_s: float = DEFAULT_IDLE_S  # idle power: sampled this long, once, before any work (0: not measured)
    idle_settle_s: float = DEFAULT_IDLE_SETTLE_S  # ... after this long with nothing running
    cuda_graph: bool = False  # TensorRT and PyTorch CUDA rows: replay the compute from a CUDA graph
    streams: int = 1  # GPU rows: above 1, also throughput over this many streams
    verify_trt: bool = False  # run each engine through Polygraphy's TrtRunner and ours: outputs and medians compared

    def pair(self) -> list[tuple[str, str]]:
        baseline = self.baseline or get_spec(self.model).twin
        if baseline is None:
            raise NinExportError(f"{self.model} has no FC-headed twin: give --baseline")
        return [(self.model, "model"), (baseline, "baseline")]

    def rows(self) -> list[Runtime]:
        return [get_runtime(n) for n in self.runtimes] if self.runtimes else list(RUNTIMES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "baseline": self.pair()[1][0],
            "backends": [r.name for r in self.rows()],
            "precisions": [p.value for p in self.precisions],
            "batches": self.batches,
            "threads": self.threads,
            "timing": asdict(self.timing),
            "data": self.data,
            "eval_count": self.eval_count,
            "calib_count": self.calib_count,
            "weights": self.weights,
            "model_kwargs": self.model_kwargs,
            "power": self.power,
            "idle_s": self.idle_s,
            "idle_settle_s": self.idle_settle_s,
            "cuda_graph": self.cuda_graph,
            "streams": self.streams,
            "verify_trt": self.verify_trt,
        }


class _Prepared:
    """Everything measured for one model before any timing: checkpoint, ONNX graphs, engines."""

    def __init__(self, model: Any, info: dict[str, Any]) -> None:
        self.model = model  # the FP32 PyTorch model the artifacts came from
        self.info = info
        self.files: dict[tuple[ArtifactKind, Precision], Path] = {}
        self.problems: dict[tuple[ArtifactKind, Precision], tuple[str, str]] = {}  # (status, reason): why it is missing
        self.ort_cpu_int8: Path | None = None  # the INT8 graph for onnxruntime's CPU row (--int8-target ort-cpu)
        self.ort_cpu_problem: tuple[str, str] | None = None

    def artifact(self, rt: Runtime, prec: Precision) -> tuple[Path | None, tuple[str, str] | None]:
        """The file a row runs, and why it is missing."""
        if prec is Precision.INT8 and rt.int8_target is Int8Target.ORT_CPU:
            return self.ort_cpu_int8, self.ort_cpu_problem
        return self.files.get((rt.artifact, prec)), self.problems.get((rt.artifact, prec))


def _model_info(cfg: BenchConfig, name: str, d: Path) -> _Prepared:
    """The model (seeded random init unless weights are given), its checkpoint, counts and sizes."""
    torch.manual_seed(cfg.seed)
    model = build_model(name, cfg.weights.get(name), **cfg.model_kwargs.get(name, {}))
    c, (h, w) = model.config["in_channels"], model.config["input_size"]
    check_memory(model, (c, h, w), max(cfg.batches), "--batch")
    s = summarize(model, (c, h, w))
    ckpt = Path(cfg.weights[name]) if name in cfg.weights else d / f"{name}.pt"
    if name not in cfg.weights:  # the workers rebuild the same random-init model from this
        with atomic_path(ckpt, suffix=".pt") as tmp:
            torch.save({"state_dict": model.state_dict(), "meta": {"model": name, **model.config}}, tmp)
    info = {
        "params": s.params,
        "macs": s.macs,
        "input_shape": [c, h, w],
        "checkpoint": ckpt.name,
        "weight_bytes": s.weight_bytes(),
        "head": model.spec.head,
        "weights": Path(cfg.weights[name]).name if name in cfg.weights else f"random-init (seed {cfg.seed})",
        "artifact_bytes": {},
    }
    prep = _Prepared(model, info)
    prep.files[(ArtifactKind.CHECKPOINT, Precision.FP32)] = prep.files[(ArtifactKind.CHECKPOINT, Precision.FP16)] = ckpt
    return prep


def _graphs(cfg: BenchConfig, name: str, d: Path, work: Path, prep: _Prepared, say: Callable[[str], None]) -> None:
    """The FP32 ONNX and, where a row needs them, its FP16 and INT8 graphs."""
    given = {k: Path(v) for k, v in cfg.artifacts.get(name, {}).items()}
    if not any(r.artifact is not ArtifactKind.CHECKPOINT and r.unavailable() is None for r in cfg.rows()):
        return  # only PyTorch rows can run here: no graph to make (a 300 MB FC twin exports in seconds, not free)
    if "onnx-fp32" not in given:
        say(f"{name}: exporting ONNX")
    fp32 = given.get("onnx-fp32") or export_model(prep.model, d, weights=cfg.weights.get(name)).final_path
    prep.files[(ArtifactKind.ONNX, Precision.FP32)] = fp32
    needs = {  # the TensorRT-placement INT8 graph only where a row runs it (the CPU rows have their own)
        p
        for r in cfg.rows()
        if r.artifact is not ArtifactKind.CHECKPOINT
        for p in r.precisions
        if p is not Precision.INT8 or r.int8_target is Int8Target.TENSORRT
    }
    for prec in (Precision.FP16, Precision.INT8):
        key = (ArtifactKind.ONNX, prec)
        if prec not in cfg.precisions or prec not in needs:
            continue
        if f"onnx-{prec.value}" in given:
            prep.files[key] = given[f"onnx-{prec.value}"]
        elif prec is Precision.INT8 and cfg.data is None:
            prep.problems[key] = ("skipped", "no calibration data (--data) for INT8")
        else:
            say(f"{name}: making the {prec.value} graph")
            try:
                prep.files[key] = quantize(fp32, _quantize_options(cfg, work, prec)).path
            except NinExportError as e:
                prep.problems[key] = ("failed", f"{prec.value} graph: {first_line(e)}")
    _ort_cpu_graph(cfg, name, d, work, prep, fp32, given, say)
    for (kind, prec), f in prep.files.items():
        if kind is ArtifactKind.ONNX:
            prep.info["artifact_bytes"][f"onnx-{prec.value}"] = f.stat().st_size
    if prep.ort_cpu_int8 is not None:
        prep.info["artifact_bytes"]["onnx-int8-ort-cpu"] = prep.ort_cpu_int8.stat().st_size


def _quantize_options(cfg: BenchConfig, work: Path, prec: Precision, target: Int8Target = Int8Target.TENSORRT) -> QuantizeOptions:
    """How the benchmark makes its FP16 and INT8 graphs: its data, a short held-out check, a cache in the work dir."""
    return QuantizeOptions(
        prec,
        calib_data=cfg.data or DEFAULT_DATA,
        calib_count=cfg.calib_count,
        eval_count=min(cfg.eval_count, 64),
        cache_dir=os.fspath(work / "calibration"),
        target=target,
    )


def _ort_cpu_graph(
    cfg: BenchConfig,
    name: str,
    d: Path,
    work: Path,
    prep: _Prepared,
    fp32: Path,
    given: dict[str, Path],
    say: Callable[[str], None],
) -> None:
    """onnxruntime's CPU row measures INT8 with the graph made for it (uint8 activations, fused QLinear
    kernels): TensorRT's placement leaves its convolutions in float there, slower than FP32."""
    if Precision.INT8 not in cfg.precisions or not any(r.int8_target is Int8Target.ORT_CPU for r in cfg.rows()):
        return
    if "onnx-int8-ort-cpu" in given:
        prep.ort_cpu_int8 = given["onnx-int8-ort-cpu"]
        return
    if cfg.data is None:
        prep.ort_cpu_problem = ("skipped", "no calibration data (--data) for INT8")
        return
    say(f"{name}: making the int8 graph for the CPU rows (uint8 activations)")
    opts = _quantize_options(cfg, work, Precision.INT8, Int8Target.ORT_CPU)
    try:
        prep.ort_cpu_int8 = quantize(fp32, opts, output=d / f"{name}.int8.ort-cpu.onnx").path
    except NinExportError as e:
        prep.ort_cpu_problem = ("failed", f"int8 graph for the CPU rows: {first_line(e)}")


def engine_precision(engine: Path, model: str | None = None) -> tuple[Precision, str | None]:
    """An engine's precision: from its sidecar, or for a plain plan (trtexec's) from its file name
    (".fp16." / ".int8."; else FP32), with a note saying so. With ``model``, an engine whose sidecar names
    another model is refused: it would be measured as this one's."""
    if sidecar_path(engine).exists():
        side = read_sidecar(engine, verify=False)
        if model is not None and side.get("model") not in (None, model):
            raise NinExportError(f"engine '{engine}' was built from {side['model']}, not {model}: give it for that model")
        return Precision(side["precision"]), None
    tokens = engine.name.lower().split(".")
    prec = next((p for p in (Precision.INT8, Precision.FP16) if p.value in tokens), Precision.FP32)
    return prec, f"{engine.name} has no sidecar (a plain plan): taken as {prec.value.upper()} from its name"


def _engine_record(engine: Path) -> dict[str, Any]:
    if not sidecar_path(engine).exists():  # a plain plan: TensorRT's own check decides when it runs
        return {"flavour": "unknown (no sidecar)", "trt_version": None, "targets": [], "bytes": engine.stat().st_size}
    side = read_sidecar(engine, verify=False)  # the runner that loads it checks its sha256
    return {k: side[k] for k in ("flavour", "trt_version", "targets", "bytes")}


def _engines(cfg: BenchConfig, name: str, d: Path, prep: _Prepared, say: Callable[[str], None]) -> None:
    """An engine per graph where a row runs engines and a TensorRT is installed (built ahead of time
    without a GPU, so that its size is recorded); engines given in ``cfg.artifacts`` are used as they are."""
    rows = [r for r in cfg.rows() if r.artifact is ArtifactKind.ENGINE and r.unavailable() is None]
    if not rows:
        return
    given = cfg.artifacts.get(name, {})
    for prec in cfg.precisions:
        graph = prep.files.get((ArtifactKind.ONNX, prec))
        engine = Path(given[f"engine-{prec.value}"]) if f"engine-{prec.value}" in given else None
        if engine is None and graph is not None:
            say(f"{name}: building the {prec.value} engine")
            try:
                opts = BuildOptions(batch=batch_profile_for(cfg.batches))
                engine = engine_from_onnx(graph, None, opts, output=d / f"{name}.{prec.value}.engine").engine
            except NinExportError as e:
                prep.problems[(ArtifactKind.ENGINE, prec)] = ("failed", f"engine build: {first_line(e)}")
                continue
        if engine is not None:
            prep.files[(ArtifactKind.ENGINE, prec)] = engine
            record = prep.info.setdefault("engines", {})[prec.value] = _engine_record(engine)
            prep.info["artifact_bytes"][f"engine-{prec.value}"] = record["bytes"]


def _reference(cfg: BenchConfig, name: str, prep: _Prepared, work: Path) -> tuple[Path, np.ndarray | None, np.ndarray, str]:
    """Held-out inputs (saved for the workers), their labels, and FP32 PyTorch logits on them."""
    c, h, w = prep.info["input_shape"]
    source = open_source(cfg.data, Preprocess.for_spec(get_spec(name), c, (h, w)))  # type: ignore[arg-type]
    _, test = source.split()
    held = source.load(test[: cfg.eval_count])
    path = work / name / "reference_inputs.npy"
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, held.x)
    model = prep.model.eval()
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(held.x[i : i + 32])).numpy() for i in range(0, len(held.x), 32)])
    return path, held.y, ref, source.name


class _Run:
    """One benchmark run: the results document, its file, and the row count for progress."""

    def __init__(self, cfg: BenchConfig, progress: ProgressFn | None) -> None:
        self.cfg = cfg
        self.progress = progress or (lambda _m, _d, _t: None)
        self.out = ensure_dir(cfg.out_dir)
        self.work = ensure_dir(self.out / "artifacts")
        self.path = self.out / "results.json"
        self.env = environment()
        self.gpu, self.no_gpu_why = _usable_gpu(self.env)
        self.results = new_results(self.env, cfg.to_dict())
        self.total = len(cfg.pair()) * len(cfg.rows()) * len(cfg.precisions) * len(cfg.batches)
        self.done = 0
        self.idle: dict[str, Any] = {}  # device -> idle power figures, measured once before any work

    def say(self, msg: str) -> None:
        self.progress(msg, self.done, self.total)

    def save(self) -> None:
        write_json(self.path, self.results)

    def add_rows(
        self,
        name: str,
        rt: Runtime,
        prec: Precision,
        status: str,
        reason: str | None,
        *,
        res: dict[str, Any] | None = None,
        quality: dict[str, Any] | None = None,
        artifact: Path | None = None,
        device: str = "cpu",
    ) -> None:
        info = self.results["models"][name]
        for b in self.cfg.batches:
            st, why, lat, extra = status, reason, None, {}
            pb = (res or {}).get("batches", {}).get(b)
            if pb is not None and "skipped" in pb:
                st, why = "skipped", pb["skipped"]
            elif res is not None and (pb is None or "error" in pb):
                st, why = "failed", (pb or {}).get("error", "not measured")
            elif pb is not None:
                lat, extra = pb["latency_ms"], {k: v for k, v in pb.items() if k != "latency_ms"}
            self.results["rows"].append(
                {
                    "model": name,
                    "role": info["role"],
                    "backend": rt.name,
                    "device": device,
                    "precision": prec.value,
                    "batch": b,
                    "status": st,
                    "reason": why,
                    "params": info["params"],
                    "macs_per_image": info["macs"],
                    "weight_bytes": info["weight_bytes"][prec.value],
                    "artifact": {"file": artifact.name, "bytes": artifact.stat().st_size} if artifact is not None else None,
                    "latency_ms": lat,
                    **extra,
                    "memory": (res or {}).get("memory") if st == "ok" else None,
                    "quality": quality if st == "ok" else None,
                    "threads": self.cfg.threads,
                    "runtime_settings": (res or {}).get("settings") or None,  # as the backend reports them
                }
            )
            self.done += 1
        self.save()


def _quality(res: dict[str, Any], ref: np.ndarray | None, labels: np.ndarray | None) -> dict[str, Any] | None:
    if res["outputs"] is None or ref is None:
        return None
    agree = compare([ref], [res["outputs"]], Tolerance(atol=float("inf"), rtol=0))
    quality = {
        "top1_agreement": agree.top1_agreement,
        "cosine": agree.cosine,
        "max_abs": agree.max_abs,
        "samples": agree.n_samples,
        "vs": "fp32 torch",
    }
    if labels is not None:
        quality["accuracy"] = float((res["outputs"].argmax(1) == labels).mean())
    return quality


def _measure_model(run: _Run, name: str, prep: _Prepared, reference: tuple | None, should_stop: Callable[[], bool] | None) -> None:
    ref_path, labels, ref = reference[:3] if reference else (None, None, None)
    for rt in run.cfg.rows():
        for prec in run.cfg.precisions:
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            artifact, problem = prep.artifact(rt, prec)
            if problem is None and (why := rt.skip_reason(prec, run.gpu, run.no_gpu_why)) is not None:
                problem = ("skipped", why)
            if problem is None and artifact is None:
                problem = ("skipped", f"no {prec.value} {rt.artifact.value} was made")
            if problem is not None:
                status, reason = problem
                if artifact is not None and rt.artifact is ArtifactKind.ENGINE and status == "skipped":
                    reason += " (the engine was built ahead of time: its size is recorded)"
                run.add_rows(name, rt, prec, status, reason, artifact=artifact)
                continue
            device = rt.resolve_device(run.gpu)
            run.say(f"{name} / {rt.name} / {prec.value}")
            target = RunTarget(
                artifact=artifact,
                precision=prec,
                model=name,
                model_kwargs=run.cfg.model_kwargs.get(name, {}),
                device=device,
                threads=run.cfg.threads,
                cuda_graph=run.cfg.cuda_graph,
            )
            shape = prep.info["input_shape"]
            job = BenchJob(
                runtime=rt.name,
                target=target,
                batches=tuple(run.cfg.batches),
                input_shape=(shape[0], shape[1], shape[2]),
                timing=run.cfg.timing,
                reference_inputs=os.fspath(ref_path) if ref_path is not None else None,
                jetson=bool(run.env.get("jetson")),
                power=run.cfg.power,
                idle_watts=(run.idle.get(device) or {}).get("watts"),
                streams=run.cfg.streams,
            )
            res = _spawn(run_job, job)
            if res["error"]:
                run.add_rows(name, rt, prec, "failed", res["error"], artifact=artifact, device=device)
            else:
                run.add_rows(
                    name, rt, prec, "ok", None, res=res, quality=_quality(res, ref, labels), artifact=artifact, device=device
                )


def _check_gpu_and_power(cfg: BenchConfig) -> None:
    from .power import SOURCES

    if cfg.power not in ("auto", "none", *SOURCES):
        raise NinExportError(f"power source '{cfg.power}' is not one of auto, none, {', '.join(SOURCES)}")
    if not (cfg.idle_s == 0 or 1 <= cfg.idle_s <= 60) or not 0 <= cfg.idle_settle_s <= 60:
        raise NinExportError(
            f"idle power is sampled for 1..60 s (0: not measured) after 0..60 s of settling, got --idle-s "
            f"{cfg.idle_s:g} and a settling time of {cfg.idle_settle_s:g} s"
        )
    if not 1 <= cfg.streams <= 64:
        raise NinExportError(f"--streams must be in 1..64, got {cfg.streams}")


def _usable_gpu(env: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether the GPU rows can run: torch must see CUDA (every GPU runner's buffers and events are torch's).
    nvidia-smi alone is not enough; then the reason says what is missing."""
    gpu = env.get("gpu") or {}
    if gpu.get("compute_capability"):
        return True, None
    if gpu.get("name"):
        return (
            False,
            f"nvidia-smi sees {gpu['name']}, but torch {torch.__version__} here has no CUDA: install a CUDA build of torch",
        )
    return False, None


def _idle_power(run: _Run) -> dict[str, Any]:
    """Idle power once, before any work, for each device the rows run on: after the settling time with
    nothing running, over ``idle_s``; {device: figures, or the reason there are none}."""
    from .power import find_power_source, measure_idle, sources_for

    cfg = run.cfg
    if cfg.power == "none" or cfg.idle_s == 0:
        return {}
    out: dict[str, Any] = {}
    for device in sorted({rt.resolve_device(run.gpu) for rt in cfg.rows()}):
        sampler, what = find_power_source(sources_for(device) if cfg.power == "auto" else [cfg.power])
        if sampler is None:
            out[device] = {"reason": what}
            continue
        run.say(f"idle power on {device}: {cfg.idle_settle_s:g} s settling, then {cfg.idle_s:g} s of {what}")
        out[device] = measure_idle(sampler, cfg.idle_s, cfg.idle_settle_s)
    return out


def run_bench(
    cfg: BenchConfig, progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Measure every model x runtime x precision x batch; write ``out_dir/results.json`` after each job
    (Ctrl-C keeps the rows finished so far) and return the results."""
    if not cfg.batches or any(b < 1 for b in cfg.batches):
        raise NinExportError(f"batch sizes must be positive, got {cfg.batches}")
    t = cfg.timing
    if not (0 <= t.warmup_ms < 3.6e6 and 0 <= t.min_ms < 3.6e6 and 1 <= t.min_iters <= 10**7):
        raise NinExportError(
            f"timing out of range: --warmup-ms and --min-ms must be in [0, 3600000) ms and --min-iters in "
            f"1..10000000, got {t.warmup_ms:g}, {t.min_ms:g} and {t.min_iters}"
        )
    if cfg.threads is not None and cfg.threads < 1:
        raise NinExportError(f"--threads must be at least 1, got {cfg.threads}")
    _check_gpu_and_power(cfg)
    if cfg.eval_count < 1 or cfg.calib_count < 1:
        raise NinExportError("the evaluation and calibration counts must be positive")
    check_outputs([Path(cfg.out_dir) / "results.json"], list(cfg.weights.values()))
    run = _Run(cfg, progress)
    run.idle = run.results["idle_power"] = _idle_power(run)
    run.save()
    for name, role in cfg.pair():
        run.say(f"{name}: preparing")
        d = ensure_dir(run.work / name)
        prep = _model_info(cfg, name, d)
        _graphs(cfg, name, d, run.work, prep, run.say)
        _engines(cfg, name, d, prep, run.say)
        run.results["models"][name] = dict(prep.info, role=role)
        reference = None
        if cfg.data is not None:
            reference = _reference(cfg, name, prep, run.work)
            ref_info = {"data": reference[3], "samples": int(len(reference[2]))}
            if reference[1] is not None:
                ref_info["fp32_torch_accuracy"] = float((reference[2].argmax(1) == reference[1]).mean())
            run.results["models"][name]["reference"] = ref_info
        run.save()
        if cfg.verify_trt:
            _verify_engines(run, name, prep)
        _measure_model(run, name, prep, reference, should_stop)
    run.results["complete"] = True
    run.save()
    return dict(run.results, path=os.fspath(run.path))


def _spawn(fn: Callable[[Any], dict[str, Any]], arg: Any) -> dict[str, Any]:
    """Run one job in a fresh process (spawn: nothing inherited, so its peak RSS is its own) that ends with
    this one, however this one ends; a worker that dies (out of memory, say) fails its row with the reason."""
    try:
        return spawn_call(fn, arg)
    except RuntimeError as e:
        return {"error": first_line(e), "status": "failed", "reason": first_line(e)}


def _verify_engines(run: _Run, name: str, prep: _Prepared) -> None:
    """--verify-trt: each engine through Polygraphy's TrtRunner and nin-export's, in a fresh process."""
    out: dict[str, Any] = {}
    for (kind, prec), path in prep.files.items():
        if kind is not ArtifactKind.ENGINE:
            continue
        if not run.gpu:
            out[prec.value] = {"status": "skipped", "reason": run.no_gpu_why or "no CUDA GPU here: the cross-check runs the engine"}
            continue
        run.say(f"{name}: the {prec.value} engine through Polygraphy and nin-export")
        out[prec.value] = _spawn(crosscheck_job, os.fspath(path))
    run.results["models"][name]["trt_crosscheck"] = out
