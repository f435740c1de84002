"""One command from model to artifacts, for a NiN and its FC-headed twin.

Stages so far: build (random init or given weights) -> ONNX -> onnxsim, each verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .export import ExportOptions, export_model
from .manifest import read_manifest
from .models import build_model, get_spec

__all__ = ["PipelineConfig", "run_pipeline"]

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
