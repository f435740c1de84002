"""Comparing an artifact's outputs with its parent's: the figures every step records."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from ._format import share
from .enums import Precision
from .precision import PRECISIONS

__all__ = [
    "Agreement",
    "Tolerance",
    "compare",
    "random_inputs",
    "FP32_TOLERANCE",
    "TOLERANCES",
    "ENGINE_FP32_TOLERANCE",
    "tolerance_for",
]


@dataclass(frozen=True)
class Tolerance:
    """Pass when max|a-b| <= atol + rtol * max|ref|, top-1 agreement >= min_top1 and cosine >= min_cosine."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_top1: float = 0.0
    min_cosine: float = 0.0

    def describe(self) -> str:
        """The bounds that apply (an infinite atol bounds nothing, so it is not said)."""
        parts = [f"max|diff| <= {self.atol:g} + {self.rtol:g} * max|ref|"] if math.isfinite(self.atol) else []
        if self.min_top1:
            parts.append(f"top-1 agreement >= {share(self.min_top1)}")  # as precise as given: 0.999 is 99.9%
        if self.min_cosine:
            parts.append(f"cosine >= {self.min_cosine:g}")
        return ", ".join(parts) or "any outputs"


FP32_TOLERANCE = Tolerance()  # an export, or onnxsim, against PyTorch
# A converted graph against its FP32 parent: from the precision table.
TOLERANCES = {p: Tolerance(atol=i.atol, rtol=i.rtol, min_cosine=i.min_cosine) for p, i in PRECISIONS.items()}
# An FP32 engine against onnxruntime: TensorRT's TF32 convolutions and tactic choices.
ENGINE_FP32_TOLERANCE = Tolerance(atol=1e-3, rtol=1e-2)


def tolerance_for(precision: Precision, engine: bool = False) -> Tolerance:
    """The tolerance an artifact at ``precision`` is checked with against its parent."""
    return ENGINE_FP32_TOLERANCE if engine and precision is Precision.FP32 else TOLERANCES[precision]


@dataclass
class Agreement:
    n_samples: int
    max_abs: float
    max_rel: float  # max|a-b| / max|ref|: relative to the output's range, stable near zero
    mean_abs: float
    top1_agreement: float
    cosine: float  # mean per-sample cosine similarity of the logits
    tolerance: str
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, top-1 agreement {self.top1_agreement:.1%}, "
            f"cosine {self.cosine:.6f} over {self.n_samples} samples"
        )


def compare(refs: Iterable[np.ndarray], outs: Iterable[np.ndarray], tol: Tolerance = FP32_TOLERANCE) -> Agreement:
    """Compare lists of (N, classes) outputs batch by batch."""
    ref = np.concatenate([np.asarray(r, np.float64).reshape(len(r), -1) for r in refs])
    out = np.concatenate([np.asarray(o, np.float64).reshape(len(o), -1) for o in outs])
    if ref.shape != out.shape:
        raise ValueError(f"output shapes differ: {out.shape} vs reference {ref.shape}")
    diff = np.abs(ref - out)
    scale = float(np.abs(ref).max()) or 1.0
    max_abs = float(diff.max()) if diff.size else 0.0
    num = (ref * out).sum(1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    top1 = float((ref.argmax(1) == out.argmax(1)).mean())
    passed = (max_abs <= tol.atol + tol.rtol * scale) and top1 >= tol.min_top1 and float(cos.mean()) >= tol.min_cosine
    return Agreement(len(ref), max_abs, max_abs / scale, float(diff.mean()), top1, float(cos.mean()), tol.describe(), bool(passed))


def random_inputs(shapes: Sequence[tuple[int, ...]], seed: int = 0) -> list[np.ndarray]:
    """Standard-normal inputs (the scale of normalized images), reproducible."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]
