"""The one artifact factory: from a checkpoint (or a seeded random init) to the ONNX graphs and engines a
plan asks for. ``bench`` calls it directly; ``pipeline`` passes its stage cache as the ``step`` hook, so
each step there is skipped when its inputs and outputs are unchanged.

A step that fails is recorded with its reason and the factory goes on with what does not depend on it:
the benchmark then reports the rows it cannot measure, and the pipeline exits 1 at the end.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .core._io import atomic_path, ensure_dir
from .core.artifact import CHECKPOINT, ONNX_FP32, ArtifactKey, ArtifactKind
from .core.enums import Int8Target, Precision
from .core.errors import NinExportError, first_line
from .quantize.ptq import QuantizeOptions
from .runtimes import Runtime
from .trt import BuildOptions

__all__ = ["ArtifactPlan", "Artifacts", "Step", "make_artifacts", "keys_for_rows"]

# (step name, what its result depends on, the files it writes, the work) -> the work's result. Paths among
# the inputs stand for their contents: the pipeline's cache keys them by sha256.
Step = Callable[[str, dict[str, Any], list[Path], Callable[[], Any]], Any]
Say = Callable[[str], None]


def _direct(_name: str, _inputs: dict[str, Any], _outputs: list[Path], work: Callable[[], Any]) -> Any:
    return work()


def keys_for_rows(rows: list[Runtime], precisions: list[Precision]) -> set[ArtifactKey]:
    """The artifacts these runtime rows run at these precisions (only the rows available here)."""
    return {r.artifact_key(p) for r in rows if r.unavailable() is None for p in precisions if p in r.precisions}


def _depth(key: ArtifactKey) -> int:
    """How many steps from the checkpoint: a parent always comes before what is made from it."""
    parent = key.parent()
    return 0 if parent is None else 1 + _depth(parent)


@dataclass
class ArtifactPlan:
    """What to make for one model, and how."""

    model: str
    out_dir: Path
    keys: set[ArtifactKey]  # what is wanted; what each is made from is added
    weights: Path | None = None  # the checkpoint; None: a random init (seeded) is saved as NAME.pt
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    # how graphs are quantized: precision and INT8 target are set per artifact; no calib_data: no INT8 graph
    quantize: QuantizeOptions = field(default_factory=lambda: QuantizeOptions(Precision.INT8))
    build: BuildOptions = field(default_factory=BuildOptions)
    given: dict[ArtifactKey, Path] = field(default_factory=dict)  # made elsewhere: used as they are
    failed: dict[ArtifactKey, str] = field(default_factory=dict)  # tried elsewhere and failed: reported, not retried

    def wanted(self) -> list[ArtifactKey]:
        """The keys with everything they are made from, parents first."""
        out: set[ArtifactKey] = set()
        for key in self.keys:
            k: ArtifactKey | None = key
            while k is not None and k not in out:
                out.add(k)
                k = None if k in self.given or k in self.failed else k.parent()
        return sorted(out, key=lambda k: (_depth(k), k.label))

    def path(self, key: ArtifactKey) -> Path:
        if key in self.given:
            return self.given[key]
        if key == CHECKPOINT and self.weights is not None:
            return self.weights
        return self.out_dir / key.file_name(self.model)

    def quantize_options(self, key: ArtifactKey) -> QuantizeOptions:
        return dataclasses.replace(self.quantize, precision=key.precision, target=key.int8_target or self.quantize.target)


@dataclass
class Artifacts:
    """What a plan produced: the files, and why any is missing ((status, reason))."""

    plan: ArtifactPlan
    files: dict[ArtifactKey, Path] = field(default_factory=dict)
    problems: dict[ArtifactKey, tuple[str, str]] = field(default_factory=dict)

    def labelled(self) -> dict[str, Path]:
        return {k.label: p for k, p in self.files.items()}

    def failures(self) -> dict[ArtifactKey, str]:
        """Why each artifact that failed (or whose parent failed) is missing; skipped ones are not failures."""
        return {k: why for k, (status, why) in self.problems.items() if status == "failed"}


def _step_name(model: str, key: ArtifactKey) -> str:
    """The stage names the pipeline has always used: NAME/train|init, NAME/onnx, NAME/fp16, NAME/engine-int8."""
    if key.kind is ArtifactKind.CHECKPOINT:
        return f"{model}/init"
    if key.kind is ArtifactKind.ONNX:
        return f"{model}/onnx" if key == ONNX_FP32 else f"{model}/{key.label.removeprefix('onnx-')}"
    return f"{model}/{key.label}"


def _init(plan: ArtifactPlan) -> dict[str, Any]:
    """A seeded random init, saved as a checkpoint that every later step and worker rebuilds the model from."""
    import torch

    from .models import build_model

    torch.manual_seed(plan.seed)
    model = build_model(plan.model, None, **plan.model_kwargs)
    with atomic_path(plan.path(CHECKPOINT), suffix=".pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": model.meta.to_dict()}, tmp)
    return {"weights": f"random-init (seed {plan.seed})"}


def _export(plan: ArtifactPlan, ckpt: Path) -> dict[str, Any]:
    from .export.exporter import ExportOptions, export_model
    from .models import build_model

    # a random init (the factory's own) is exported as one: its metadata says so, and the INT8 agreement
    # gate, meaningless on near-flat random logits, is not applied to its graphs
    random_init = plan.weights is None and CHECKPOINT not in plan.given
    model = build_model(plan.model, ckpt, **plan.model_kwargs)
    res = export_model(model, plan.out_dir, weights=None if random_init else ckpt, options=ExportOptions())
    return {"nodes": res.nodes, "sim_nodes": res.sim_nodes}


def _quantize(plan: ArtifactPlan, key: ArtifactKey, parent: Path) -> dict[str, Any]:
    from .quantize.ptq import quantize

    r = quantize(parent, plan.quantize_options(key), plan.path(key))
    return {"agreement": r.agreement.to_dict(), "notes": r.notes, "cache": r.cache}


def _engine(plan: ArtifactPlan, key: ArtifactKey, parent: Path) -> dict[str, Any]:
    from .trt.convert import engine_from_onnx

    info = engine_from_onnx(parent, None, plan.build, output=plan.path(key)).engine_info
    return {"bytes": info.bytes, "flavour": info.flavour.value, "targets": info.targets}


def _work(plan: ArtifactPlan, key: ArtifactKey, parent: Path | None) -> tuple[dict[str, Any], list[Path], Callable[[], Any]]:
    """A step's inputs (for the cache key), outputs and work."""
    if key.kind is ArtifactKind.CHECKPOINT:
        inputs = {"model": plan.model, "kwargs": plan.model_kwargs, "seed": plan.seed}
        return inputs, [plan.path(key)], lambda: _init(plan)
    assert parent is not None
    if key == ONNX_FP32:
        from .export.exporter import ExportOptions

        inputs = {"weights": parent, "kwargs": plan.model_kwargs, "export": ExportOptions().to_dict()}
        return inputs, [plan.out_dir / f"{plan.model}.onnx", plan.path(key)], lambda: _export(plan, parent)
    if key.kind is ArtifactKind.ONNX:
        # to_dict() holds only the options this precision uses (calibration for INT8 only)
        inputs = {"parent": parent, "options": plan.quantize_options(key).to_dict()}
        return inputs, [plan.path(key)], lambda: _quantize(plan, key, parent)
    return {"parent": parent, "build": dataclasses.asdict(plan.build)}, [plan.path(key)], lambda: _engine(plan, key, parent)


def _why_not(plan: ArtifactPlan, key: ArtifactKey, made: Artifacts) -> tuple[str, str] | None:
    parent = key.parent()
    if parent is not None and parent not in made.files:
        status, reason = made.problems.get(parent, ("skipped", f"no {parent.label}"))
        return ("skipped" if status == "skipped" else "failed", reason)
    if key.kind is ArtifactKind.ONNX and key.precision is Precision.INT8 and plan.quantize.calib_data is None:
        return ("skipped", "no calibration data (--data) for INT8")
    return None


def _what(key: ArtifactKey) -> str:
    if key.kind is ArtifactKind.ENGINE:
        return "engine build"
    if key.int8_target is Int8Target.ORT_CPU:
        return "int8 graph for the CPU rows"
    return f"{key.precision.value} graph" if key.kind is ArtifactKind.ONNX else key.label


def make_artifacts(plan: ArtifactPlan, step: Step | None = None, say: Say | None = None) -> Artifacts:
    """Make (or take as given, or let ``step`` skip as fresh) every artifact of ``plan``, parents first."""
    step, say = step or _direct, say or (lambda _m: None)
    ensure_dir(plan.out_dir)
    made = Artifacts(plan)
    for key in plan.wanted():
        if key in plan.given or (key == CHECKPOINT and plan.weights is not None):
            path = plan.path(key)
            if not path.is_file():
                raise NinExportError(f"{plan.model}: the given {key.label} '{path}' is not a file")
            made.files[key] = path
            continue
        if key in plan.failed:
            made.problems[key] = ("failed", plan.failed[key])
            continue
        if (problem := _why_not(plan, key, made)) is not None:
            made.problems[key] = problem
            continue
        parent = key.parent()
        inputs, outputs, work = _work(plan, key, made.files[parent] if parent is not None else None)
        say(f"{plan.model}: making {key.label}")
        try:
            step(_step_name(plan.model, key), inputs, outputs, work)
        except NinExportError as e:
            made.problems[key] = ("failed", f"{_what(key)}: {first_line(e)}")
            continue
        made.files[key] = plan.path(key)
    return made


def sizes(made: Artifacts) -> dict[str, int]:
    """Bytes of every file made or given, by label."""
    return {k.label: os.stat(p).st_size for k, p in made.files.items() if k.kind is not ArtifactKind.CHECKPOINT}
