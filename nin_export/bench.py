"""Timing, trtexec-style: warm up by time, then run while fewer than N iterations or T ms have passed."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np

from .runners.base import Runner

__all__ = ["TimingOptions", "LatencyStats", "percentile", "measure", "BenchBackend", "BenchConfig", "run_bench",
           "installed_backends", "RESULT_SCHEMA"]


@dataclass(frozen=True)
class TimingOptions:
    warmup_ms: float = 200.0
    min_iters: int = 10
    min_ms: float = 3000.0


@dataclass
class LatencyStats:
    """Milliseconds per inference (one batch = one query); throughput in queries/s and images/s."""

    batch: int
    iterations: int
    total_ms: float
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    qps: float
    images_per_s: float
    cv: float  # coefficient of variation of the latencies

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_ms: np.ndarray, p: float) -> float:
    """trtexec's percentile: sorted[n - 1 - int((1 - p/100) * n)]."""
    n = len(sorted_ms)
    return float(sorted_ms[max(0, n - 1 - int((1 - p / 100) * n))])


def measure(runner: Runner, feed: Mapping[str, np.ndarray], options: TimingOptions = TimingOptions(),
            should_stop: Callable[[], bool] | None = None) -> LatencyStats:
    """Time ``runner.time_infer(feed)`` (the backend's best clock) after a warm-up by time."""
    t0 = time.perf_counter()
    while (time.perf_counter() - t0) * 1000 < options.warmup_ms:
        runner.time_infer(feed)
    lat: list[float] = []
    t0 = time.perf_counter()
    while len(lat) < options.min_iters or (time.perf_counter() - t0) * 1000 < options.min_ms:
        lat.append(runner.time_infer(feed) * 1000.0)
        if should_stop is not None and should_stop():
            break
    total = (time.perf_counter() - t0) * 1000
    a = np.sort(np.asarray(lat))
    batch = int(next(iter(feed.values())).shape[0])
    mean = float(a.mean())
    return LatencyStats(batch, len(a), total, float(a[0]), mean, float(np.median(a)), percentile(a, 90), percentile(a, 95),
                        percentile(a, 99), float(a[-1]), 1000.0 / mean, batch * 1000.0 / mean, float(a.std() / mean))


# --- the benchmark: NiN against its baseline on every backend -------------------------------------

import datetime as _dt  # noqa: E402
import multiprocessing as _mp  # noqa: E402
import os  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ._io import ensure_dir, write_json  # noqa: E402
from .enums import BYTES_PER_PARAM, Precision, StrEnum  # noqa: E402
from .errors import NinExportError  # noqa: E402

RESULT_SCHEMA = "nin-export/bench/1"
ProgressFn = Callable[[str, int, int], None]  # (row being measured, done, total)


class BenchBackend(StrEnum):
    TORCH = "torch"
    ORT = "ort"
    TRT = "trt"

    @property
    def runner_name(self) -> str:
        return {"torch": "torch", "ort": "onnxruntime", "trt": "tensorrt"}[self.value]


def installed_backends() -> list[BenchBackend]:
    """torch and onnxruntime always; trt where TensorRT or TensorRT-RTX imports."""
    out = [BenchBackend.TORCH, BenchBackend.ORT]
    try:
        from .trt import load_backend

        load_backend()
        out.append(BenchBackend.TRT)
    except NinExportError:
        pass
    return out


@dataclass
class BenchConfig:
    model: str = "nin-cifar10"
    baseline: str | None = None  # default: the model's FC-headed twin
    backends: list[BenchBackend] | None = None  # default: every installed backend
    precisions: list[Precision] = field(default_factory=lambda: list(Precision))
    batches: list[int] = field(default_factory=lambda: [1, 8, 32])
    threads: int | None = None
    timing: TimingOptions = field(default_factory=TimingOptions)
    out_dir: str = "bench"
    data: str | None = "digits"  # held-out reference images (agreement, accuracy) and INT8 calibration
    eval_count: int = 200
    calib_count: int = 300
    weights: dict[str, str] = field(default_factory=dict)  # model -> checkpoint
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create_model kwargs
    seed: int = 0
    # model -> {"onnx-fp32"|"onnx-fp16"|"onnx-int8"|"engine-fp32"|...: path}: artifacts made elsewhere
    # (by the pipeline), used as they are instead of being made again
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)

    def pair(self) -> list[tuple[str, str]]:
        from .models import get_spec

        baseline = self.baseline or get_spec(self.model).twin
        if baseline is None:
            raise NinExportError(f"{self.model} has no FC-headed twin: give --baseline")
        return [(self.model, "model"), (baseline, "baseline")]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "baseline": self.pair()[1][0], "backends": [b.value for b in self.backends or []],
                "precisions": [p.value for p in self.precisions], "batches": self.batches, "threads": self.threads,
                "timing": asdict(self.timing), "data": self.data, "eval_count": self.eval_count,
                "calib_count": self.calib_count, "weights": self.weights, "model_kwargs": self.model_kwargs}


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return msg or type(e).__name__


def _weight_bytes(model, precision: Precision) -> int:
    """Bytes of parameters at ``precision``; INT8 keeps biases in float32 (as the Q/DQ graph does)."""
    bias = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    total = sum(p.numel() for p in model.parameters())
    if precision is Precision.INT8:
        return (total - bias) * 1 + bias * 4
    return total * BYTES_PER_PARAM[precision]


class _Prepared:
    """Everything measured for one model before any timing: checkpoint, ONNX graphs, engines."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.artifacts: dict[tuple[str, str], Path] = {}  # (backend, precision) -> file
        self.problems: dict[tuple[str, str], tuple[str, str]] = {}  # (backend, precision) -> (status, reason)
        self.model: Any = None  # the FP32 PyTorch model the artifacts came from


def _prepare(cfg: BenchConfig, name: str, work: Path, backends: list[BenchBackend], say: Callable[[str], None]) -> _Prepared:
    import torch

    from .export import export_model
    from .models import build_model
    from .pipeline import engine_from_onnx
    from .quantize import QuantizeOptions, quantize
    from .summary import summarize
    from .trt import BuildOptions, read_sidecar

    prep = _Prepared()
    d = ensure_dir(work / name)
    torch.manual_seed(cfg.seed)
    kwargs = cfg.model_kwargs.get(name, {})
    model = prep.model = build_model(name, cfg.weights.get(name), **kwargs)
    c, (h, w) = model.config["in_channels"], model.config["input_size"]
    s = summarize(model, (c, h, w))
    ckpt = Path(cfg.weights[name]) if name in cfg.weights else d / f"{name}.pt"
    if name not in cfg.weights:  # the workers rebuild the same random-init model from this
        torch.save({"state_dict": model.state_dict(), "meta": {"model": name, **model.config}}, ckpt)
    prep.info = {"params": s.params, "macs": s.macs, "input_shape": [c, h, w], "checkpoint": str(ckpt),
                 "weight_bytes": {p.value: _weight_bytes(model, p) for p in Precision}, "head": model.spec.head,
                 "weights": cfg.weights.get(name) or f"random-init (seed {cfg.seed})", "artifact_bytes": {}}
    given = {k: Path(v) for k, v in cfg.artifacts.get(name, {}).items()}
    if "onnx-fp32" in given:
        fp32 = given["onnx-fp32"]
    else:
        say(f"{name}: exporting ONNX")
        fp32 = export_model(model, d, weights=cfg.weights.get(name)).final_path
    graphs = {Precision.FP32: fp32}
    prep.info["artifact_bytes"]["onnx-fp32"] = fp32.stat().st_size
    for prec in (Precision.FP16, Precision.INT8):
        if prec not in cfg.precisions or not ({BenchBackend.ORT, BenchBackend.TRT} & set(backends)):
            continue
        if f"onnx-{prec.value}" in given:
            graphs[prec] = given[f"onnx-{prec.value}"]
            prep.info["artifact_bytes"][f"onnx-{prec.value}"] = graphs[prec].stat().st_size
            continue
        if prec is Precision.INT8 and cfg.data is None:
            for b in (BenchBackend.ORT, BenchBackend.TRT):
                prep.problems[(b.value, prec.value)] = ("skipped", "no calibration data (--data) for INT8")
            continue
        say(f"{name}: making the {prec.value} graph")
        try:
            q = quantize(fp32, QuantizeOptions(prec, calib_data=cfg.data or "digits", calib_count=cfg.calib_count,
                                               eval_count=min(cfg.eval_count, 64), cache_dir=os.fspath(work / "calibration")))
            graphs[prec] = q.path
            prep.info["artifact_bytes"][f"onnx-{prec.value}"] = q.path.stat().st_size
        except NinExportError as e:
            for b in (BenchBackend.ORT, BenchBackend.TRT):
                prep.problems[(b.value, prec.value)] = ("failed", f"{prec.value} graph: {_short(e)}")
    for prec, g in graphs.items():
        prep.artifacts[("ort", prec.value)] = g
    if BenchBackend.TRT in backends:
        for prec, g in graphs.items():
            if prec not in cfg.precisions:
                continue
            engine = given.get(f"engine-{prec.value}")
            if engine is None:
                say(f"{name}: building the {prec.value} engine")
                try:
                    engine = engine_from_onnx(g, None, BuildOptions(batch=(1, max(1, max(cfg.batches) // 2), max(cfg.batches))),
                                              output=d / f"{name}.{prec.value}.engine").engine
                except NinExportError as e:
                    prep.problems[("trt", prec.value)] = ("failed", f"engine build: {_short(e)}")
                    continue
            side = read_sidecar(engine)
            prep.artifacts[("trt", prec.value)] = engine
            prep.info["artifact_bytes"][f"engine-{prec.value}"] = side["bytes"]
            prep.info.setdefault("engines", {})[prec.value] = {k: side[k] for k in ("flavour", "trt_version", "targets", "bytes")}
    return prep


def _reference(cfg: BenchConfig, name: str, prep: _Prepared, work: Path):
    """Held-out inputs (saved for the workers), their labels, and FP32 PyTorch logits on them."""
    import torch

    from .data import Preprocess, open_source
    from .models import get_spec

    c, h, w = prep.info["input_shape"]
    pre = Preprocess.for_spec(get_spec(name), c, (h, w))
    source = open_source(cfg.data, pre)
    _, test = source.split()
    held = source.load(test[: cfg.eval_count])
    path = work / name / "reference_inputs.npy"
    np.save(path, held.x)
    model = prep.model.eval()
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(held.x[i:i + 32])).numpy() for i in range(0, len(held.x), 32)])
    return path, held.y, ref, source.name


def run_bench(cfg: BenchConfig, progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Measure every model x backend x precision x batch; write ``out_dir/results.json`` after each job
    (Ctrl-C keeps the rows finished so far) and return the results."""
    from .envinfo import environment
    from .verify import Tolerance, compare

    if any(b < 1 for b in cfg.batches):
        raise NinExportError(f"batch sizes must be positive, got {cfg.batches}")
    say_row = progress or (lambda _m, _d, _t: None)
    backends = list(cfg.backends) if cfg.backends is not None else installed_backends()
    out = ensure_dir(cfg.out_dir)
    work = ensure_dir(out / "artifacts")
    result_path = out / "results.json"
    env = environment()
    gpu = env.get("gpu")
    results: dict[str, Any] = {"schema": RESULT_SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                               "environment": env, "config": dict(cfg.to_dict(), backends=[b.value for b in backends]),
                               "models": {}, "rows": [], "complete": False}
    pair = cfg.pair()
    jobs = [(n, role, b, p) for n, role in pair for b in backends for p in cfg.precisions]
    total = len(jobs) * len(cfg.batches)
    done = 0

    def add_rows(name: str, role: str, backend: BenchBackend, prec: Precision, status: str, reason: str | None,
                 per_batch: dict | None = None, memory: dict | None = None, quality: dict | None = None,
                 artifact: Path | None = None, device: str = "cpu") -> None:
        nonlocal done
        info = results["models"][name]
        for b in cfg.batches:
            st, why, lat, extra = status, reason, None, {}
            if per_batch is not None:
                pb = per_batch.get(b, {})
                if "error" in pb:
                    st, why = "failed", pb["error"]
                else:
                    lat = pb.get("latency_ms")
                    extra = {k: v for k, v in pb.items() if k != "latency_ms"}
            results["rows"].append({
                "model": name, "role": role, "backend": backend.runner_name, "device": device, "precision": prec.value,
                "batch": b, "status": st, "reason": why, "params": info["params"], "macs_per_image": info["macs"],
                "weight_bytes": info["weight_bytes"][prec.value],
                "artifact": {"file": artifact.name, "bytes": artifact.stat().st_size} if artifact is not None else None,
                "latency_ms": lat, **extra, "memory": memory if st == "ok" else None,
                "quality": quality if st == "ok" else None, "threads": cfg.threads,
            })
            done += 1
        write_json(result_path, results)

    for name, role in pair:
        say_row(f"{name}: preparing", done, total)
        prep = _prepare(cfg, name, work, backends, lambda m: say_row(m, done, total))
        results["models"][name] = dict(prep.info, role=role)
        ref_path = labels = ref = None
        if cfg.data is not None:
            ref_path, labels, ref, data_name = _reference(cfg, name, prep, work)
            results["models"][name]["reference"] = {"data": data_name, "samples": int(len(ref))}
            if labels is not None:
                results["models"][name]["reference"]["fp32_torch_accuracy"] = float((ref.argmax(1) == labels).mean())
        write_json(result_path, results)
        for backend in backends:
            for prec in cfg.precisions:
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
                key = (backend.value, prec.value)
                device = "cuda" if gpu else "cpu"
                if backend is BenchBackend.TORCH:
                    if prec is Precision.INT8:
                        add_rows(name, role, backend, prec, "skipped", "PyTorch eager has no INT8 path here; INT8 runs through onnxruntime and TensorRT")
                        continue
                    if prec is Precision.FP16 and not gpu:
                        add_rows(name, role, backend, prec, "skipped", "PyTorch FP16 eager is measured on CUDA only, and there is no GPU here")
                        continue
                    artifact = Path(prep.info["checkpoint"])
                elif key in prep.problems:
                    status, reason = prep.problems[key]
                    add_rows(name, role, backend, prec, status, reason)
                    continue
                else:
                    artifact = prep.artifacts.get(key)
                    if artifact is None:
                        add_rows(name, role, backend, prec, "skipped", f"no {prec.value} artifact was made")
                        continue
                    if backend is BenchBackend.TRT and not gpu:
                        add_rows(name, role, backend, prec, "skipped", "no CUDA GPU here: the engine was built ahead of time "
                                 "(its size is recorded) but cannot run", artifact=artifact)
                        continue
                    if backend is BenchBackend.ORT:
                        device = "cpu"  # onnxruntime's CPU provider; CUDA where onnxruntime-gpu is installed is future work
                say_row(f"{name} / {backend.runner_name} / {prec.value}", done, total)
                job = {"model": name, "backend": backend.runner_name, "precision": prec.value, "device": device,
                       "artifact": os.fspath(artifact), "checkpoint": prep.info["checkpoint"], "batches": cfg.batches,
                       "input_shape": prep.info["input_shape"], "threads": cfg.threads, "timing": asdict(cfg.timing),
                       "reference_inputs": os.fspath(ref_path) if ref_path is not None else None,
                       "jetson": bool(env.get("jetson"))}
                res = _spawn(job)
                if res["error"]:
                    add_rows(name, role, backend, prec, "failed", res["error"], artifact=artifact, device=device)
                    continue
                quality = None
                if res["outputs"] is not None and ref is not None:
                    agree = compare([ref], [res["outputs"]], Tolerance(atol=float("inf"), rtol=0))
                    quality = {"top1_agreement": agree.top1_agreement, "cosine": agree.cosine, "max_abs": agree.max_abs,
                               "samples": agree.n_samples, "vs": "fp32 torch"}
                    if labels is not None:
                        quality["accuracy"] = float((res["outputs"].argmax(1) == labels).mean())
                add_rows(name, role, backend, prec, "ok", None, per_batch=res["batches"], memory=res["memory"],
                         quality=quality, artifact=artifact, device=device)
    results["complete"] = True
    write_json(result_path, results)
    results["path"] = os.fspath(result_path)
    return results


def _spawn(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in a fresh process (spawn: nothing inherited, so its peak RSS is its own)."""
    from ._bench_worker import run_job

    with ProcessPoolExecutor(max_workers=1, mp_context=_mp.get_context("spawn")) as pool:
        return pool.submit(run_job, job).result()
