"""Training any registered model on real images, and top-1/top-5 evaluation of any artifact on the
same held-out split (checkpoint, ONNX at any precision, engine)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._io import atomic_path
from .data import DataError, Preprocess, open_source
from .enums import Optimizer
from .errors import NinExportError

__all__ = ["TrainOptions", "train", "evaluate", "EvalResult", "preprocess_for"]

Progress = Callable[[str, int, int], None]  # (message, done, total)


@dataclass
class TrainOptions:
    """The recipe. ``None`` fields take the model's or the optimizer's default."""

    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None  # peak of the one-cycle schedule; default DEFAULT_LR[optimizer]
    optimizer: Optimizer = Optimizer.ADAMW
    weight_decay: float = 1e-4
    warmup: float = 0.15  # fraction of the steps spent warming up to the peak lr
    # Dropout while training, as timm's train.py --drop (default 0); None: the model's own (0.5, the paper's).
    # Measured (benchmarks/train_recipe.py, digits, 10 epochs, 3 seeds): nin-cifar10 98.1% with 0, 90.4% with 0.5.
    dropout: float | None = 0.0
    head_bias: float | None = None  # NiN (GAP head) only: start of the final conv's bias; default HEAD_BIAS
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"  # auto: CUDA where PyTorch sees a GPU, else CPU
    threads: int | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: Any = None
    fc_width: int | None = None  # fc-* twins only

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Optimizer) else v) for k, v in asdict(self).items()}


DEFAULT_LR = {Optimizer.ADAMW: 1e-3, Optimizer.SGD: 0.05}
HEAD_BIAS = 1.0


def preprocess_for(name: str, config: dict[str, Any]) -> Preprocess:
    """The preprocessing a registered model expects, at the channels and size it was built with."""
    from .models import get_spec

    return Preprocess.for_spec(get_spec(name), config["in_channels"], config["input_size"])


def train(name: str, data: str, output: str | os.PathLike, options: TrainOptions | None = None,
          progress: Progress | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train on the train part of the source's fixed split (a slice of it for validation); write a
    checkpoint carrying its own metadata; return that metadata (with test accuracy). ``progress``
    hears every step, ``on_epoch`` each epoch's {epoch, epochs, train_loss, val_top1}."""
    import torch
    from torch import nn

    from .models import create_model

    opts = options or TrainOptions()
    say = progress or (lambda _m, _d, _t: None)
    try:
        optimizer = Optimizer(opts.optimizer)
    except ValueError:
        raise NinExportError(f"unknown optimizer '{opts.optimizer}': use {' or '.join(o.value for o in Optimizer)}") from None
    lr = DEFAULT_LR[optimizer] if opts.lr is None else opts.lr
    if opts.epochs < 1 or opts.batch_size < 1 or not lr > 0:
        raise NinExportError("--epochs, --batch-size and --lr must be positive")
    if opts.dropout is not None and not 0.0 <= opts.dropout < 1.0:
        raise NinExportError(f"--dropout must be in [0, 1), got {opts.dropout}")
    from .runners.torch_runner import resolve_device

    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    shape_kw = {"in_channels": opts.in_channels, "input_size": opts.input_size, "fc_width": opts.fc_width}
    probe = create_model(name, num_classes=opts.num_classes or 2, **shape_kw)
    pre = preprocess_for(name, probe.config)
    source = open_source(data, pre)
    if not source.classes or len(source.classes) < 2:
        raise DataError(f"{source.name} has no class labels: give a directory with one sub-directory per class, "
                        f"an .npz with labels, or 'digits'")
    classes = list(source.classes)
    if opts.num_classes is not None and opts.num_classes != len(classes):
        raise DataError(f"--num-classes {opts.num_classes} but {source.name} has {len(classes)} classes")
    recipe_kw: dict[str, Any] = {"dropout": opts.dropout}
    if probe.spec.head == "gap":  # the final conv + ReLU before GAP: see models.nin.init_weights
        recipe_kw["head_bias"] = HEAD_BIAS if opts.head_bias is None else opts.head_bias
    elif opts.head_bias is not None:
        raise NinExportError(f"--head-bias applies to NiN models (global average pooling head); {name} has an FC head")
    torch.manual_seed(opts.seed)  # the initialisation depends on the seed alone
    model = create_model(name, num_classes=len(classes), **shape_kw, **recipe_kw)
    train_idx, test_idx = source.split()
    n_val = max(1, int(len(train_idx) * opts.val_fraction))
    val_idx, fit_idx = train_idx[:n_val], train_idx[n_val:]
    say("loading images", 0, 1)
    fit, val, test = source.load(fit_idx), source.load(val_idx), source.load(test_idx)
    if len(fit.x) < len(classes):
        raise DataError(f"too few training images ({len(fit.x)}) for {len(classes)} classes")
    model.to(device)
    xf, yf = torch.from_numpy(fit.x).to(device), torch.from_numpy(fit.y).to(device)
    if optimizer is Optimizer.SGD:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=opts.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=opts.weight_decay)
    steps = opts.epochs * math.ceil(len(xf) / opts.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=opts.warmup)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(opts.seed)
    history = []
    step = 0
    t0 = time.perf_counter()
    for epoch in range(opts.epochs):
        model.train()
        perm = torch.randperm(len(xf), generator=gen).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, len(xf), opts.batch_size):
            idx = perm[i:i + opts.batch_size]
            loss = loss_fn(model(xf[idx]), yf[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(idx)
            step += 1
            if device.type == "cpu" or i + opts.batch_size >= len(xf):  # no per-step GPU sync
                say(f"epoch {epoch + 1}/{opts.epochs} loss {float(loss.detach()):.3f}", step, steps)
        val_acc = _accuracy(model, val.x, val.y)[0]
        history.append({"epoch": epoch + 1, "train_loss": float(total) / len(xf), "val_top1": val_acc})
        if on_epoch is not None:
            on_epoch(dict(history[-1], epochs=opts.epochs))
    test_top1, test_top5 = _accuracy(model, test.x, test.y)
    model.cpu()
    meta = {"model": name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items() if k != "init"},
            "mean": list(pre.mean), "std": list(pre.std), "crop_pct": pre.crop_pct, "classes": classes,
            "dataset": source.name, "split": {"train": len(fit.x), "val": len(val.x), "test": len(test.x), "seed": 0},
            "accuracy": {"val_top1": history[-1]["val_top1"], "test_top1": test_top1, "test_top5": test_top5},
            "history": history, "options": dict(opts.to_dict(), lr=lr), "device": str(device),
            "train_seconds": round(time.perf_counter() - t0, 1)}
    out = Path(output)
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp)
    return meta


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    import torch

    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        logits = np.concatenate([model(torch.from_numpy(x[i:i + 128]).to(dev)).cpu().numpy() for i in range(0, len(x), 128)])
    return _topk(logits, y)


def _topk(logits: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    top1 = float((logits.argmax(1) == y).mean())
    top5 = float((np.argsort(-logits, 1)[:, :5] == y[:, None]).any(1).mean()) if logits.shape[1] > 5 else None
    return top1, top5


@dataclass
class EvalResult:
    artifact: str
    kind: str
    samples: int
    top1: float
    top5: float | None
    data: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _artifact_meta(path: Path) -> tuple[str, dict[str, Any]]:
    if path.suffix in (".pt", ".pth"):
        from .models import load_checkpoint

        _, meta = load_checkpoint(path)
        return "checkpoint", meta
    if path.suffix == ".onnx":
        from .onnx_utils import load_onnx, read_metadata

        return "onnx", read_metadata(load_onnx(path, check=False))
    if path.suffix in (".engine", ".plan"):
        from .trt import read_sidecar

        return "engine", read_sidecar(path).get("model_metadata", {})
    raise NinExportError(f"'{path}' is not a checkpoint (.pt), an ONNX (.onnx) or an engine (.engine)")


def evaluate(artifact: str | os.PathLike, data: str, limit: int | None = None, model: str | None = None) -> EvalResult:
    """Top-1 (and top-5 with more than 5 classes) on the held-out (test) part of ``data``'s fixed split,
    the same images for every artifact."""
    path = Path(artifact)
    if not path.is_file():
        raise NinExportError(f"'{path}' not found")
    kind, meta = _artifact_meta(path)
    name = model or meta.get("model")
    if not name:
        raise NinExportError(f"'{path}' does not say which model it is: give --model")
    pre = Preprocess.from_metadata(meta) if "mean" in meta else preprocess_for(name, meta)
    source = open_source(data, pre)
    _, test = source.split()
    held = source.load(test[:limit] if limit else test)
    if held.y is None:
        raise DataError(f"{source.name} has no labels: accuracy needs labelled images (class sub-directories, .npz labels, digits)")
    if kind == "checkpoint":
        from .models import build_model
        from .runners import TorchRunner

        runner = TorchRunner(build_model(name, path))
    elif kind == "onnx":
        from .runners import OrtRunner

        runner = OrtRunner(path)
    else:
        from .trt import TrtRunner

        runner = TrtRunner(path)
    with runner:
        inp = runner.input_names[0]
        step = 32
        if kind == "engine":
            step = runner.profile_range(inp)[2][0]
        logits = np.concatenate([next(iter(runner.infer({inp: held.x[i:i + step]}).values()))
                                 for i in range(0, len(held.x), step)])
    if logits.shape[1] <= int(held.y.max()):
        raise DataError(f"{source.name} has labels up to {int(held.y.max())} but the model has {logits.shape[1]} classes")
    top1, top5 = _topk(logits.astype(np.float32), held.y)
    return EvalResult(path.name, kind, len(held.y), top1, top5, source.name)
