"""Loading weights safely (``weights_only=True``) and saying clearly when they don't fit."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..core.errors import FileFormatError, WeightsError
from ..core.meta import ModelMeta
from ._registry import Classifier, create_model, list_models

__all__ = ["load_checkpoint", "load_weights", "build_model", "CHECKPOINT_KEYS"]

CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict")
# Builder options that decide the weights' shapes; a checkpoint's meta supplies those not given.
SHAPE_KEYS = ("num_classes", "in_channels", "input_size", "fc_width")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """Read a state_dict or a checkpoint dict; return (state_dict, meta).

    Accepts a bare state_dict or a dict holding one under ``state_dict``/``model``/
    ``model_state_dict``; strips ``module.`` prefixes (DataParallel/DDP). ``meta`` is the
    checkpoint's own ``meta`` record (model name, classes, input size, ...), empty for a plain state_dict.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file '{p}' not found: give the path of a .pt/.pth checkpoint")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as e:
        text = str(e)
        if "Unsupported global" in text or "GLOBAL" in text:
            reason = "it holds pickled Python objects, which are not loaded (only tensors and plain containers are)"
        else:
            reason = "not a readable PyTorch checkpoint (corrupt, truncated or another format)"
        raise WeightsError(f"cannot load weights '{p}': {reason}; save it with torch.save(model.state_dict(), path)") from None
    if not isinstance(obj, Mapping):
        raise WeightsError(f"cannot load weights '{p}': expected a state_dict, found {type(obj).__name__}")
    try:
        meta = ModelMeta.from_dict(dict(obj["meta"]) if isinstance(obj.get("meta"), Mapping) else None, f"checkpoint '{p}'")
    except FileFormatError as e:
        raise WeightsError(str(e)) from None
    sd: Any = obj
    for key in CHECKPOINT_KEYS:
        if isinstance(obj.get(key), Mapping):
            sd = obj[key]
            break
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"cannot load weights '{p}': it holds no tensors (keys: {', '.join(list(sd)[:5])})")
    return tensors, meta


def _first(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "weights", name: str = "model") -> None:
    """Load strictly; on mismatch raise WeightsError naming the first few differing keys and shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shapes differ (file vs model): {_first(shapes)}")
        if missing:
            parts.append(f"missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_first(unexpected)}")
        raise WeightsError(
            f"{source} do not fit {name}: {'; '.join(parts)}. "
            "Are they for another model, or another --num-classes/--in-channels/--input-size?"
        )
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(
            f"{source} hold NaN or infinite values (in {_first(bad)}): a diverged training? "
            f"use a checkpoint saved before it diverged"
        )
    model.load_state_dict(state_dict, strict=True)


def build_model(name: str, weights: str | os.PathLike | None = None, **kwargs: Any) -> Classifier:
    """``create_model`` plus optional weights. A checkpoint's own ``meta`` (classes, channels, input
    size) fills options not given, and a checkpoint saved for another model is refused by name; the
    model's record (``model.meta``) takes the checkpoint's class names, dataset and accuracy."""
    if weights is None:
        return create_model(name, **kwargs)
    sd, meta = load_checkpoint(weights)
    if meta.model and meta.model != name:
        fix = f"use --model {meta.model}" if meta.model in list_models() else "give weights saved for this model"
        raise WeightsError(f"weights '{weights}' were saved for model '{meta.model}', not '{name}': {fix}")
    for key in SHAPE_KEYS:
        if kwargs.get(key) is None and getattr(meta, key) is not None:
            kwargs[key] = getattr(meta, key)
    model = create_model(name, **kwargs)
    load_weights(model, sd, source=f"weights '{weights}'", name=name)
    model.meta = replace(model.meta, classes=meta.classes, dataset=meta.dataset, accuracy=meta.accuracy)
    return model
