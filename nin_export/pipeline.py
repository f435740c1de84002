"""One command from model to artifacts, for a NiN and its FC-headed twin.

Stages so far: build (random init or given weights) -> ONNX -> onnxsim, each verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .enums import Precision
from .errors import NinExportError
from .export import ExportOptions, export_model
from .manifest import read_manifest, record_artifact
from .models import build_model, get_spec
from .onnx_utils import load_onnx
from .quantize import QuantizeOptions, quantize

if TYPE_CHECKING:
    from .trt import BuildOptions, BuildResult

__all__ = ["PipelineConfig", "run_pipeline", "engine_from_onnx"]

DEFAULT_MODEL = "nin-cifar10"


@dataclass
class PipelineConfig:
    model: str = DEFAULT_MODEL
    baseline: str | None = None  # default: the model's FC-headed twin
    weights: str | None = None
    baseline_weights: str | None = None
    out_dir: str = "runs/default"
    export: ExportOptions = field(default_factory=ExportOptions)

    def models(self) -> list[tuple[str, str | None]]:
        baseline = self.baseline or get_spec(self.model).twin
        pairs = [(self.model, self.weights)]
        if baseline:
            pairs.append((baseline, self.baseline_weights))
        return pairs


def run_pipeline(cfg: PipelineConfig, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run every stage for the model and its baseline; return the manifest entries written."""
    say = progress or (lambda _m: None)
    out = Path(cfg.out_dir)
    rows: list[dict[str, Any]] = []
    for name, weights in cfg.models():
        say(f"[{name}] building")
        model = build_model(name, weights)
        res = export_model(model, out, weights=weights, options=cfg.export, progress=lambda m, n=name: say(f"[{n}] {m}"))
        arts = read_manifest(out)["artifacts"]
        for p in (res.onnx_path, res.sim_path):
            if p is not None:
                rows.append(dict(arts[os.path.basename(p)], model=name))
    return rows


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
