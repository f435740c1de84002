"""Top-1/top-5 accuracy of any artifact (checkpoint, ONNX at any precision, engine) on the held-out
part of a data source's fixed split: the same images for every artifact. The runtime that runs it
comes from the table in runtimes.py."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.data import DataError, align_classes, open_source
from .core.errors import NinExportError
from .core.meta import ModelMeta
from .core.onnx_utils import check_metadata_matches_graph, load_onnx, read_metadata
from .models import get_spec, load_checkpoint
from .runtimes import ArtifactKind, RunTarget, Runtime, get_runtime, runtime_for_artifact
from .trt import read_sidecar

__all__ = ["EvalResult", "evaluate", "artifact_meta", "topk"]

_KINDS = {
    ".pt": ArtifactKind.CHECKPOINT,
    ".pth": ArtifactKind.CHECKPOINT,
    ".onnx": ArtifactKind.ONNX,
    ".engine": ArtifactKind.ENGINE,
    ".plan": ArtifactKind.ENGINE,
}


@dataclass
class EvalResult:
    artifact: str
    kind: str
    samples: int
    top1: float
    top5: float | None
    data: str
    runtime: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def topk(logits: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    """Top-1, and top-5 where there are more than 5 classes."""
    top1 = float((logits.argmax(1) == y).mean())
    top5 = float((np.argsort(-logits, 1)[:, :5] == y[:, None]).any(1).mean()) if logits.shape[1] > 5 else None
    return top1, top5


def artifact_meta(path: Path) -> tuple[ArtifactKind, ModelMeta]:
    """What kind of artifact ``path`` is, and the ModelMeta it carries (empty for a plain state_dict)."""
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise NinExportError(f"'{path}' is not a checkpoint (.pt), an ONNX (.onnx) or an engine (.engine)")
    if kind is ArtifactKind.CHECKPOINT:
        return kind, load_checkpoint(path)[1]
    if kind is ArtifactKind.ONNX:
        model = load_onnx(path, check=False)
        meta = ModelMeta.from_dict(read_metadata(model), f"ONNX metadata of '{path}'")
        check_metadata_matches_graph(meta, model, path)
        return kind, meta
    return kind, ModelMeta.from_dict(read_sidecar(path, verify=False).get("model_metadata"), f"sidecar of '{path}'")


def _logits(rt: Runtime, target: RunTarget, x: np.ndarray) -> np.ndarray:
    with rt.factory(target) as runner:
        profile = runner.profile_range(runner.input_names[0])
        return runner.infer_batches(x, profile[2][0] if profile is not None else 32)


def evaluate(
    artifact: str | os.PathLike, data: str, limit: int | None = None, model: str | None = None, runtime: str | None = None
) -> EvalResult:
    """Top-1 (and top-5 with more than 5 classes) on the held-out (test) part of ``data``'s fixed split.
    ``runtime`` (a row of the runtime table) defaults to the first that runs this kind of artifact."""
    path = Path(artifact)
    if not path.is_file():
        raise NinExportError(f"'{path}' not found")
    if limit is not None and limit < 1:
        raise NinExportError(f"--limit must be at least 1, got {limit}")
    kind, meta = artifact_meta(path)
    rt = get_runtime(runtime) if runtime else runtime_for_artifact(kind)
    if rt.artifact is not kind:
        raise NinExportError(f"runtime {rt.alias} runs {rt.artifact.value} files, and '{path.name}' is a {kind.value}")
    name = model or meta.model
    if not name:
        raise NinExportError(f"'{path}' does not say which model it is: give --model")
    spec = get_spec(name)
    pre = meta.preprocess(spec)
    source = open_source(data, pre)
    align_classes(source, meta.classes, meta.num_classes or spec.num_classes)
    _, test = source.split()
    held = source.load(test[:limit] if limit else test)
    if held.y is None:
        raise DataError(f"{source.name} has no labels: accuracy needs labelled images (class sub-directories, .npz labels, digits)")
    device = rt.resolve_device(have_gpu=rt.needs_gpu)
    logits = _logits(rt, RunTarget(path, model=name, device=device), held.x)
    if logits.shape[1] <= int(held.y.max()):
        raise DataError(f"{source.name} has labels up to {int(held.y.max())} but the model has {logits.shape[1]} classes")
    top1, top5 = topk(logits.astype(np.float32), held.y)
    return EvalResult(path.name, kind.value, len(held.y), top1, top5, source.name, rt.name)
