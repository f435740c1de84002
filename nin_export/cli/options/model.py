"""The model, its shape and weights, the data, export and training options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ...core.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DATA,
    DEFAULT_EPOCHS,
    DEFAULT_FC_WIDTH,
    DEFAULT_LR,
    DEFAULT_MODEL,
    DEFAULT_PATIENCE,
    DYNAMO_OPSET,
    HEAD_BIAS,
    TORCHSCRIPT_OPSET,
)
from ...core.enums import Exporter, Optimizer
from ...core.errors import NinExportError
from ._base import Group, opt

if TYPE_CHECKING:
    from ...export.exporter import ExportOptions
    from ...models import Classifier
    from ...train import TrainOptions


# --- the model -----------------------------------------------------------------------------------

MODEL = opt("--model", "-m", default=DEFAULT_MODEL, show_default=True, help="Registered model name (see 'nin-export models').")
WEIGHTS = opt(
    "--weights",
    "-w",
    type=click.Path(dir_okay=False),
    default=None,
    help="State_dict or checkpoint (.pt); loaded with weights_only=True. Random init if omitted.",
)
# bench and pipeline: the model a NiN is compared with, and its checkpoint
BASELINE = opt("--baseline", "-b", default=None, help="Model to compare with (default: the model's FC-headed twin).")
BASELINE_WEIGHTS = opt("--baseline-weights", default=None, type=click.Path(dir_okay=False), help="Checkpoint for --baseline.")
DATA = opt("--data", default=DEFAULT_DATA, show_default=True, metavar="SRC", help="Labelled images (same source as training).")
THREADS = opt("--threads", type=int, default=None, help="CPU threads (default: torch's).")
OUTPUT_FILE = opt("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Output file.")
OUTPUT_DIR = opt("-o", "--output-dir", default=None, help="Output directory.")


class ModelArgs(Group):
    """The model's shape: parsed into the keyword arguments of ``models.build_model``."""

    def parse(self, kw: dict[str, Any]) -> dict[str, Any]:
        return self.take(kw)

    def build(self, model: str, weights: str | None, kw: dict[str, Any]) -> Classifier:
        """The model ``model`` with this group's values from ``kw`` (and ``weights``), built."""
        from ...models import build_model

        try:
            return build_model(model, weights, **self.parse(kw))
        except ValueError as e:  # num_classes < 1 and the like
            raise NinExportError(str(e)) from None


INPUT_SIZE = opt("--input-size", default=None, metavar="HxW", help="Input height x width, e.g. 32x32 (default: the model's).")
IN_CHANNELS = opt("--in-channels", type=int, default=None, help="Input channels (default: the model's, 3).")
MODEL_SHAPE = ModelArgs(
    opt("--num-classes", type=int, default=None, help="Number of classes (default: the model's)."),
    IN_CHANNELS,
    INPUT_SIZE,
    opt(
        "--init",
        type=click.Choice(["default", "paper"]),
        default=None,
        help="Weight init when no --weights: modern Kaiming (default) or the paper's Gaussian.",
    ),
    opt("--fc-width", type=int, default=None, help=f"Hidden width of an fc-* twin's head (default {DEFAULT_FC_WIDTH})."),
)


# --- export --------------------------------------------------------------------------------------


class ExportArgs(Group):
    def parse(self, kw: dict[str, Any]) -> ExportOptions:
        from ...core.parse import parse_batch
        from ...export.exporter import ExportOptions

        v = self.take(kw)
        return ExportOptions(
            opset=v["opset"],
            batch=parse_batch(v["batch"]),
            dynamic_hw=v["dynamic_hw"],
            simplify=not v["no_simplify"],
            exporter=Exporter(v["exporter"]),
        )


EXPORT = ExportArgs(
    opt(
        "--opset",
        type=int,
        default=None,
        help=f"ONNX opset (default {DYNAMO_OPSET} with the dynamo exporter, {TORCHSCRIPT_OPSET} with TorchScript; "
        f">= 13 for per-channel INT8).",
    ),
    opt(
        "--exporter",
        type=click.Choice([e.value for e in Exporter]),
        default=Exporter.AUTO.value,
        show_default=True,
        help="auto: torch.onnx's dynamo exporter where the installed torch does it well (2.6+ with onnxscript), "
        "else the TorchScript-based one (torch 2.3 on JetPack 6).",
    ),
    opt("--batch", default=None, metavar="N|dynamic", help="Fixed batch size, or 'dynamic' (default)."),
    opt("--dynamic-hw", is_flag=True, default=False, help="NiN variants: dynamic height and width as well."),
    opt("--no-simplify", is_flag=True, default=False, help="Skip onnxsim."),
)


# --- training -------------------------------------------------------------------------------------


class TrainArgs(Group):
    def parse(self, kw: dict[str, Any]) -> TrainOptions:
        from ...train import TrainOptions

        v = self.take(kw)
        return TrainOptions(**dict(v, optimizer=Optimizer(v["optimizer"])))


TRAIN = TrainArgs(
    opt("--epochs", type=int, default=DEFAULT_EPOCHS, show_default=True, help="Most epochs (one-cycle schedule over them)."),
    opt(
        "--patience",
        type=int,
        default=DEFAULT_PATIENCE,
        show_default=True,
        help="Stop when validation top-1 has not improved for this many epochs, keeping the best (0: off).",
    ),
    opt("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True, help="Batch size."),
    opt(
        "--optimizer",
        type=click.Choice([o.value for o in Optimizer]),
        default=Optimizer.ADAMW.value,
        show_default=True,
        help="adamw or sgd (momentum 0.9, Nesterov); both with a one-cycle schedule.",
    ),
    opt(
        "--lr",
        type=float,
        default=None,
        help=f"Peak learning rate (default {DEFAULT_LR[Optimizer.ADAMW]:g} for adamw, {DEFAULT_LR[Optimizer.SGD]:g} for sgd).",
    ),
    opt(
        "--dropout",
        type=float,
        default=0.0,
        show_default=True,
        help="Dropout while training (as timm's --drop; the paper's is 0.5). Exported graphs have none.",
    ),
    opt(
        "--head-bias",
        type=float,
        default=None,
        help=f"NiN only: initial bias of the last conv before global average pooling (default {HEAD_BIAS:g}; 0 lets its "
        "ReLU close and the logits stay at 0).",
    ),
    opt("--device", default="auto", show_default=True, help="auto (CUDA where PyTorch sees a GPU), cpu or cuda."),
    opt("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation and the batch order."),
    opt(
        "--amp",
        type=click.Choice(["auto", "bf16", "off"]),
        default="auto",
        show_default=True,
        help="Mixed precision: auto is bf16 autocast on a CPU with native bf16 kernels (AVX512-BF16, AMX), "
        "else float32; weights and the optimizer stay float32.",
    ),
    THREADS,
    INPUT_SIZE.but(help="Input size (default: the model's)."),
    IN_CHANNELS.but(help="Input channels (default: the model's)."),
)
