"""Training any registered model on real images, with a checkpoint that carries its own ModelMeta.
(Evaluation of any artifact on the same held-out split is in evaluate.py.)"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .core._io import atomic_path, check_outputs
from .core.data import DataError, DataSource, Preprocess, Samples, open_source
from .core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_PATIENCE, HEAD_BIAS
from .core.enums import Optimizer
from .core.errors import NinExportError
from .core.parse import cap_threads
from .evaluate import topk
from .models import Classifier, create_model, get_spec
from .models.summary import check_memory
from .runners.torch_runner import resolve_device

__all__ = ["TrainOptions", "train", "DEFAULT_LR", "HEAD_BIAS", "DEFAULT_EPOCHS", "DEFAULT_PATIENCE", "DEFAULT_BATCH_SIZE"]


Progress = Callable[[str, int, int], None]  # (message, done, total)


@dataclass
class TrainOptions:
    """The recipe. ``None`` fields take the model's or the optimizer's default."""

    epochs: int = DEFAULT_EPOCHS
    # Stop when validation top-1 has not improved for this many epochs, and keep the best epoch's
    # weights (None or 0: run every epoch).
    patience: int | None = DEFAULT_PATIENCE
    batch_size: int = DEFAULT_BATCH_SIZE
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
    # Mixed precision: "bf16" autocast (weights and the optimizer stay float32), "off", or "auto":
    # bf16 on a CPU with native bf16 kernels (AVX512-BF16 or AMX; 3x a step for these nets here), else off.
    amp: str = "auto"
    threads: int | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: Any = None
    fc_width: int | None = None  # fc-* twins only

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Optimizer) else v) for k, v in asdict(self).items()}

    def cap_threads(self) -> list[str]:
        """Cap ``threads`` at this machine's CPU count, refusing values below 1 (core.parse.cap_threads);
        the notes say what was changed."""
        self.threads, note = cap_threads(self.threads)
        return [note] if note else []


def _check(opts: TrainOptions) -> tuple[Optimizer, float]:
    try:
        optimizer = Optimizer(opts.optimizer)
    except ValueError:
        raise NinExportError(f"unknown optimizer '{opts.optimizer}': use {' or '.join(o.value for o in Optimizer)}") from None
    lr = DEFAULT_LR[optimizer] if opts.lr is None else opts.lr
    if opts.epochs < 1 or opts.batch_size < 1 or not (lr > 0 and math.isfinite(lr)):
        raise NinExportError("--epochs, --batch-size and --lr must be positive (and --lr finite)")
    if opts.dropout is not None and not 0.0 <= opts.dropout < 1.0:
        raise NinExportError(f"--dropout must be in [0, 1), got {opts.dropout}")
    if opts.threads is not None and opts.threads < 1:
        raise NinExportError(f"--threads must be at least 1, got {opts.threads}")
    if opts.head_bias is not None and not math.isfinite(opts.head_bias):
        raise NinExportError(f"--head-bias must be a finite number, got {opts.head_bias}")
    if not 0.0 < opts.val_fraction < 1.0:
        raise NinExportError(f"the validation fraction must be in (0, 1), got {opts.val_fraction}")
    if opts.patience is not None and opts.patience < 0:
        raise NinExportError(f"--patience must be 0 (off) or positive, got {opts.patience}")
    return optimizer, lr


def _data(name: str, data: str, opts: TrainOptions) -> tuple[DataSource, Preprocess, list[str], dict[str, Any]]:
    """The source, its preprocessing for the model, its classes, and the model's shape options."""
    shape_kw = {"in_channels": opts.in_channels, "input_size": opts.input_size, "fc_width": opts.fc_width}
    probe = create_model(name, num_classes=opts.num_classes or 2, **shape_kw)
    c, h, w = probe.input_shape
    pre = Preprocess.for_spec(probe.spec, c, (h, w))
    source = open_source(data, pre)
    if not source.classes or len(source.classes) < 2:
        raise DataError(
            f"{source.name} has no class labels: give a directory with one sub-directory per class, "
            f"an .npz with labels, or 'digits'"
        )
    if opts.num_classes is not None and opts.num_classes != len(source.classes):
        raise DataError(f"--num-classes {opts.num_classes} but {source.name} has {len(source.classes)} classes")
    return source, pre, list(source.classes), shape_kw


def _build(name: str, opts: TrainOptions, n_classes: int, shape_kw: dict[str, Any]) -> Classifier:
    recipe_kw: dict[str, Any] = {"dropout": opts.dropout}
    if get_spec(name).head == "gap":  # the final conv + ReLU before GAP: see models.nin.init_weights
        recipe_kw["head_bias"] = HEAD_BIAS if opts.head_bias is None else opts.head_bias
    elif opts.head_bias is not None:
        raise NinExportError(f"--head-bias applies to NiN models (global average pooling head); {name} has an FC head")
    torch.manual_seed(opts.seed)  # the initialisation depends on the seed alone
    return create_model(name, num_classes=n_classes, **shape_kw, **recipe_kw)


def _split(source: DataSource, opts: TrainOptions, n_classes: int) -> tuple[Samples, Samples, Samples]:
    train_idx, test_idx = source.split()
    n_val = max(1, int(len(train_idx) * opts.val_fraction))
    fit, val, test = source.load(train_idx[n_val:]), source.load(train_idx[:n_val]), source.load(test_idx)
    if len(fit.x) < n_classes:
        raise DataError(f"too few training images ({len(fit.x)}) for {n_classes} classes")
    return fit, val, test


def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused where this torch has it for the device (one kernel over every tensor: the FC twin's
    67M parameters take 0.03 s a step instead of 0.17 s on a 2-core CPU); the same update rule either way."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # torch < 2.4 on a CPU, say
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full float32)."""
    if amp not in ("auto", "bf16", "off"):
        raise NinExportError(f"--amp must be auto, bf16 or off, got '{amp}'")
    if amp == "off" or (amp == "auto" and device.type != "cpu"):
        return None
    native = torch.backends.mkldnn.is_available() and bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    if amp == "auto" and not native:
        return None
    return torch.bfloat16


class _Loop:
    """The optimizer, the one-cycle schedule and the epoch loop over the fit split."""

    def __init__(
        self, model: nn.Module, optimizer: Optimizer, lr: float, opts: TrainOptions, n_fit: int, device: torch.device
    ) -> None:
        self.model, self.opts, self.device = model, opts, device
        self.opt: torch.optim.Optimizer
        if optimizer is Optimizer.SGD:
            self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=opts.weight_decay)
        else:
            self.opt = _adamw(model, lr, opts.weight_decay)
        self.steps = opts.epochs * math.ceil(n_fit / opts.batch_size)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=lr, total_steps=self.steps, pct_start=opts.warmup)
        self.gen = torch.Generator().manual_seed(opts.seed)
        self.loss_fn = nn.CrossEntropyLoss()
        self.step = 0
        self.amp = amp_dtype(opts.amp, device)

    def epoch(self, xf: torch.Tensor, yf: torch.Tensor, epoch: int, say: Progress) -> float:
        """One pass over the fit split; the mean loss. A non-finite loss stops training with one line."""
        self.model.train()
        perm = torch.randperm(len(xf), generator=self.gen).to(self.device)
        total = torch.zeros((), device=self.device)
        bs = self.opts.batch_size
        for i in range(0, len(xf), bs):
            idx = perm[i : i + bs]
            with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                loss = self.loss_fn(self.model(xf[idx]), yf[idx])
            if not torch.isfinite(loss.detach()):
                raise NinExportError(
                    f"training diverged: the loss is {float(loss)} at step {self.step + 1} (epoch {epoch}); "
                    f"lower --lr (nothing was written)"
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            total += loss.detach() * len(idx)
            self.step += 1
            if self.device.type == "cpu" or i + bs >= len(xf):  # no per-step GPU sync
                say(f"epoch {epoch}/{self.opts.epochs} loss {float(loss.detach()):.3f}", self.step, self.steps)
        mean = float(total) / len(xf)
        if not math.isfinite(mean):
            raise NinExportError(f"training diverged: the loss is {mean} in epoch {epoch}; lower --lr (nothing written)")
        return mean


def _fit(
    model: nn.Module,
    fit: Samples,
    val: Samples,
    optimizer: Optimizer,
    lr: float,
    opts: TrainOptions,
    device: torch.device,
    say: Progress,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> tuple[list[dict[str, Any]], int]:
    """Train; with ``patience``, stop on a validation plateau and restore the best epoch's weights.
    Returns the history and the epoch whose weights the model holds."""
    # channels_last: oneDNN's fast convolution layout on CPUs (1.5x for these nets here), NHWC tensor cores on GPUs
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs of Module.to omit memory_format
    loop = _Loop(model, optimizer, lr, opts, len(fit.x), device)
    xf = torch.from_numpy(fit.x).to(device).contiguous(memory_format=torch.channels_last)
    yf = torch.from_numpy(fit.labels).to(device)
    history: list[dict[str, Any]] = []
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, opts.epochs + 1):
        loss = loop.epoch(xf, yf, epoch, say)
        val_acc = _accuracy(model, val.x, val.labels)[0]
        history.append({"epoch": epoch, "train_loss": loss, "val_top1": val_acc})
        if on_epoch is not None:
            on_epoch(dict(history[-1], epochs=opts.epochs))
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = copy.deepcopy(model.state_dict()) if opts.patience else None
        elif opts.patience and epoch - best_epoch >= opts.patience:
            break
    if best_state is not None and best_epoch != len(history):
        model.load_state_dict(best_state)
        return history, best_epoch
    return history, len(history)


def train(
    name: str,
    data: str,
    output: str | os.PathLike,
    options: TrainOptions | None = None,
    progress: Progress | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train on the train part of the source's fixed split (a slice of it for validation); write a
    checkpoint carrying its own ModelMeta; return that metadata (with test accuracy) as a dict.
    ``progress`` hears every step, ``on_epoch`` each epoch's {epoch, epochs, train_loss, val_top1}."""
    opts = options or TrainOptions()
    say = progress or (lambda _m, _d, _t: None)
    optimizer, lr = _check(opts)
    out = Path(output)
    check_outputs([out], [data] if Path(data).exists() else [])  # before any work: a finished training is never lost
    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    source, pre, classes, shape_kw = _data(name, data, opts)
    model = _build(name, opts, len(classes), shape_kw)
    c, h, w = model.input_shape
    if device.type == "cpu":  # GPU memory is the GPU's to refuse; out of it, the CLI names --batch-size
        check_memory(model, (c, h, w), opts.batch_size, "--batch-size (or --input-size)", training=True)
    say("loading images", 0, 1)
    fit, val, test = _split(source, opts, len(classes))
    t0 = time.perf_counter()
    model.to(device)
    history, kept = _fit(model, fit, val, optimizer, lr, opts, device, say, on_epoch)
    test_top1, test_top5 = _accuracy(model, test.x, test.labels)
    model.cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # torch's stubs of Module.to omit memory_format
    meta = replace(
        model.meta,  # name, classes, channels, input size, fc_width, normalization (pre's), head
        classes=classes,
        dataset=source.name,
        accuracy={"val_top1": history[kept - 1]["val_top1"], "test_top1": test_top1, "test_top5": test_top5},
        extra={
            **model.meta.extra,  # the builder options the recipe set: dropout, head_bias
            "split": {"train": len(fit.x), "val": len(val.x), "test": len(test.x), "seed": 0},
            "history": history,
            "kept_epoch": kept,
            "options": dict(opts.to_dict(), lr=lr),
            "device": str(device),
            "train_seconds": round(time.perf_counter() - t0, 1),
        },
    )
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": meta.to_dict()}, tmp)
    return meta.to_dict()


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        logits = np.concatenate([model(torch.from_numpy(x[i : i + 128]).to(dev)).cpu().numpy() for i in range(0, len(x), 128)])
    return topk(logits, y)
