"""Training: the default recipe makes a NiN learn; the options it takes, and their bad values."""

import pytest
import torch
from torch import nn

from nin_export.core.errors import NinExportError
from nin_export.models import create_model, load_checkpoint
from nin_export.train import HEAD_BIAS, TrainOptions, train

from .conftest import assert_one_line_error


def _final_conv(model: nn.Module) -> nn.Conv2d:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]


def test_default_recipe_makes_nin_learn(tmp_path):
    # 16x16 digits and 3 epochs keep this to seconds (loss 2.20 -> 0.61, test top-1 85.5% here); at 32x32 and 10
    # epochs it reaches ~98% (benchmarks/train_recipe.py)
    meta = train("nin-cifar10", "digits", tmp_path / "n.pt", TrainOptions(epochs=3, input_size=16))
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < 1.0 < losses[0], losses  # left ln(10) = 2.30, the loss of all-zero logits
    assert meta["accuracy"]["test_top1"] > 0.6, meta["accuracy"]
    sd, record = load_checkpoint(tmp_path / "n.pt")
    saved = record.to_dict()
    assert saved["options"]["optimizer"] == "adamw" and saved["options"]["lr"] == pytest.approx(1e-3)
    assert saved["head_bias"] == HEAD_BIAS and saved["dropout"] == 0.0 and saved["device"] == "cpu"
    model = create_model("nin-cifar10", input_size=16)
    model.load_state_dict(sd)
    x = torch.randn(4, 3, 16, 16)
    assert model.eval()(x).abs().sum() > 0  # the ReLU before global average pooling stayed open


def test_head_bias_and_dropout_reach_the_model():
    m = create_model("nin-cifar10", head_bias=0.5, dropout=0.0)
    assert torch.all(_final_conv(m).bias == 0.5)
    assert all(d.p == 0.0 for d in m.modules() if isinstance(d, nn.Dropout))
    assert torch.all(_final_conv(create_model("nin-cifar10")).bias == 0.0)  # the model's own default is untouched
    with pytest.raises(TypeError, match="global-average-pooling head"):
        create_model("fc-cifar10", head_bias=1.0)


@pytest.mark.parametrize(
    "options, match",
    [
        (TrainOptions(optimizer="adam"), "unknown optimizer 'adam'"),
        (TrainOptions(dropout=1.0), "--dropout must be in"),
        (TrainOptions(lr=0.0), "must be positive"),
        (TrainOptions(device="tpu"), "unknown device 'tpu'"),
    ],
)
def test_bad_recipe_values(tmp_path, options, match):
    with pytest.raises(NinExportError, match=match):
        train("nin-cifar10", "digits", tmp_path / "x.pt", options)
    assert not list(tmp_path.iterdir())


def test_train_cli_bad_recipe_is_one_line(cli_run, tmp_path):
    out = tmp_path / "x.pt"
    assert_one_line_error(
        *cli_run("train", "--model", "fc-cifar10", "--head-bias", "1", "-o", out)[::2], "--head-bias applies to NiN models"
    )
    if not torch.cuda.is_available():
        assert_one_line_error(*cli_run("train", "--device", "cuda", "-o", out)[::2], "no CUDA")
    assert not out.exists()


def test_mixed_precision_choice():
    import torch

    from nin_export.train import amp_dtype

    cpu = torch.device("cpu")
    assert amp_dtype("off", cpu) is None and amp_dtype("bf16", cpu) is torch.bfloat16
    assert amp_dtype("auto", torch.device("cuda")) is None  # GPUs train in float32 (TF32), as the recipe grid did
    with pytest.raises(NinExportError, match="--amp must be"):
        amp_dtype("fp8", cpu)


def test_patience_keeps_the_best_epoch(tmp_path):
    meta = train("nin-cifar10", "digits", tmp_path / "p.pt", TrainOptions(epochs=3, patience=1, input_size=16, lr=1e-9))
    # with a learning rate this small nothing improves after epoch 1: training stops at epoch 2 and keeps epoch 1
    assert len(meta["history"]) == 2 and meta["kept_epoch"] == 1
