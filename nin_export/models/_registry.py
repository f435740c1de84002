"""Model registry and factory, in the manner of timm's ``register_model`` / ``create_model``."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from ..core.data import Preprocess
from ..core.defaults import DEFAULT_MODEL
from ..core.errors import InputSizeError, ModelOptionError, NinExportError, UnknownModelError
from ..core.meta import ModelMeta
from ..core.parse import parse_input_size

__all__ = [
    "Classifier",
    "ModelSpec",
    "register_model",
    "create_model",
    "list_models",
    "get_spec",
    "parse_input_size",
    "DEFAULT_MODEL",
]

# Bounds on model options: far beyond any image classifier, short of what exhausts memory building it.
MAX_IN_CHANNELS, MAX_CLASSES, MAX_FC_WIDTH, MAX_INPUT_SIZE = 64, 100_000, 65_536, 4096

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Classifier(nn.Module):
    """A registered model. ``create_model`` attaches its facts, as timm attaches ``pretrained_cfg``:

    - ``spec``: its registry entry (defaults, head, twin);
    - ``meta``: its one record, the ModelMeta that checkpoints, ONNX files and sidecars carry (name, classes,
      channels, input size, fc_width, normalization, head, and any other builder option in ``extra``: what
      rebuilds it; once ``build_model`` loads a checkpoint, also the checkpoint's class names, dataset and
      accuracy).
    """

    spec: ModelSpec
    meta: ModelMeta

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input image."""
        c, hw = self.meta.in_channels, self.meta.input_size
        if c is None or hw is None:  # create_model records both; a model built without it has no record
            raise NinExportError(f"{type(self).__name__} was not built by create_model: its input shape is not recorded")
        return (c, *hw)


Builder = TypeVar("Builder", bound=Callable[..., Classifier])


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of nin-export needs to know about a registered model."""

    name: str
    builder: Callable[..., Classifier]
    description: str
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0  # resize to size/crop_pct, then center-crop to size (1.0: plain resize)
    head: str = "gap"  # "gap": global average pooling, size-agnostic; "fc": fixed input size
    twin: str | None = None  # the FC-headed twin of a NiN, or the NiN of a twin
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size_agnostic(self) -> bool:
        return self.head == "gap"

    def accepts(self, option: str) -> bool:
        """Whether the builder takes ``option`` (e.g. ``fc_width``, which only the fc-* twins have)."""
        params = inspect.signature(self.builder).parameters
        return option in params


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(**spec_kwargs: Any) -> Callable[[Builder], Builder]:
    """Decorator: register a builder ``fn(*, num_classes, in_channels, input_size, **kw)`` under its name.

    The registered name is the function name with underscores turned into dashes.
    """

    def wrap(fn: Builder) -> Builder:
        name = fn.__name__.replace("_", "-")
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' registered twice")
        _REGISTRY[name] = ModelSpec(name=name, builder=fn, description=(fn.__doc__ or "").strip().splitlines()[0], **spec_kwargs)
        return fn

    return wrap


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1, cutoff=0.4)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UnknownModelError(
            f"unknown model '{name}': {hint}choose one of {', '.join(_REGISTRY)} (see 'nin-export models')"
        ) from None


def _out_shape(spec: ModelSpec, kwargs: dict[str, Any], hw: tuple[int, int]) -> tuple[int, ...] | None:
    """Output shape of the model's trunk at ``hw`` on the meta device, or None if it cannot take it."""
    kw = dict(kwargs, input_size=hw)
    try:
        with torch.device("meta"):
            m = spec.builder(**kw)
            x = torch.empty(1, kw["in_channels"], *hw)
            return tuple(m.eval()(x).shape)
    except (RuntimeError, ValueError, InputSizeError):
        return None


def smallest_input_size(name: str, **kwargs: Any) -> int:
    """The smallest square input the model's trunk accepts (found on the meta device, no compute)."""
    spec = get_spec(name)
    kw = _defaults(spec, kwargs)
    lo, hi = 1, 512
    if _out_shape(spec, kw, (hi, hi)) is None:
        return hi
    while lo < hi:  # sizes that work form an upward-closed range for these nets
        mid = (lo + hi) // 2
        if _out_shape(spec, kw, (mid, mid)) is None:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _defaults(spec: ModelSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    kw = {k: v for k, v in kwargs.items() if v is not None}  # None keeps the model's own default
    if "fc_width" in kw and not spec.accepts("fc_width"):
        raise NinExportError(f"--fc-width applies to the fc-* twins only, not {spec.name}")
    kw.setdefault("num_classes", spec.num_classes)
    kw.setdefault("in_channels", spec.in_channels)
    kw["input_size"] = parse_input_size(kw.get("input_size")) or spec.input_size
    for key, top in (("fc_width", MAX_FC_WIDTH), ("in_channels", MAX_IN_CHANNELS), ("num_classes", MAX_CLASSES)):
        if key in kw and not 1 <= int(kw[key]) <= top:
            raise ModelOptionError(f"--{key.replace('_', '-')} must be in 1..{top}, got {kw[key]}")
    if max(kw["input_size"]) > MAX_INPUT_SIZE:
        raise ModelOptionError(f"--input-size {kw['input_size'][0]}x{kw['input_size'][1]} is over {MAX_INPUT_SIZE} pixels a side")
    return kw


def create_model(name: str, **kwargs: Any) -> Classifier:
    """Build a registered model. ``None`` kwargs are dropped so each model's defaults stay in force.

    Raises UnknownModelError for a bad name and InputSizeError (naming the smallest size that works)
    for an input the trunk cannot take.
    """
    spec = get_spec(name)
    kw = _defaults(spec, kwargs)
    hw = kw["input_size"]
    if _out_shape(spec, kw, hw) is None:
        smallest = smallest_input_size(name, **kw)
        raise InputSizeError(f"{name} cannot take a {hw[0]}x{hw[1]} input: the smallest it takes is {smallest}x{smallest}")
    model = spec.builder(**kw)
    model.spec = spec
    model.meta = _record(spec, kw)
    return model


def _record(spec: ModelSpec, kw: dict[str, Any]) -> ModelMeta:
    """The ModelMeta of a model built with ``kw``: normalization at its channel count, ``fc_width`` only
    where it was given, and the builder's other options (dropout, head_bias...) in ``extra``, JSON-ready."""
    c, (h, w) = kw["in_channels"], kw["input_size"]
    fields = set(ModelMeta.__dataclass_fields__)
    pre = Preprocess.for_spec(spec, c, (h, w))
    return ModelMeta(
        model=spec.name,
        num_classes=kw["num_classes"],
        in_channels=c,
        input_size=(h, w),
        fc_width=kw.get("fc_width"),
        mean=pre.mean,
        std=pre.std,
        crop_pct=pre.crop_pct,
        head=spec.head,
        extra={k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if k not in fields},
    )
