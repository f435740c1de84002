"""What an artifact is: its kind, precision and (for INT8) the runtime family its Q/DQ layout is made for.
One ``ArtifactKey`` names a file everywhere: the factory that makes it, the runtime table that runs it,
the pipeline's stage cache, the benchmark's rows and the results' labels ("onnx-int8-ort-cpu")."""

from __future__ import annotations

from dataclasses import dataclass

from .enums import Int8Target, Precision, StrEnum

__all__ = ["ArtifactKind", "ArtifactKey", "CHECKPOINT", "ONNX_FP32"]


class ArtifactKind(StrEnum):
    CHECKPOINT = "checkpoint"  # PyTorch weights: the model is rebuilt from the registry
    ONNX = "onnx"  # an ONNX graph at the key's precision
    ENGINE = "engine"  # a TensorRT plan with its sidecar


@dataclass(frozen=True)
class ArtifactKey:
    """One artifact of a model. A checkpoint has one key whatever precision a runner casts it to; an INT8
    graph is made for TensorRT's Q/DQ placement or for the CPU runtimes' layout (``int8_target``)."""

    kind: ArtifactKind
    precision: Precision = Precision.FP32
    int8_target: Int8Target | None = None  # INT8 only; None there means TensorRT's placement

    def __post_init__(self) -> None:
        if self.kind is ArtifactKind.CHECKPOINT:
            object.__setattr__(self, "precision", Precision.FP32)
        if self.precision is not Precision.INT8:
            object.__setattr__(self, "int8_target", None)
        elif self.int8_target is None:
            object.__setattr__(self, "int8_target", Int8Target.TENSORRT)
        if self.kind is ArtifactKind.ENGINE and self.int8_target is Int8Target.ORT_CPU:
            raise ValueError("TensorRT builds INT8 engines from its own Q/DQ placement only, not the CPU runtimes' layout")

    @property
    def label(self) -> str:
        """As results, manifests and the pipeline's summary spell it: checkpoint, onnx-fp16, onnx-int8-ort-cpu."""
        if self.kind is ArtifactKind.CHECKPOINT:
            return "checkpoint"
        tail = f"-{self.int8_target.value}" if self.int8_target is Int8Target.ORT_CPU else ""
        return f"{self.kind.value}-{self.precision.value}{tail}"

    @classmethod
    def parse(cls, label: str) -> ArtifactKey:
        """The key a label names; ValueError names the labels there are."""
        for key in cls.every():
            if key.label == label:
                return key
        raise ValueError(f"unknown artifact '{label}': one of {', '.join(k.label for k in cls.every())}")

    @classmethod
    def every(cls) -> list[ArtifactKey]:
        keys = [CHECKPOINT]
        for kind in (ArtifactKind.ONNX, ArtifactKind.ENGINE):
            keys += [cls(kind, p) for p in Precision]
        return keys + [cls(ArtifactKind.ONNX, Precision.INT8, Int8Target.ORT_CPU)]

    def parent(self) -> ArtifactKey | None:
        """The artifact this one is made from: an engine from its graph, a graph from the FP32 graph, that
        from the checkpoint."""
        if self.kind is ArtifactKind.ENGINE:
            return ArtifactKey(ArtifactKind.ONNX, self.precision, self.int8_target)
        if self.kind is ArtifactKind.ONNX:
            return CHECKPOINT if self.precision is Precision.FP32 else ONNX_FP32
        return None

    def file_name(self, model: str) -> str:
        """The file the factory writes for ``model``: NAME.pt, NAME.sim.onnx (the simplified FP32 graph),
        NAME.fp16.onnx, NAME.int8.ort-cpu.onnx, NAME.int8.engine."""
        if self.kind is ArtifactKind.CHECKPOINT:
            return f"{model}.pt"
        if self.kind is ArtifactKind.ONNX and self.precision is Precision.FP32:
            return f"{model}.sim.onnx"
        tail = f".{self.int8_target.value}" if self.int8_target is Int8Target.ORT_CPU else ""
        return f"{model}.{self.precision.value}{tail}.{self.kind.value}"


CHECKPOINT = ArtifactKey(ArtifactKind.CHECKPOINT)
ONNX_FP32 = ArtifactKey(ArtifactKind.ONNX, Precision.FP32)
