"""'train' and 'eval': train a model on labelled images, and measure any artifact's accuracy."""

from __future__ import annotations

from typing import Any

import click

from ..runtimes import runtime_help
from ._app import bar_task, progress_bar, warn
from .options import DATA, MODEL, OUTPUT_FILE, TRAIN, opt
from .render import print_evaluation, print_trained


@click.command("train")
@MODEL.but(help="Registered model.")
@DATA.but(help="Image folder (one sub-directory per class), labelled .npz, or 'digits' (built in).")
@TRAIN
@OUTPUT_FILE.but(help="Checkpoint (default <model>.pt).")
def train_cmd(model: str, data: str, output: str | None, **kw: Any) -> None:
    """Train a model on labelled images; the checkpoint carries its model, classes, input size,
    normalization and accuracy. The data's fixed split keeps a test part that training never sees.

    \b
    Example:
      nin-export train --model nin-cifar10 --data digits -o nin.pt
      nin-export train --model nin-seed --data ~/flowers --input-size 96 --epochs 30 --dropout 0.5
    """
    from ..train import train

    opts = TRAIN.parse(kw)
    warn(opts.cap_threads())
    dest = output or f"{model}.pt"
    with progress_bar() as bar:
        meta = train(
            model,
            data,
            dest,
            opts,
            progress=bar_task(bar, "training"),
            on_epoch=lambda h: bar.console.print(
                f"[dim]-[/] epoch {h['epoch']}/{h['epochs']}: loss {h['train_loss']:.3f}, validation top-1 {h['val_top1']:.1%}"
            ),
        )
    print_trained(model, meta, dest)


@click.command("eval")
@click.argument("artifact", type=click.Path(dir_okay=False))
@DATA
@MODEL.but(default=None, show_default=False, help="Model name, when the artifact does not carry it.")
@opt("--runtime", default=None, help=f"Runtime (default: the first that runs this kind of file): {runtime_help()}.")
@opt("--limit", type=int, default=None, help="Evaluate on the first N held-out images only.")
def eval_cmd(artifact: str, data: str, model: str | None, runtime: str | None, limit: int | None) -> None:
    """Top-1 (and top-5) accuracy of a checkpoint, an ONNX (FP32, FP16, INT8) or an engine, on the
    held-out part of the data's fixed split: the same images for every artifact.

    \b
    Example:
      nin-export eval nin.pt --data digits
      nin-export eval out/nin-cifar10.int8.onnx --data digits
    """
    from ..evaluate import evaluate

    print_evaluation(evaluate(artifact, data, limit=limit, model=model, runtime=runtime))
