"""ModelMeta: the one record of what a model artifact is.

Written by ``train`` (a checkpoint's ``meta`` dict) and by ``export`` (the ONNX metadata_props),
copied into every engine sidecar, and read back by preprocessing, evaluation, quantization and
the engine builder. Every reader goes through ``ModelMeta.from_dict``, which checks the types of
the fields it knows and keeps the rest (training history, layout notes) in ``extra``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from .data import ModelDefaults, Preprocess
from .errors import FileFormatError

__all__ = ["ModelMeta"]


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _numbers(v: Any) -> bool:
    return (
        isinstance(v, (list, tuple))
        and bool(v)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    )


# field -> (check, what it must be)
_CHECKS: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str) and bool(v), "a model name"),
    "num_classes": (_positive_int, "a positive integer"),
    "in_channels": (_positive_int, "a positive integer"),
    "fc_width": (_positive_int, "a positive integer"),
    "input_size": (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_positive_int(x) for x in v),
        "[height, width] with positive integers",
    ),
    "mean": (_numbers, "a list of finite numbers"),
    "std": (lambda v: _numbers(v) and all(x > 0 for x in v), "a list of positive numbers"),
    "crop_pct": (lambda v: isinstance(v, (int, float)) and 0 < v <= 1, "a number in (0, 1]"),
    "head": (lambda v: v in ("gap", "fc"), "'gap' or 'fc'"),
    "classes": (lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v), "a list of class names"),
    "dataset": (lambda v: isinstance(v, str), "a string"),
    "accuracy": (lambda v: isinstance(v, dict), "an object"),
    "weights": (lambda v: isinstance(v, str), "a string"),
    "weights_sha256": (lambda v: isinstance(v, str), "a string"),
    "params": (_positive_int, "a positive integer"),
    "macs": (lambda v: isinstance(v, int) and v >= 0, "an integer"),
}


MIN_STD = 1e-3  # normalization stds of images in [0, 1] are about 0.2; below this, the metadata is broken


@dataclass
class ModelMeta:
    """What a checkpoint, an ONNX or an engine says about its model. ``None``: not recorded."""

    model: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: tuple[int, int] | None = None
    fc_width: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    head: str | None = None
    classes: list[str] | None = None
    dataset: str | None = None
    accuracy: dict[str, Any] | None = None
    weights: str | None = None  # file name of the weights, or "random-init"
    weights_sha256: str | None = None
    params: int | None = None
    macs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # everything else, kept as it was written

    @classmethod
    def from_dict(cls, data: Any, source: str = "metadata") -> "ModelMeta":
        """Check and adopt a dict (checkpoint ``meta``, decoded ONNX metadata, a sidecar's copy)."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise FileFormatError(f"{source}: the model metadata is a {type(data).__name__}, not a dict; re-export or retrain it")
        known = {f.name for f in fields(cls)} - {"extra"}
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            check, want = _CHECKS[key]
            if value is not None and not check(value):
                raise FileFormatError(
                    f"{source}: metadata field '{key}' is {str(value)[:60]!r}, expected {want}; "
                    f"re-export it with 'nin-export onnx' (or retrain the checkpoint)"
                )
            if value is not None and key in ("input_size", "mean", "std"):
                value = tuple(value)
            kw[key] = value
        meta = cls(**kw, extra={k: v for k, v in data.items() if k not in known})
        if (why := meta._contradiction()) is not None:
            raise FileFormatError(f"{source}: the metadata contradicts itself ({why}); re-export it (or retrain the checkpoint)")
        return meta

    def _contradiction(self) -> str | None:
        """Fields that cannot all be true: the counts of means, stds, channels and class names, a std that would
        blow the inputs up."""
        if self.mean and self.std and len(self.mean) != len(self.std):
            return f"{len(self.mean)} means but {len(self.std)} stds"
        for what, v in (("means", self.mean), ("stds", self.std)):
            if v and self.in_channels and len(v) not in (1, self.in_channels):
                return f"{len(v)} {what} for {self.in_channels} input channels"
        if self.std and min(self.std) < MIN_STD:
            return f"a std of {min(self.std):g}, below {MIN_STD:g}: inputs would be scaled by {1 / min(self.std):.3g}"
        if self.classes and self.num_classes and len(self.classes) != self.num_classes:
            return f"{len(self.classes)} class names for {self.num_classes} classes"
        return None

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready dict (the layout checkpoints and ONNX files have always carried)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or v is None:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        out.update(self.extra)
        return out

    def preprocess(self, spec: ModelDefaults | None = None) -> Preprocess:
        """The preprocessing this model expects. Fields not recorded (a plain state_dict, an older file)
        come from the registered model's ``spec``; without one they must all be recorded."""
        if spec is not None:
            c = self.in_channels or spec.in_channels
            hw = self.input_size or spec.input_size
            pre = Preprocess.for_spec(spec, c, hw)
            if self.mean and self.std and len(self.mean) == c:
                pre = Preprocess(hw, c, self.mean, self.std, self.crop_pct or pre.crop_pct)
            return pre
        size, channels, mean, std = self.input_size, self.in_channels, self.mean, self.std
        if size is None or channels is None or mean is None or std is None:
            missing = [k for k in ("input_size", "in_channels", "mean", "std") if getattr(self, k) is None]
            raise FileFormatError(
                f"the model carries no preprocessing metadata ({', '.join(missing)} missing): "
                f"export it with 'nin-export onnx', or give data already in model layout (.npy)"
            )
        return Preprocess(size, channels, mean, std, float(self.crop_pct or 1.0))
