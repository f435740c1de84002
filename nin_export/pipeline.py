"""One command from model to report, for a NiN and its FC-headed twin.

Stages, per model: train (or take given weights) -> ONNX + onnxsim -> FP16 and INT8 graphs ->
engines (where a TensorRT is installed) -> accuracy of every artifact on the held-out split;
then the benchmark of both models and the report. Each stage has a key (the sha256 of its
inputs and options); a stage whose key and outputs are unchanged is skipped, so a second run
does nothing, a changed option re-runs only what depends on it, and a failed run resumes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from ._io import ensure_dir, sha256_file, write_json
from .enums import Precision
from .errors import NinExportError
from .export import ExportOptions, export_model
from .manifest import record_artifact
from .models import build_model, get_spec
from .onnx_utils import load_onnx
from .quantize import QuantizeOptions, quantize

if TYPE_CHECKING:
    from .trt import BuildOptions, BuildResult

__all__ = ["PipelineConfig", "run_pipeline", "engine_from_onnx", "load_config"]

DEFAULT_MODEL = "nin-cifar10"
STATE_NAME = "pipeline-state.json"
Say = Callable[[str], None]


@dataclass
class PipelineConfig:
    model: str = DEFAULT_MODEL
    baseline: str | None = None  # default: the model's FC-headed twin
    data: str = "digits"  # training, calibration and evaluation images (one fixed split)
    weights: dict[str, str] = field(default_factory=dict)  # model -> checkpoint: skip training it
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create_model options
    out_dir: str = "runs/default"
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None  # default: the optimizer's (train.DEFAULT_LR)
    dropout: float | None = 0.0  # while training (train.TrainOptions.dropout)
    calib_count: int = 300
    calib_cache: str | None = "calibration"  # calibration range caches (see calibration/README.md); None: none
    eval_limit: int | None = None
    engines: bool = True  # where a TensorRT is installed
    bench_batches: list[int] = field(default_factory=lambda: [1, 8])
    bench_backends: list[str] | None = None  # default: every installed backend
    bench_min_ms: float = 1000.0
    bench_min_iters: int = 10
    bench_warmup_ms: float = 200.0
    threads: int | None = None

    def models(self) -> list[str]:
        baseline = self.baseline or get_spec(self.model).twin
        if baseline is None:
            raise NinExportError(f"{self.model} has no FC-headed twin: give --baseline")
        return [self.model, baseline]


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON or TOML file of PipelineConfig fields."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise NinExportError(f"cannot read config '{p}': {e.strerror or e}") from None
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise NinExportError("TOML configs need Python 3.11+; write the config as JSON") from None
    except ValueError as e:
        raise NinExportError(f"config '{p}' is not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {e}") from None
    known = set(PipelineConfig.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise NinExportError(f"config '{p}' has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _sha(path: str | os.PathLike) -> str:
    """sha256 of a file, computed once per version of it (path, size, mtime): stage keys and
    freshness checks ask for the same multi-hundred-MB artifacts many times."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


class _State:
    """pipeline-state.json: per stage, its key, its outputs' sha256 and its result."""

    def __init__(self, out: Path, say: Say) -> None:
        self.path = out / STATE_NAME
        self.say = say
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            self.data = {}
        self.data.setdefault("stages", {})
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def stage(self, name: str, key_parts: dict[str, Any], outputs: list[Path], fn: Callable[[], Any]) -> Any:
        key = hashlib.sha256(json.dumps({**key_parts, "nin-export": __version__}, sort_keys=True, default=str).encode()).hexdigest()
        prev = self.data["stages"].get(name)
        if prev and prev.get("key") == key and all(
                Path(o).is_file() and _sha(o) == prev["outputs"].get(str(o)) for o in outputs):
            self.say(f"{name}: up to date, skipped")
            self.skipped.append(name)
            return prev.get("result")
        self.say(f"{name}: running")
        result = fn()
        self.data["stages"][name] = {"key": key, "outputs": {str(o): _sha(o) for o in outputs if Path(o).is_file()},
                                     "result": result,
                                     "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        write_json(self.path, self.data)
        self.ran.append(name)
        return result


def run_pipeline(cfg: PipelineConfig, progress: Say | None = None) -> dict[str, Any]:
    """Run (or skip, where fresh) every stage; return the summary (artifacts, accuracy, report, headline)."""
    from .bench import BenchBackend, BenchConfig, TimingOptions, run_bench
    from .report import render_report
    from .train import TrainOptions, evaluate, train
    from .trt import BuildOptions
    from .trt._api import load_backend

    say = progress or (lambda _m: None)
    out = ensure_dir(cfg.out_dir)
    state = _State(out, say)
    have_trt = False
    if cfg.engines:
        try:
            load_backend()
            have_trt = True
        except NinExportError as e:
            say(f"engines skipped: {e}")
    summary: dict[str, Any] = {"out_dir": str(out), "models": {}, "data": cfg.data}
    bench_artifacts: dict[str, dict[str, str]] = {}
    ckpts: dict[str, str] = {}
    for name in cfg.models():
        kw = cfg.model_kwargs.get(name, {})
        d = ensure_dir(out / name)
        # 1. weights
        if name in cfg.weights:
            ckpt = Path(cfg.weights[name])
            if not ckpt.is_file():
                raise NinExportError(f"weights '{ckpt}' for {name} not found")
        else:
            ckpt = d / f"{name}.pt"
            topts = TrainOptions(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, dropout=cfg.dropout, threads=cfg.threads,
                                 input_size=kw.get("input_size"), in_channels=kw.get("in_channels"), fc_width=kw.get("fc_width"))
            state.stage(f"{name}/train", {"model": name, "kwargs": kw, "data": cfg.data, "train": topts.to_dict()}, [ckpt],
                        lambda: train(name, cfg.data, ckpt, topts, on_epoch=lambda h, name=name: say(
                            f"{name}/train: epoch {h['epoch']}/{h['epochs']}, loss {h['train_loss']:.3f}, "
                            f"validation top-1 {h['val_top1']:.1%}"))["accuracy"])
        ckpts[name] = str(ckpt)
        # 2. ONNX
        onnx_path, sim_path = d / f"{name}.onnx", d / f"{name}.sim.onnx"

        def do_export(name=name, ckpt=ckpt, kw=kw, d=d):
            model = build_model(name, ckpt, **kw)
            res = export_model(model, d, weights=ckpt, options=ExportOptions())
            return {"nodes": res.nodes, "sim_nodes": res.sim_nodes}

        state.stage(f"{name}/onnx", {"weights": _sha(ckpt), "kwargs": kw, "export": ExportOptions().to_dict()},
                    [onnx_path, sim_path], do_export)
        graphs = {Precision.FP32: sim_path}
        # 3. FP16 and INT8 graphs
        for prec in (Precision.FP16, Precision.INT8):
            dest = d / f"{name}.{prec.value}.onnx"
            qopts = QuantizeOptions(prec, calib_data=cfg.data, calib_count=cfg.calib_count,
                                    cache_dir=cfg.calib_cache)

            def do_quant(qopts=qopts, dest=dest, sim_path=sim_path):
                r = quantize(sim_path, qopts, dest, progress=lambda m: None)
                return {"agreement": r.agreement.to_dict(), "notes": r.notes, "cache": r.cache}

            # to_dict() holds only the options this precision uses (calibration for INT8 only)
            state.stage(f"{name}/{prec.value}", {"parent": _sha(sim_path), "options": qopts.to_dict()}, [dest], do_quant)
            graphs[prec] = dest
        artifacts: dict[str, Path] = {"checkpoint": ckpt, **{f"onnx-{p.value}": g for p, g in graphs.items()}}
        # 4. engines
        if have_trt:
            bopts = BuildOptions(batch=(1, max(1, max(cfg.bench_batches) // 2), max(cfg.bench_batches)))
            for prec, g in graphs.items():
                eng = d / f"{name}.{prec.value}.engine"

                def do_engine(g=g, eng=eng, bopts=bopts):
                    r = engine_from_onnx(g, None, bopts, output=eng, progress=lambda m: None)
                    return {"bytes": r.info["bytes"], "flavour": r.info["flavour"], "targets": r.info["targets"]}

                try:
                    state.stage(f"{name}/engine-{prec.value}", {"parent": _sha(g), "batch": list(bopts.batch)}, [eng], do_engine)
                    artifacts[f"engine-{prec.value}"] = eng
                except NinExportError as e:
                    say(f"{name}/engine-{prec.value}: failed: {e}")
        # 5. accuracy of every artifact, on the same held-out images
        acc: dict[str, Any] = {}
        for label, path in artifacts.items():
            def do_eval(path=path, name=name):
                try:
                    return evaluate(path, cfg.data, limit=cfg.eval_limit, model=name).to_dict()
                except NinExportError as e:  # an engine with no GPU here, say
                    return {"artifact": path.name, "status": "not evaluated", "reason": str(e)}

            acc[label] = state.stage(f"{name}/eval-{label}", {"artifact": _sha(path), "data": cfg.data, "limit": cfg.eval_limit},
                                     [], do_eval)
        summary["models"][name] = {"artifacts": {k: str(v) for k, v in artifacts.items()}, "accuracy": acc}
        bench_artifacts[name] = {k: str(v) for k, v in artifacts.items() if k != "checkpoint"}
    # 6. benchmark and report
    backends = [BenchBackend(b) for b in cfg.bench_backends] if cfg.bench_backends else None
    bcfg = BenchConfig(model=cfg.models()[0], baseline=cfg.models()[1], backends=backends, batches=cfg.bench_batches,
                       threads=cfg.threads, timing=TimingOptions(cfg.bench_warmup_ms, cfg.bench_min_iters, cfg.bench_min_ms),
                       out_dir=os.fspath(out / "bench"), data=cfg.data, weights=ckpts, artifacts=bench_artifacts,
                       eval_count=cfg.eval_limit or 200, model_kwargs=cfg.model_kwargs)
    results = out / "bench" / "results.json"
    bench_key = {"artifacts": {m: {k: _sha(Path(v)) for k, v in a.items()} for m, a in bench_artifacts.items()},
                 "weights": {m: _sha(Path(c)) for m, c in ckpts.items()}, "config": bcfg.to_dict()}
    def do_bench() -> None:
        run_bench(bcfg, progress=lambda m, dn, t: say(f"bench [{dn}/{t}] {m}"))

    state.stage("bench", bench_key, [results], do_bench)
    report_dir = out / "report"
    accuracy = {m: v["accuracy"] for m, v in summary["models"].items()}
    rep = state.stage("report", {"results": _sha(results), "accuracy": accuracy}, [report_dir / "report.md"],
                      lambda: {"headline": render_report([results], report_dir, accuracy=accuracy)["headline"]})
    summary.update(report=str(report_dir / "report.md"), headline=rep["headline"], ran=state.ran, skipped=state.skipped)
    write_json(out / "summary.json", summary)
    return summary


def engine_from_onnx(onnx_path: str | os.PathLike, precision: Precision | None, options: "BuildOptions",
                     calib_data: str | None = None, output: str | os.PathLike | None = None,
                     progress: Callable[[str], None] | None = None) -> "BuildResult":
    """Build an engine at ``precision`` from ``onnx_path``: an FP32 graph is first converted to an
    FP16 graph or quantized to Q/DQ INT8 (checked and recorded like 'nin-export quantize'); a graph
    already at the precision is built as it is. The result's notes say which path was taken."""
    from .trt import build_engine
    from .trt.builder import graph_precision

    say = progress or (lambda _m: None)
    src = Path(onnx_path)
    gp = graph_precision(load_onnx(src))
    notes: list[str] = []
    steps: list[str] = []
    if options.builder_fp16:
        if precision not in (None, Precision.FP16):
            raise NinExportError(f"--builder-fp16 builds FP16; it cannot be combined with --{precision.value}")
        precision = None
    if precision is not None and precision is not gp:
        if gp is not Precision.FP32:
            raise NinExportError(f"{src.name} is already an {gp.value.upper()} graph: build --{precision.value} from the FP32 ONNX "
                                 f"(precision lives in the graph), or drop the flag to build it as {gp.value.upper()}")
        if precision is not Precision.FP32:
            q = quantize(src, QuantizeOptions(precision, calib_data=calib_data), progress=say)
            a = q.agreement
            notes += q.notes
            steps.append(f"converted the graph first: {src.name} -> {q.path.name} (top-1 agreement {a.top1_agreement:.1%}, "
                         f"cosine {a.cosine:.6f} on {a.n_samples} held-out images)")
            src = q.path
    res = build_engine(src, options, output, progress=say)
    res.notes = notes + res.notes
    res.steps = steps + res.steps
    record_artifact(res.engine, kind="engine", parent=src, precision=res.info["precision"],
                    options={"flavour": res.info["flavour"], "trt_version": res.info["trt_version"],
                             "targets": res.info["targets"], "profiles": res.info["profiles"],
                             "workspace_mib": res.info["workspace_mib"], "precision_path": res.info["precision_path"]},
                    extra={"sidecar": res.sidecar.name, "build_seconds": res.info["build_seconds"]})
    return res
