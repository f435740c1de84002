"""The benchmark: NiN against its FC-headed twin on every runtime of the table, every precision and
batch size. Each runtime x precision runs in a fresh process (``bench.worker``); rows are written
to ``results.json`` as they finish, so Ctrl-C keeps what was measured."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..artifacts import ArtifactPlan, Artifacts, keys_for_rows, make_artifacts, sizes
from ..core._io import atomic_path, check_outputs, ensure_dir, write_json
from ..core._proc import spawn_call
from ..core.artifact import CHECKPOINT, ArtifactKey, ArtifactKind
from ..core.data import Preprocess, open_source
from ..core.defaults import (
    DEFAULT_BATCHES,
    DEFAULT_CALIB_COUNT,
    DEFAULT_DATA,
    DEFAULT_EVAL_COUNT,
)
from ..core.enums import Precision
from ..core.envinfo import environment
from ..core.errors import NinExportError, first_line
from ..core.parse import batch_profile_for, parse_batch_list, parse_choice_list
from ..core.verify import Tolerance, compare
from ..models import DEFAULT_MODEL, build_model, get_spec
from ..models.summary import check_memory, summarize
from ..quantize.ptq import QuantizeOptions
from ..runners.timing import TimingOptions
from ..runtimes import RUNTIMES, RunTarget, Runtime, get_runtime, select_runtimes
from ..trt import BuildOptions, read_engine_info, sidecar_path
from .power import PowerOptions
from .results import new_results
from .worker import BenchJob, JobEnergy, JobResult, Workload, crosscheck_job, run_job

__all__ = ["BenchConfig", "run_bench", "DEFAULT_BATCHES", "engine_precision", "given_engines", "parse_bench_lists"]

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
    eval_count: int = DEFAULT_EVAL_COUNT
    calib_count: int = DEFAULT_CALIB_COUNT
    quantize: QuantizeOptions | None = None  # how graphs are made (the pipeline's [quantize]); None: see bench_quantize_options
    weights: dict[str, str] = field(default_factory=dict)  # model -> checkpoint
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create_model kwargs
    seed: int = 0
    # model -> {"onnx-fp32"|"onnx-fp16"|"onnx-int8"|"engine-fp32"|...: path}: artifacts made elsewhere
    # (by the pipeline), used as they are instead of being made again
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)
    # model -> {label: why}: artifacts that failed elsewhere (in the pipeline); their rows are reported, not retried
    failed_artifacts: dict[str, dict[str, str]] = field(default_factory=dict)
    # energy per image: the power source, and idle power sampled once before any work
    power: PowerOptions = field(default_factory=PowerOptions)
    cuda_graph: bool = False  # TensorRT and PyTorch CUDA rows: replay the compute from a CUDA graph
    streams: int = 1  # GPU rows: above 1, also throughput over this many streams
    verify_trt: bool = False  # run each engine through Polygraphy's TrtRunner and ours: outputs and medians compared

    def pair(self) -> list[tuple[str, str]]:
        baseline = self.baseline or get_spec(self.model).twin
        if baseline is None:
            raise NinExportError(f"{self.model} has no FC-headed twin: give --baseline")
        return [(self.model, "model"), (baseline, "baseline")]

    def rows(self) -> list[Runtime]:
        return select_runtimes(self.runtimes)

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
            "power": self.power.source,
            "idle_s": self.power.idle_s,
            "idle_settle_s": self.power.idle_settle_s,
            "quantize": self.quantize.to_dict() if self.quantize is not None else None,
            "cuda_graph": self.cuda_graph,
            "streams": self.streams,
            "verify_trt": self.verify_trt,
        }


def given_engines(cfg: BenchConfig, engines: dict[str, list[str]]) -> list[str]:
    """Engines made elsewhere (``{model: [paths]}``, one per precision), measured as they are: each one's
    precision from its sidecar, or for a plain plan from its name (the note says so; notes are returned)."""
    notes: list[str] = []
    for name, paths in engines.items():
        given = cfg.artifacts.setdefault(name, {})
        for p in paths:
            if not Path(p).is_file():
                raise NinExportError(f"engine '{p}' not found")
            prec, note = engine_precision(Path(p), name)
            notes += [note] if note else []
            label = ArtifactKey(ArtifactKind.ENGINE, prec).label
            if label in given:
                raise NinExportError(
                    f"two {prec.value.upper()} engines of {name}: '{given[label]}' and '{p}'; give one engine per precision"
                )
            given[label] = p
    return notes


def parse_bench_lists(cfg: BenchConfig, backends: str | None, precisions: str | None, batches: str | None) -> None:
    """--backends, --precisions and --batch as typed ('ort,trt', 'fp32,int8', '1,8'), into ``cfg``."""
    if backends:
        names = [r.alias for r in RUNTIMES] + [r.name for r in RUNTIMES]
        cfg.runtimes = parse_choice_list(backends, "backends", names, same=lambda v: get_runtime(v).name)
    if precisions:
        cfg.precisions = [Precision(p) for p in parse_choice_list(precisions, "precisions", [p.value for p in Precision])]
    if batches:
        cfg.batches = parse_batch_list(batches)


def _model_info(cfg: BenchConfig, name: str) -> dict[str, Any]:
    """Counts and sizes of the model (checked against memory before anything is made)."""
    torch.manual_seed(cfg.seed)
    model = build_model(name, cfg.weights.get(name), **cfg.model_kwargs.get(name, {}))
    c, h, w = model.input_shape
    check_memory(model, (c, h, w), max(cfg.batches), "--batch")
    s = summarize(model, (c, h, w))
    return {
        "params": s.params,
        "macs": s.macs,
        "input_shape": [c, h, w],
        "weight_bytes": s.weight_bytes(),
        "head": model.spec.head,
        "weights": Path(cfg.weights[name]).name if name in cfg.weights else f"random-init (seed {cfg.seed})",
    }


def bench_quantize_options(cfg: BenchConfig, work: Path) -> QuantizeOptions:
    """How the benchmark makes its FP16 and INT8 graphs: the given settings (the pipeline's [quantize]),
    or its data, a short held-out check and a calibration cache in the work dir."""
    if cfg.quantize is not None:
        return cfg.quantize
    return QuantizeOptions(
        Precision.INT8,
        calib_data=cfg.data,
        calib_count=cfg.calib_count,
        eval_count=min(cfg.eval_count, 64),
        cache_dir=os.fspath(work / "calibration"),
    )


def _plan(cfg: BenchConfig, name: str, d: Path, work: Path) -> ArtifactPlan:
    """The artifacts the rows run: what the pipeline made (``cfg.artifacts``) is used as it is, and what it
    failed to make (``cfg.failed_artifacts``) is not tried again."""
    try:
        given = {ArtifactKey.parse(label): Path(path) for label, path in cfg.artifacts.get(name, {}).items()}
        failed = {ArtifactKey.parse(label): why for label, why in cfg.failed_artifacts.get(name, {}).items()}
    except ValueError as e:
        raise NinExportError(f"{name}: {e}") from None
    return ArtifactPlan(
        model=name,
        out_dir=d,
        keys=keys_for_rows(cfg.rows(), cfg.precisions) | {CHECKPOINT},  # the reference logits come from it
        weights=Path(cfg.weights[name]) if name in cfg.weights else None,
        model_kwargs=cfg.model_kwargs.get(name, {}),
        seed=cfg.seed,
        quantize=bench_quantize_options(cfg, work),
        build=BuildOptions(batch=batch_profile_for(cfg.batches)),
        given=given,
        failed=failed,
    )


def _prepare(run: _Run, name: str) -> Artifacts:
    """The model's facts, then every artifact its rows run (made here, or given)."""
    cfg = run.cfg
    info = _model_info(cfg, name)
    made = make_artifacts(_plan(cfg, name, ensure_dir(run.work / name), run.work), say=run.say)
    info["checkpoint"] = made.files[CHECKPOINT].name
    info["artifact_bytes"] = sizes(made)
    for key, path in made.files.items():
        if key.kind is ArtifactKind.ENGINE:
            info.setdefault("engines", {})[key.precision.value] = _engine_record(path)
    run.results["models"][name] = info
    return made


def engine_precision(engine: Path, model: str | None = None) -> tuple[Precision, str | None]:
    """An engine's precision: from its sidecar, or for a plain plan (trtexec's) from its file name
    (".fp16." / ".int8."; else FP32), with a note saying so. With ``model``, an engine whose sidecar names
    another model is refused: it would be measured as this one's."""
    if sidecar_path(engine).exists():
        info = read_engine_info(engine, verify=False)
        if model is not None and info.model not in (None, model):
            raise NinExportError(f"engine '{engine}' was built from {info.model}, not {model}: give it for that model")
        return info.precision, None
    tokens = engine.name.lower().split(".")
    prec = next((p for p in (Precision.INT8, Precision.FP16) if p.value in tokens), Precision.FP32)
    return prec, f"{engine.name} has no sidecar (a plain plan): taken as {prec.value.upper()} from its name"


def _engine_record(engine: Path) -> dict[str, Any]:
    if not sidecar_path(engine).exists():  # a plain plan: TensorRT's own check decides when it runs
        return {"flavour": "unknown (no sidecar)", "trt_version": None, "targets": [], "bytes": engine.stat().st_size}
    info = read_engine_info(engine, verify=False)  # the runner that loads it checks its sha256
    return {"flavour": info.flavour.value, "trt_version": info.trt_version, "targets": info.targets, "bytes": info.bytes}


@dataclass
class Reference:
    """Held-out inputs (saved for the workers), their labels, and FP32 PyTorch logits on them."""

    inputs: Path
    labels: np.ndarray | None
    logits: np.ndarray
    data: str  # the source's name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"data": self.data, "samples": int(len(self.logits))}
        if self.labels is not None:
            out["fp32_torch_accuracy"] = float((self.logits.argmax(1) == self.labels).mean())
        return out


def _reference(cfg: BenchConfig, name: str, made: Artifacts, work: Path, info: dict[str, Any]) -> Reference:
    c, h, w = info["input_shape"]
    assert cfg.data is not None  # no data: no reference (run_bench)
    source = open_source(cfg.data, Preprocess.for_spec(get_spec(name), c, (h, w)))
    _, test = source.split()
    held = source.load(test[: cfg.eval_count])
    path = work / name / "reference_inputs.npy"
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, held.x)
    model = build_model(name, made.files[CHECKPOINT], **cfg.model_kwargs.get(name, {})).eval()
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(held.x[i : i + 32])).numpy() for i in range(0, len(held.x), 32)])
    return Reference(path, held.y, ref, source.name)


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
        res: JobResult | None = None,
        quality: dict[str, Any] | None = None,
        artifact: Path | None = None,
        device: str = "cpu",
    ) -> None:
        info = self.results["models"][name]
        for b in self.cfg.batches:
            row = Row(
                model=name,
                role=info["role"],
                backend=rt.name,
                device=device,
                precision=prec.value,
                batch=b,
                status=status,
                reason=reason,
                params=info["params"],
                macs_per_image=info["macs"],
                weight_bytes=info["weight_bytes"][prec.value],
                artifact={"file": artifact.name, "bytes": artifact.stat().st_size} if artifact is not None else None,
                threads=self.cfg.threads,
            )
            if res is not None:
                row.take(res, b, quality)
            self.results["rows"].append(row.to_dict())
            self.done += 1
        self.save()


@dataclass
class Row:
    """One row of results.json: a model on a runtime at a precision and a batch size (schema: bench-result)."""

    model: str
    role: str
    backend: str
    device: str
    precision: str
    batch: int
    status: str  # ok, failed or skipped
    reason: str | None
    params: int
    macs_per_image: int
    weight_bytes: int
    artifact: dict[str, Any] | None
    latency_ms: dict[str, Any] | None = None
    measured: dict[str, Any] = field(default_factory=dict)  # energy, gpu_split, multi_stream: written after latency_ms
    memory: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    threads: int | None = None
    runtime_settings: dict[str, Any] | None = None  # as the backend reports them

    def take(self, res: JobResult, batch: int, quality: dict[str, Any] | None) -> None:
        """This batch's figures from a job's result; a batch it skipped or failed says why."""
        pb = res.batches.get(batch)
        if pb is not None and "skipped" in pb:
            self.status, self.reason = "skipped", pb["skipped"]
        elif pb is None or "error" in pb:
            self.status, self.reason = "failed", (pb or {}).get("error", "not measured")
        else:
            self.latency_ms = pb["latency_ms"]
            self.measured = {k: v for k, v in pb.items() if k != "latency_ms"}
        if self.status == "ok":
            self.memory, self.quality = res.memory, quality
        self.runtime_settings = res.settings or None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name != "measured":
                out[f.name] = getattr(self, f.name)
            if f.name == "latency_ms":
                out.update(self.measured)
        return out


def _quality(res: JobResult, ref: np.ndarray | None, labels: np.ndarray | None) -> dict[str, Any] | None:
    if res.outputs is None or ref is None:
        return None
    agree = compare([ref], [res.outputs], Tolerance(atol=float("inf"), rtol=0))
    quality = {
        "top1_agreement": agree.top1_agreement,
        "cosine": agree.cosine,
        "max_abs": agree.max_abs,
        "samples": agree.n_samples,
        "vs": "fp32 torch",
    }
    if labels is not None:
        quality["accuracy"] = float((res.outputs.argmax(1) == labels).mean())
    return quality


def _measure_model(
    run: _Run, name: str, made: Artifacts, reference: Reference | None, should_stop: Callable[[], bool] | None
) -> None:
    for rt in run.cfg.rows():
        for prec in run.cfg.precisions:
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            key = rt.artifact_key(prec)
            artifact, problem = made.files.get(key), made.problems.get(key)
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
            assert artifact is not None  # a missing artifact is a problem above
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
            shape = run.results["models"][name]["input_shape"]
            job = BenchJob(
                runtime=rt.name,
                target=target,
                work=Workload(
                    batches=tuple(run.cfg.batches),
                    input_shape=(shape[0], shape[1], shape[2]),
                    reference_inputs=os.fspath(reference.inputs) if reference is not None else None,
                ),
                timing=run.cfg.timing,
                energy=JobEnergy(source=run.cfg.power.source, idle_watts=(run.idle.get(device) or {}).get("watts")),
                streams=run.cfg.streams,
                jetson=bool(run.env.get("jetson")),
            )
            res = _spawn_job(job)
            if res.error:
                run.add_rows(name, rt, prec, "failed", res.error, artifact=artifact, device=device)
            else:
                quality = _quality(res, reference.logits, reference.labels) if reference is not None else None
                run.add_rows(name, rt, prec, "ok", None, res=res, quality=quality, artifact=artifact, device=device)


def _check_gpu_and_power(cfg: BenchConfig) -> None:
    cfg.power.check()
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
    power = cfg.power
    if power.source == "none" or power.idle_s == 0:
        return {}
    out: dict[str, Any] = {}
    for device in sorted({rt.resolve_device(run.gpu) for rt in cfg.rows()}):
        sampler, what = find_power_source(sources_for(device) if power.source == "auto" else [power.source])
        if sampler is None:
            out[device] = {"reason": what}
            continue
        run.say(f"idle power on {device}: {power.idle_settle_s:g} s settling, then {power.idle_s:g} s of {what}")
        out[device] = measure_idle(sampler, power.idle_s, power.idle_settle_s)
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
        made = _prepare(run, name)
        info = run.results["models"][name]
        info["role"] = role
        reference = None
        if cfg.data is not None:
            reference = _reference(cfg, name, made, run.work, info)
            info["reference"] = reference.to_dict()
        run.save()
        if cfg.verify_trt:
            _verify_engines(run, name, made)
        _measure_model(run, name, made, reference, should_stop)
    run.results["complete"] = True
    run.save()
    return dict(run.results, path=os.fspath(run.path))


def _spawn_job(job: BenchJob) -> JobResult:
    """Run one job in a fresh process (spawn: nothing inherited, so its peak RSS is its own) that ends with
    this one, however this one ends; a worker that dies (out of memory, say) fails its rows with the reason."""
    try:
        return spawn_call(run_job, job)
    except RuntimeError as e:
        return JobResult(error=first_line(e))


def _verify_engines(run: _Run, name: str, made: Artifacts) -> None:
    """--verify-trt: each engine through Polygraphy's TrtRunner and nin-export's, in a fresh process."""
    out: dict[str, Any] = {}
    for key, path in made.files.items():
        if key.kind is not ArtifactKind.ENGINE:
            continue
        prec = key.precision
        if not run.gpu:
            out[prec.value] = {"status": "skipped", "reason": run.no_gpu_why or "no CUDA GPU here: the cross-check runs the engine"}
            continue
        run.say(f"{name}: the {prec.value} engine through Polygraphy and nin-export")
        try:
            out[prec.value] = spawn_call(crosscheck_job, os.fspath(path))
        except RuntimeError as e:
            out[prec.value] = {"status": "failed", "reason": first_line(e)}
    run.results["models"][name]["trt_crosscheck"] = out
