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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .bench.report import render_report
from .bench.run import BenchConfig, run_bench
from .core._io import check_outputs, ensure_dir, read_json, sha256_file, write_json
from .core.config import load_settings
from .core.data import DEFAULT_DATA
from .core.defaults import DEFAULT_IDLE_S
from .core.enums import CalibMethod, Precision, Quantizer
from .core.errors import NinExportError
from .core.parse import batch_profile_for, cap_threads
from .evaluate import evaluate
from .export.exporter import ExportOptions, export_model
from .models import DEFAULT_MODEL, build_model, get_spec
from .quantize.ptq import DEFAULT_CACHE_DIR, DEFAULT_CALIB_COUNT, DEFAULT_EVAL_COUNT, QuantizeOptions, quantize
from .runners.timing import TimingOptions
from .train import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_PATIENCE, TrainOptions, train
from .trt import BuildOptions, load_trt
from .trt.builder import DEFAULT_WORKSPACE_MIB
from .trt.convert import engine_from_onnx

__all__ = [
    "PipelineConfig",
    "TrainSection",
    "QuantizeSection",
    "BuildSection",
    "BenchSection",
    "run_pipeline",
    "load_config",
    "STATE_NAME",
]

STATE_NAME = "pipeline-state.json"
Say = Callable[[str], None]


@dataclass
class TrainSection:
    epochs: int = DEFAULT_EPOCHS
    patience: int | None = DEFAULT_PATIENCE  # stop on a validation plateau (None or 0: every epoch)
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float | None = None  # default: the optimizer's (train.DEFAULT_LR)
    dropout: float | None = 0.0  # while training (train.TrainOptions.dropout)
    seed: int = 0
    amp: str = "auto"  # mixed precision (train.TrainOptions.amp)


@dataclass
class QuantizeSection:
    calib_count: int = DEFAULT_CALIB_COUNT
    calib_method: str = CalibMethod.MINMAX.value
    calib_cache: str | None = DEFAULT_CACHE_DIR  # calibration range caches (see calibration/README.md); None: none
    eval_count: int = DEFAULT_EVAL_COUNT  # held-out images for the check against FP32
    exclude: list[str] = field(default_factory=list)  # INT8: Conv/Gemm node names or globs kept in float
    min_agreement: float | None = None  # INT8: keep the most sensitive layers in float until reached
    quantizer: str = Quantizer.ORT.value  # ort or modelopt


@dataclass
class BuildSection:
    engines: bool = True  # where a TensorRT is installed
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    targets: list[str] = field(default_factory=list)  # TensorRT-RTX targets; default: the builder's


@dataclass
class BenchSection:
    batches: list[int] = field(default_factory=lambda: [1, 8])  # the engine profile follows: parse.batch_profile_for
    backends: list[str] | None = None  # runtimes (runtimes.RUNTIMES); default: every one
    min_ms: float = 1000.0
    min_iters: int = 10
    warmup_ms: float = 200.0
    power: str = "auto"  # energy per image: auto, none, ina3221, tegrastats, nvml or rapl
    idle_s: float = DEFAULT_IDLE_S  # idle power, sampled once before any work (0: not measured)
    cuda_graph: bool = False  # GPU rows: replay the compute from a CUDA graph
    streams: int = 1  # GPU rows: above 1, also throughput over this many streams


@dataclass
class PipelineConfig:
    model: str = DEFAULT_MODEL
    baseline: str | None = None  # default: the model's FC-headed twin
    data: str = DEFAULT_DATA  # training, calibration and evaluation images (one fixed split)
    weights: dict[str, str] = field(default_factory=dict)  # model -> checkpoint: skip training it
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create_model options
    out_dir: str = "runs/default"
    eval_limit: int | None = None
    threads: int | None = None
    train: TrainSection = field(default_factory=TrainSection)
    quantize: QuantizeSection = field(default_factory=QuantizeSection)
    build: BuildSection = field(default_factory=BuildSection)
    bench: BenchSection = field(default_factory=BenchSection)

    def models(self) -> list[str]:
        baseline = self.baseline or get_spec(self.model).twin
        if baseline is None:
            raise NinExportError(f"{self.model} has no FC-headed twin: give --baseline")
        return [self.model, baseline]

    def quantize_options(self, precision: Precision) -> QuantizeOptions:
        q = self.quantize
        int8 = {"exclude": list(q.exclude), "min_agreement": q.min_agreement, "quantizer": _choice(Quantizer, q, "quantizer")}
        return QuantizeOptions(
            precision,
            calib_data=self.data,
            calib_count=q.calib_count,
            calib_method=_choice(CalibMethod, q, "calib_method"),
            eval_count=q.eval_count,
            cache_dir=q.calib_cache,
            **(int8 if precision is Precision.INT8 else {}),
        )


def _choice(enum: type, section: QuantizeSection, key: str) -> Any:
    """``section.key`` as a member of ``enum``; any other value is one line naming the choices."""
    value = getattr(section, key)
    try:
        return enum(value)
    except ValueError:
        raise NinExportError(f"config: quantize.{key} '{value}' is not one of {', '.join(m.value for m in enum)}") from None


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """A JSON or TOML file of PipelineConfig fields, with [train], [quantize], [build] and [bench] tables."""
    return load_settings(PipelineConfig, path)


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
    """pipeline-state.json: per stage, its key, its outputs' sha256, its result and how long it took."""

    def __init__(self, out: Path, say: Say) -> None:
        self.path = out / STATE_NAME
        self.say = say
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.exists():
            self.data = read_json(
                self.path, "pipeline state", "delete it to start over (every step then runs again)", schema="pipeline-state"
            )
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.failed: dict[str, str] = {}  # stage -> why: the run goes on where it can, then exits 1

    def owns(self, path: Path) -> bool:
        """Whether this pipeline made ``path`` as it is now (a stage recorded it with this sha256)."""
        return any(_sha(path) == st.get("outputs", {}).get(str(path)) for st in self.data["stages"].values())

    def check_foreign(self, name: str, outputs: list[Path]) -> None:
        """Refuse to run a stage over a file this pipeline did not make (or that was changed since)."""
        for o in outputs:
            if Path(o).is_file() and not self.owns(Path(o)):
                raise NinExportError(
                    f"{name}: '{o}' exists and this pipeline did not make it (or it changed since): nin-export does not "
                    f"overwrite it; move it aside or choose another -o"
                )

    def stage(self, name: str, key_parts: dict[str, Any], outputs: list[Path], fn: Callable[[], Any]) -> Any:
        key = hashlib.sha256(json.dumps({**key_parts, "nin-export": __version__}, sort_keys=True, default=str).encode()).hexdigest()
        prev = self.data["stages"].get(name)
        if prev and prev.get("key") == key and all(Path(o).is_file() and _sha(o) == prev["outputs"].get(str(o)) for o in outputs):
            self.say(f"{name}: up to date, skipped")
            self.skipped.append(name)
            return prev.get("result")
        self.check_foreign(name, outputs)
        self.say(f"{name}: running")
        t0 = time.perf_counter()
        result = fn()
        self.data["stages"][name] = {
            "key": key,
            "outputs": {str(o): _sha(o) for o in outputs if Path(o).is_file()},
            "result": result,
            "seconds": round(time.perf_counter() - t0, 1),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(self.path, self.data)
        self.ran.append(name)
        return result


def _weights(cfg: PipelineConfig, state: _State, name: str, d: Path, say: Say) -> Path:
    """Stage 1: the given checkpoint, or one trained here."""
    if name in cfg.weights:
        ckpt = Path(cfg.weights[name])
        if not ckpt.is_file():
            raise NinExportError(f"weights '{ckpt}' for {name} not found")
        return ckpt
    ckpt = d / f"{name}.pt"
    kw = cfg.model_kwargs.get(name, {})
    if ckpt.is_file() and not state.owns(ckpt):  # a checkpoint the user put there: used if it fits, never retrained over
        try:
            build_model(name, ckpt, **kw)
        except NinExportError as e:
            raise NinExportError(
                f"'{ckpt}' exists, this pipeline did not make it, and it does not fit {name} ({e}); move it aside"
            ) from None
        say(f"{name}/train: using the checkpoint already at {ckpt} (not made by this pipeline; it fits {name})")
        return ckpt
    t = cfg.train
    topts = TrainOptions(
        epochs=t.epochs,
        patience=t.patience,
        batch_size=t.batch_size,
        lr=t.lr,
        dropout=t.dropout,
        seed=t.seed,
        amp=t.amp,
        threads=cfg.threads,
        input_size=kw.get("input_size"),
        in_channels=kw.get("in_channels"),
        fc_width=kw.get("fc_width"),
    )

    def epoch_line(h: dict[str, Any]) -> None:
        say(f"{name}/train: epoch {h['epoch']}/{h['epochs']}, loss {h['train_loss']:.3f}, validation top-1 {h['val_top1']:.1%}")

    state.stage(
        f"{name}/train",
        {"model": name, "kwargs": kw, "data": cfg.data, "train": topts.to_dict()},
        [ckpt],
        lambda: train(name, cfg.data, ckpt, topts, on_epoch=epoch_line)["accuracy"],
    )
    return ckpt


def _graphs(cfg: PipelineConfig, state: _State, name: str, d: Path, ckpt: Path) -> dict[Precision, Path]:
    """Stages 2 and 3: ONNX + onnxsim, then the FP16 and INT8 graphs."""
    kw = cfg.model_kwargs.get(name, {})
    onnx_path, sim_path = d / f"{name}.onnx", d / f"{name}.sim.onnx"

    def do_export() -> dict[str, Any]:
        res = export_model(build_model(name, ckpt, **kw), d, weights=ckpt, options=ExportOptions())
        return {"nodes": res.nodes, "sim_nodes": res.sim_nodes}

    state.stage(
        f"{name}/onnx", {"weights": _sha(ckpt), "kwargs": kw, "export": ExportOptions().to_dict()}, [onnx_path, sim_path], do_export
    )
    graphs = {Precision.FP32: sim_path}
    for prec in (Precision.FP16, Precision.INT8):
        dest = d / f"{name}.{prec.value}.onnx"
        qopts = cfg.quantize_options(prec)

        def do_quant(qopts: QuantizeOptions = qopts, dest: Path = dest) -> dict[str, Any]:
            r = quantize(sim_path, qopts, dest)
            return {"agreement": r.agreement.to_dict(), "notes": r.notes, "cache": r.cache}

        # to_dict() holds only the options this precision uses (calibration for INT8 only)
        state.stage(f"{name}/{prec.value}", {"parent": _sha(sim_path), "options": qopts.to_dict()}, [dest], do_quant)
        graphs[prec] = dest
    return graphs


def _engines(cfg: PipelineConfig, state: _State, name: str, d: Path, graphs: dict[Precision, Path], say: Say) -> dict[str, Path]:
    """Stage 4: an engine per graph, with the profile the benchmark's batch sizes need."""
    bopts = BuildOptions(
        batch=batch_profile_for(cfg.bench.batches), workspace_mib=cfg.build.workspace_mib, targets=tuple(cfg.build.targets)
    )
    out: dict[str, Path] = {}
    for prec, g in graphs.items():
        eng = d / f"{name}.{prec.value}.engine"

        def do_engine(g: Path = g, eng: Path = eng) -> dict[str, Any]:
            r = engine_from_onnx(g, None, bopts, output=eng)
            return {"bytes": r.info["bytes"], "flavour": r.info["flavour"], "targets": r.info["targets"]}

        try:
            state.stage(f"{name}/engine-{prec.value}", {"parent": _sha(g), "build": asdict(bopts)}, [eng], do_engine)
            out[f"engine-{prec.value}"] = eng
        except NinExportError as e:
            say(f"{name}/engine-{prec.value}: failed: {e}")
            state.failed[f"{name}/engine-{prec.value}"] = str(e)
    return out


def _accuracy(cfg: PipelineConfig, state: _State, name: str, artifacts: dict[str, Path]) -> dict[str, Any]:
    """Stage 5: accuracy of every artifact, on the same held-out images."""
    acc: dict[str, Any] = {}
    for label, path in artifacts.items():

        def do_eval(path: Path = path) -> dict[str, Any]:
            try:
                return evaluate(path, cfg.data, limit=cfg.eval_limit, model=name).to_dict()
            except NinExportError as e:  # an engine with no GPU here, say
                return {"artifact": path.name, "status": "not evaluated", "reason": str(e)}

        acc[label] = state.stage(
            f"{name}/eval-{label}", {"artifact": _sha(path), "data": cfg.data, "limit": cfg.eval_limit}, [], do_eval
        )
    return acc


def _bench_and_report(
    cfg: PipelineConfig,
    state: _State,
    out: Path,
    ckpts: dict[str, str],
    artifacts: dict[str, dict[str, str]],
    accuracy: dict[str, Any],
    say: Say,
) -> dict[str, Any]:
    """Stage 6: the benchmark of both models on the artifacts made above, then the report."""
    b = cfg.bench
    names = cfg.models()
    bcfg = BenchConfig(
        model=names[0],
        baseline=names[1],
        runtimes=b.backends,
        batches=b.batches,
        threads=cfg.threads,
        timing=TimingOptions(b.warmup_ms, b.min_iters, b.min_ms),
        out_dir=os.fspath(out / "bench"),
        data=cfg.data,
        weights=ckpts,
        artifacts=artifacts,
        eval_count=cfg.eval_limit or 200,
        model_kwargs=cfg.model_kwargs,
        power=b.power,
        idle_s=b.idle_s,
        cuda_graph=b.cuda_graph,
        streams=b.streams,
    )
    results = out / "bench" / "results.json"
    bench_key = {
        "artifacts": {m: {k: _sha(Path(v)) for k, v in a.items()} for m, a in artifacts.items()},
        "weights": {m: _sha(Path(c)) for m, c in ckpts.items()},
        "config": bcfg.to_dict(),
    }

    def do_bench() -> None:  # the stage's result is the results file itself
        run_bench(bcfg, progress=lambda m, dn, t: say(f"bench [{dn}/{t}] {m}"))

    state.stage("bench", bench_key, [results], do_bench)
    report_dir = out / "report"
    return state.stage(
        "report",
        {"results": _sha(results), "accuracy": accuracy},
        [report_dir / "report.md"],
        lambda: {"headline": render_report([results], report_dir, accuracy=accuracy)["headline"]},
    )


def run_pipeline(cfg: PipelineConfig, progress: Say | None = None) -> dict[str, Any]:
    """Run (or skip, where fresh) every stage; return the summary (artifacts, accuracy, report, headline)."""
    say = progress or (lambda _m: None)
    cfg.threads, note = cap_threads(cfg.threads)
    if note:
        say(note)
    if cfg.eval_limit is not None and cfg.eval_limit < 1:
        raise NinExportError(f"eval_limit must be at least 1 (or left out for every held-out image), got {cfg.eval_limit}")
    names = cfg.models()
    out = ensure_dir(cfg.out_dir)
    trained = [out / n / f"{n}.pt" for n in names if n not in cfg.weights]
    check_outputs([out / STATE_NAME, out / "summary.json", *trained], list(cfg.weights.values()))
    state = _State(out, say)
    have_trt = False
    if cfg.build.engines:
        try:
            load_trt()
            have_trt = True
        except NinExportError as e:
            say(f"engines skipped: {e}")
    summary: dict[str, Any] = {"out_dir": str(out), "models": {}, "data": cfg.data}
    bench_artifacts: dict[str, dict[str, str]] = {}
    ckpts: dict[str, str] = {}
    for name in names:
        d = ensure_dir(out / name)
        ckpt = _weights(cfg, state, name, d, say)
        graphs = _graphs(cfg, state, name, d, ckpt)
        artifacts: dict[str, Path] = {"checkpoint": ckpt, **{f"onnx-{p.value}": g for p, g in graphs.items()}}
        if have_trt:
            artifacts.update(_engines(cfg, state, name, d, graphs, say))
        acc = _accuracy(cfg, state, name, artifacts)
        ckpts[name] = str(ckpt)
        summary["models"][name] = {"artifacts": {k: str(v) for k, v in artifacts.items()}, "accuracy": acc}
        bench_artifacts[name] = {k: str(v) for k, v in artifacts.items() if k != "checkpoint"}
    accuracy = {m: v["accuracy"] for m, v in summary["models"].items()}
    rep = _bench_and_report(cfg, state, out, ckpts, bench_artifacts, accuracy, say)
    summary.update(
        report=str(out / "report" / "report.md"),
        headline=rep["headline"],
        ran=state.ran,
        skipped=state.skipped,
        failed=state.failed,
        seconds={k: v.get("seconds") for k, v in state.data["stages"].items() if k in state.ran},
    )
    write_json(out / "summary.json", summary)
    return summary
