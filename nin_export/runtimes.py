"""The one table of runtimes: every place that runs a model (bench, eval, pipeline, the CLI's help)
reads it, and nothing else knows which runtimes exist.

A row gives the runtime's name (as results and reports spell it), the short name ``--backends``
takes, its runner factory, what artifact it runs (a checkpoint, an ONNX graph or an engine), the
precisions it runs, its device, whether it needs a GPU, and a probe that says why it is missing.
Adding a runtime is one row here, its runner, and its name in the results schema.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .core.artifact import ArtifactKey, ArtifactKind
from .core.enums import Int8Target, Precision
from .core.errors import NinExportError
from .runners.base import Runner

__all__ = [
    "ArtifactKind",
    "RunTarget",
    "Runtime",
    "RUNTIMES",
    "get_runtime",
    "select_runtimes",
    "runtime_for_artifact",
    "runtime_help",
]


@dataclass(frozen=True)
class RunTarget:
    """What a runner factory needs: the artifact, and for a checkpoint the model to rebuild."""

    artifact: Path
    precision: Precision = Precision.FP32
    model: str | None = None  # registered model name (checkpoints)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"  # "cpu" or "cuda" (resolved from the row's device and the machine)
    threads: int | None = None
    cuda_graph: bool = False  # GPU runners: capture the compute once in a CUDA graph and replay it


@dataclass(frozen=True)
class Runtime:
    name: str
    alias: str
    description: str
    artifact: ArtifactKind
    precisions: tuple[Precision, ...]
    device: str  # "cpu", "cuda", or "auto" (CUDA where there is a GPU, else the CPU)
    needs_gpu: bool
    factory: Callable[[RunTarget], Runner]
    probe: Callable[[], str | None]  # None: available here; else why not
    gpu_only: tuple[Precision, ...] = ()  # precisions this runtime measures on a GPU only
    # the INT8 graph this runtime is measured with: TensorRT's placement, or onnxruntime's CPU layout
    int8_target: Int8Target = Int8Target.TENSORRT

    def unavailable(self) -> str | None:
        """Why this runtime cannot be used here (None: it can)."""
        return self.probe()

    def skip_reason(self, precision: Precision, have_gpu: bool, no_gpu_why: str | None = None) -> str | None:
        """Why a row at ``precision`` cannot be measured here (None: it can). ``no_gpu_why`` says why a GPU
        that is there cannot be used (torch without CUDA, say)."""
        if precision not in self.precisions:
            return f"{self.name} has no {precision.value.upper()} path here; " + _elsewhere(precision, self)
        if (why := self.unavailable()) is not None:
            return why
        if not have_gpu and (self.needs_gpu or precision in self.gpu_only):
            return f"{self.name} {precision.value.upper()} runs on an NVIDIA GPU only: " + (no_gpu_why or "there is none here")
        return None

    def artifact_key(self, precision: Precision) -> ArtifactKey:
        """The artifact this runtime runs at ``precision``: for INT8, the graph made for its Q/DQ layout."""
        return ArtifactKey(self.artifact, precision, self.int8_target if precision is Precision.INT8 else None)

    def resolve_device(self, have_gpu: bool) -> str:
        return "cuda" if self.device == "cuda" or (self.device == "auto" and have_gpu) else "cpu"


def _elsewhere(precision: Precision, row: Runtime) -> str:
    others = [r.name for r in RUNTIMES if precision in r.precisions and r is not row]
    return f"{precision.value.upper()} runs through {', '.join(others)}" if others else "no runtime runs it"


# --- factories and probes (lazy imports: an onnxruntime worker never loads torch or TensorRT) -----


def _torch_runner(t: RunTarget) -> Runner:
    import torch

    from .models import build_model
    from .runners.torch_runner import TorchRunner

    model = build_model(t.model or "", os.fspath(t.artifact), **t.model_kwargs)
    dtype = torch.float16 if t.precision is Precision.FP16 else torch.float32
    return TorchRunner(model, device=t.device, dtype=dtype, threads=t.threads, cuda_graph=t.cuda_graph)


def _ort_runner(t: RunTarget) -> Runner:
    from .runners.onnxrt import OrtRunner

    return OrtRunner(t.artifact, threads=t.threads)


def _ort_gpu(providers_name: str) -> Callable[[RunTarget], Runner]:
    def make(t: RunTarget) -> Runner:
        from .runners import onnxrt

        return onnxrt.OrtRunner(t.artifact, providers=getattr(onnxrt, providers_name), threads=t.threads)

    return make


def _provider_probe(provider: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        from .runners.onnxrt import provider_missing

        return provider_missing(provider)

    return probe


def _trt_runner(t: RunTarget) -> Runner:
    from .trt.runner import TrtRunner

    return TrtRunner(t.artifact, cuda_graph=t.cuda_graph)


def _always() -> str | None:
    return None


def _ov_runner(t: RunTarget) -> Runner:
    from .runners.openvino import OvRunner, half_precision_hint

    hint = half_precision_hint() if t.precision is Precision.FP16 else "f32"
    return OvRunner(t.artifact, threads=t.threads, precision_hint=hint)


def _ov_probe() -> str | None:
    from .runners.openvino import openvino_missing

    return openvino_missing()


def _trt_probe() -> str | None:
    from .trt import load_trt

    try:
        load_trt()
    except NinExportError as e:
        return str(e)
    return None


RUNTIMES: tuple[Runtime, ...] = (
    Runtime(
        "torch",
        "torch",
        "PyTorch eager, from the checkpoint",
        ArtifactKind.CHECKPOINT,
        (Precision.FP32, Precision.FP16),
        "auto",
        False,
        _torch_runner,
        _always,
        gpu_only=(Precision.FP16,),
    ),
    Runtime(
        "onnxruntime",
        "ort",
        "onnxruntime, CPU execution provider",
        ArtifactKind.ONNX,
        (Precision.FP32, Precision.FP16, Precision.INT8),
        "cpu",
        False,
        _ort_runner,
        _always,
        int8_target=Int8Target.ORT_CPU,  # its CPU kernels want uint8 activations and fused QLinear ops
    ),
    Runtime(
        "onnxruntime-cuda",
        "ort-cuda",
        "onnxruntime, CUDA execution provider",
        ArtifactKind.ONNX,
        (Precision.FP32, Precision.FP16, Precision.INT8),
        "cuda",
        True,
        _ort_gpu("CUDA_PROVIDERS"),
        _provider_probe("CUDAExecutionProvider"),
    ),
    Runtime(
        "onnxruntime-trt",
        "ort-trt",
        "onnxruntime, TensorRT execution provider",
        ArtifactKind.ONNX,
        (Precision.FP32, Precision.FP16, Precision.INT8),
        "cuda",
        True,
        _ort_gpu("TENSORRT_PROVIDERS"),
        _provider_probe("TensorrtExecutionProvider"),
    ),
    Runtime(
        "tensorrt",
        "trt",
        "TensorRT or TensorRT-RTX engine",
        ArtifactKind.ENGINE,
        (Precision.FP32, Precision.FP16, Precision.INT8),
        "cuda",
        True,
        _trt_runner,
        _trt_probe,
    ),
    Runtime(
        "openvino",
        "ov",
        "OpenVINO, CPU plugin",  # FP16 row: the f16 or bf16 inference precision where the CPU has it, else f32
        ArtifactKind.ONNX,
        (Precision.FP32, Precision.FP16, Precision.INT8),
        "cpu",
        False,
        _ov_runner,
        _ov_probe,  # optional: pip install 'nin-export[openvino]'
        # x86 integer kernels take uint8 activations (u8 x s8): faster in OpenVINO than TensorRT's int8 placement
        int8_target=Int8Target.ORT_CPU,
    ),
)


def get_runtime(name: str) -> Runtime:
    """A row by its name or its short name."""
    for r in RUNTIMES:
        if name in (r.name, r.alias):
            return r
    raise NinExportError(f"unknown runtime '{name}': choose from {', '.join(r.alias for r in RUNTIMES)}")


def select_runtimes(names: list[str] | None) -> list[Runtime]:
    """The rows named (names or short names), or every row when none is named."""
    return [get_runtime(n) for n in names] if names else list(RUNTIMES)


def runtime_for_artifact(kind: ArtifactKind) -> Runtime:
    """The default runtime of an artifact kind: the first row that runs it."""
    return next(r for r in RUNTIMES if r.artifact is kind)


def runtime_help() -> str:
    """One line per runtime, for --help texts."""
    return "; ".join(f"{r.alias} ({r.description})" for r in RUNTIMES)
