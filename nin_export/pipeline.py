"""One command from model to report, for a NiN and its FC-headed twin.

Stages, per model: train (or take given weights) -> ONNX + onnxsim -> FP16 and INT8 graphs ->
engines (where a TensorRT is installed) -> accuracy of every artifact on the held-out split;
then the benchmark of both models and the report. Each stage has a key (the sha256 of its
inputs and options); a stage whose key and outputs are unchanged is skipped, so a second run
does nothing, a changed option re-runs only what depends on it, and a failed run resumes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .artifacts import ArtifactPlan, Artifacts, keys_for_rows, make_artifacts
from .bench.power import PowerOptions
from .bench.report import render_report
from .bench.run import BenchConfig, run_bench
from .core._io import check_outputs, ensure_dir, read_json, sha256_file, write_json
from .core.artifact import ArtifactKey, ArtifactKind
from .core.config import load_settings
from .core.defaults import DEFAULT_DATA, DEFAULT_EVAL_COUNT, PIPELINE_BATCHES, PIPELINE_MIN_MS
from .core.enums import Precision
from .core.errors import NinExportError
from .core.parse import batch_profile_for, cap_threads
from .evaluate import evaluate
from .models import DEFAULT_MODEL, build_model, get_spec
from .quantize.ptq import QuantizeOptions
from .runners.timing import TimingOptions
from .runtimes import select_runtimes
from .train import TrainOptions, train
from .trt import BuildOptions, load_trt

__all__ = ["PipelineConfig", "BuildSection", "BenchSection", "run_pipeline", "load_config", "STATE_NAME"]

STATE_NAME = "pipeline-state.json"
Say = Callable[[str], None]


@dataclass
class BuildSection(BuildOptions):
    """[build]: the engine build options (the batch profile follows [bench] batches), and whether to build."""

    engines: bool = True  # where a TensorRT is installed


@dataclass
class BenchSection:
    """[bench], with [bench.timing] and [bench.power] tables. Shorter timing and fewer batches than
    ``nin-export bench`` by default, so the whole pipeline stays a few minutes on a CPU."""

    batches: list[int] = field(default_factory=lambda: list(PIPELINE_BATCHES))  # the engine profile follows
    backends: list[str] | None = None  # runtimes (runtimes.RUNTIMES); default: every one
    timing: TimingOptions = field(default_factory=lambda: TimingOptions(min_ms=PIPELINE_MIN_MS))
    power: PowerOptions = field(default_factory=PowerOptions)
    cuda_graph: bool = False  # GPU rows: replay the compute from a CUDA graph
    streams: int = 1  # GPU rows: above 1, also throughput over this many streams


@dataclass
class PipelineConfig:
    """The settings file: top-level keys, and [train], [quantize], [build] and [bench] tables that are the
    library's own option types (TrainOptions, QuantizeOptions, BuildOptions, TimingOptions, PowerOptions)."""

    model: str = DEFAULT_MODEL
    baseline: str | None = None  # default: the model's FC-headed twin
    data: str = DEFAULT_DATA  # training, calibration and evaluation images (one fixed split)
    weights: dict[str, str] = field(default_factory=dict)  # model -> checkpoint: skip training it
    model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create_model options
    out_dir: str = "runs/default"
    eval_limit: int | None = None
    threads: int | None = None
    train: TrainOptions = field(default_factory=TrainOptions)
    # precision and calib_data are the pipeline's: every precision is made, from the top-level data
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    build: BuildSection = field(default_factory=BuildSection)
    bench: BenchSection = field(default_factory=BenchSection)

    def models(self) -> list[str]:
        baseline = self.baseline or get_spec(self.model).twin
        if baseline is None:
            raise NinExportError(f"{self.model} has no FC-headed twin: give --baseline")
        return [self.model, baseline]

    def check(self) -> None:
        """What the dataclass types cannot say: one line for the first setting that does not fit."""
        if self.eval_limit is not None and self.eval_limit < 1:
            raise NinExportError(f"eval_limit must be at least 1 (or left out for every held-out image), got {self.eval_limit}")
        if self.quantize.precision is not Precision.INT8 or self.quantize.calib_data is not None:
            raise NinExportError(
                "config: quantize.precision and quantize.calib_data are the pipeline's (every precision, from data)"
            )
        self.bench.power.check()

    def override(self, *, epochs: int | None = None, weights: tuple[str | None, str | None] = (None, None), **top: Any) -> None:
        """Settings given on the command line win over the file's: top-level keys (model, baseline, data, out_dir)
        that are not None, the training epochs, and checkpoints for the model and its baseline."""
        for key, val in top.items():
            if val is not None:
                setattr(self, key, val)
        if epochs is not None:
            self.train.epochs = epochs
        self.weights = dict(self.weights, **{n: w for n, w in zip(self.models(), weights) if w})

    def quantize_options(self) -> QuantizeOptions:
        return dataclasses.replace(self.quantize, calib_data=self.data)


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
        """Run ``fn`` unless the stage's key (its parts; a Path stands for its sha256) and outputs are unchanged."""
        parts = {k: _sha(v) if isinstance(v, Path) else v for k, v in key_parts.items()}
        key = hashlib.sha256(json.dumps({**parts, "nin-export": __version__}, sort_keys=True, default=str).encode()).hexdigest()
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
    topts = dataclasses.replace(
        cfg.train,
        threads=cfg.threads,
        input_size=kw.get("input_size", cfg.train.input_size),
        in_channels=kw.get("in_channels", cfg.train.in_channels),
        fc_width=kw.get("fc_width", cfg.train.fc_width),
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


def _keys(cfg: PipelineConfig, have_trt: bool) -> set[ArtifactKey]:
    """Every graph, the engines where a TensorRT is here, and whatever the benchmark's rows run (the
    onnxruntime-CPU INT8 graph, say), so that the benchmark makes nothing outside the stage cache."""
    keys = {ArtifactKey(ArtifactKind.ONNX, p) for p in Precision}
    if have_trt:
        keys |= {ArtifactKey(ArtifactKind.ENGINE, p) for p in Precision}
    rows = [r for r in select_runtimes(cfg.bench.backends) if have_trt or r.artifact is not ArtifactKind.ENGINE]
    return keys | keys_for_rows(rows, list(Precision))


def _artifacts(cfg: PipelineConfig, state: _State, name: str, d: Path, ckpt: Path, have_trt: bool, say: Say) -> Artifacts:
    """Stages 2-4, through the one artifact factory: ONNX + onnxsim, FP16 and INT8 graphs, engines."""
    build = dataclasses.replace(cfg.build, batch=cfg.build.batch or batch_profile_for(cfg.bench.batches))
    plan = ArtifactPlan(
        model=name,
        out_dir=d,
        keys=_keys(cfg, have_trt),
        weights=ckpt,
        model_kwargs=cfg.model_kwargs.get(name, {}),
        quantize=cfg.quantize_options(),
        build=BuildOptions(**{f.name: getattr(build, f.name) for f in dataclasses.fields(BuildOptions)}),
    )
    made = make_artifacts(plan, step=state.stage)
    for key, why in made.failures().items():
        say(f"{name}/{key.label}: failed: {why}")
        state.failed[f"{name}/{key.label}"] = why
    return made


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
    failed: dict[str, dict[str, str]],
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
        timing=b.timing,
        out_dir=os.fspath(out / "bench"),
        data=cfg.data,
        weights=ckpts,
        artifacts=artifacts,
        failed_artifacts=failed,  # reported in the bench as failed, not made again there
        eval_count=cfg.eval_limit or DEFAULT_EVAL_COUNT,
        model_kwargs=cfg.model_kwargs,
        power=b.power,
        cuda_graph=b.cuda_graph,
        streams=b.streams,
        quantize=cfg.quantize_options(),
    )
    results = out / "bench" / "results.json"
    bench_key = {
        "artifacts": {m: {k: _sha(Path(v)) for k, v in a.items()} for m, a in artifacts.items()},
        "weights": {m: _sha(Path(c)) for m, c in ckpts.items()},
        "failed": failed,
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
    cfg.check()
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
    bench_failed: dict[str, dict[str, str]] = {}
    ckpts: dict[str, str] = {}
    for name in names:
        d = ensure_dir(out / name)
        ckpt = _weights(cfg, state, name, d, say)
        made = _artifacts(cfg, state, name, d, ckpt, have_trt, say)
        artifacts: dict[str, Path] = {"checkpoint": ckpt, **made.labelled()}
        acc = _accuracy(cfg, state, name, artifacts)
        ckpts[name] = str(ckpt)
        summary["models"][name] = {"artifacts": {k: str(v) for k, v in artifacts.items()}, "accuracy": acc}
        bench_artifacts[name] = {k: str(v) for k, v in artifacts.items() if k != "checkpoint"}
        bench_failed[name] = {k.label: why for k, why in made.failures().items()}
    accuracy = {m: v["accuracy"] for m, v in summary["models"].items()}
    rep = _bench_and_report(cfg, state, out, ckpts, bench_artifacts, bench_failed, accuracy, say)
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
