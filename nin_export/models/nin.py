"""Network in Network (Lin, Chen, Yan 2013) and its FC-headed twins.

Layout follows torchvision's squeezenet.py: the block, the network, a private builder, public
builders. A NiN is a trunk of mlpconv stages (conv -> ReLU -> 1x1 -> ReLU -> 1x1 -> ReLU, then
pooling and optional dropout) and a head. The NiN head is Dropout -> last mlpconv (ending in
``num_classes`` channels) -> global average pooling -> flatten; the FC twin replaces it with
AlexNet's classifier Flatten -> Dropout -> Linear(w) -> ReLU -> Dropout -> Linear(w) -> ReLU ->
Linear(classes), which fixes the input size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from torch import nn

from ..core.defaults import DEFAULT_FC_WIDTH
from ._registry import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, Classifier, register_model

__all__ = [
    "DEFAULT_FC_WIDTH",
    "MlpConv",
    "NiN",
    "nin_cifar10",
    "fc_cifar10",
    "nin_imagenet",
    "fc_imagenet",
    "nin_seed",
    "fc_seed",
]

Init = Literal["default", "paper"]


class MlpConv(nn.Sequential):
    """One mlpconv block: a k x k conv followed by 1x1 convs, a ReLU after every conv."""

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: int, stride: int = 1, padding: int = 0) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(channels):
            k, s, p = (kernel_size, stride, padding) if i == 0 else (1, 1, 0)
            layers += [nn.Conv2d(c_in, c_out, k, s, p), nn.ReLU(inplace=True)]
            c_in = c_out
        super().__init__(*layers)


@dataclass(frozen=True)
class Stage:
    """An mlpconv block with the pooling (and dropout) that follows it in the trunk."""

    channels: tuple[int, ...]
    kernel_size: int
    stride: int = 1
    padding: int = 0
    pool: Literal["max", "avg"] = "max"
    dropout: bool = False


class NiN(Classifier):
    def __init__(
        self,
        stages: Sequence[Stage],
        final: Stage,
        *,
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
        head: Literal["gap", "fc"] = "gap",
        fc_width: int = DEFAULT_FC_WIDTH,
        dropout: float = 0.5,
        ceil_mode: bool = True,
        init: Init = "default",
        paper_std: tuple[float, float] = (0.05, 0.05),
        head_bias: float = 0.0,
    ) -> None:
        super().__init__()
        if head_bias and head != "gap":  # TypeError, like any keyword a builder does not take
            raise TypeError("head_bias applies to a NiN with a global-average-pooling head only")
        layers: list[nn.Module] = []
        c = in_channels
        for st in stages:
            layers.append(MlpConv(c, st.channels, st.kernel_size, st.stride, st.padding))
            pool = nn.MaxPool2d if st.pool == "max" else nn.AvgPool2d
            layers.append(pool(kernel_size=3, stride=2, ceil_mode=ceil_mode))
            if st.dropout:
                layers.append(nn.Dropout(dropout))
            c = st.channels[-1]
        self.features = nn.Sequential(*layers)
        if head == "gap":
            self.classifier: nn.Sequential = nn.Sequential(
                nn.Dropout(dropout),
                MlpConv(c, (*final.channels[:-1], num_classes), final.kernel_size, final.stride, final.padding),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(1),
            )
        elif head == "fc":
            flat = _flat_features(self.features, in_channels, input_size)
            self.classifier = nn.Sequential(
                nn.Flatten(1),
                nn.Dropout(dropout),
                nn.Linear(flat, fc_width),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(fc_width, fc_width),
                nn.ReLU(inplace=True),
                nn.Linear(fc_width, num_classes),
            )
        else:
            raise ValueError(f"head must be 'gap' or 'fc', got {head!r}")
        self.input_size = tuple(input_size)
        self.head = head
        init_weights(self, init, paper_std, head_bias=head_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _flat_features(features: nn.Module, in_channels: int, input_size: Sequence[int]) -> int:
    """Features the trunk yields at ``input_size``, worked out on the meta device."""
    trunk = copy.deepcopy(features).to("meta")  # never move the real weights
    with torch.no_grad():
        out = trunk(torch.empty(1, in_channels, *input_size, device="meta"))
    return int(out.numel())


def init_weights(
    model: nn.Module, init: Init, paper_std: tuple[float, float] = (0.05, 0.05), fc_std: float = 0.005, head_bias: float = 0.0
) -> None:
    """'default': Kaiming-normal convs, N(0, 0.01) linears (torchvision), and, as in torchvision's
    SqueezeNet (whose head is NiN's), N(0, 0.01) for the final conv that produces the class maps:
    Kaiming there starts the logits so large that the ReLU before global average pooling can die
    and leave every logit at 0. 'paper': Gaussian as in the NiN Caffe/cuda-convnet configs,
    ``paper_std[0]`` for the first conv, ``paper_std[1]`` for the rest. Biases zero in both, except
    the final conv of a GAP head, which starts at ``head_bias``: a positive value keeps the ReLU
    before global average pooling open while cross-entropy pushes nine of ten class maps down
    (with 0 that push closes every map within a few optimizer steps and the logits stay at 0)."""
    if init not in ("default", "paper"):
        raise ValueError(f"init must be 'default' or 'paper', got {init!r}")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    final = convs[-1] if getattr(model, "head", None) == "gap" and convs else None
    first = True
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m.weight.is_meta:
                continue
            if init == "paper":
                nn.init.normal_(m.weight, 0.0, paper_std[0] if first else paper_std[1])
            elif m is final:
                nn.init.normal_(m.weight, 0.0, 0.01)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            first = False
            if m.bias is not None:
                nn.init.constant_(m.bias, head_bias if m is final else 0.0)
        elif isinstance(m, nn.Linear):
            if m.weight.is_meta:
                continue
            nn.init.normal_(m.weight, 0.0, fc_std if init == "paper" else 0.01)
            nn.init.zeros_(m.bias)


# --- variants -----------------------------------------------------------------------------------

# Paper Sec. 4 / the authors' CIFAR-10 config: 192(5x5)-160-96, 192(5x5)-192-192, 192(3x3)-192-10.
_CIFAR_STAGES = (
    Stage((192, 160, 96), 5, 1, 2, "max", dropout=True),
    Stage((192, 192, 192), 5, 1, 2, "max"),  # its dropout opens the head
)
_CIFAR_FINAL = Stage((192, 192, 10), 3, 1, 1)

# Caffe model zoo NIN-ImageNet (conv1..cccp8), 224x224 crops, 6x6 global average pooling.
_IMAGENET_STAGES = (
    Stage((96, 96, 96), 11, 4, 0),
    Stage((256, 256, 256), 5, 1, 2),
    Stage((384, 384, 384), 3, 1, 1),
)
_IMAGENET_FINAL = Stage((1024, 1024, 1000), 3, 1, 1)

# The seed notebook's d2l-style NinNet: the ImageNet trunk, num_classes in every conv of the last block.
_SEED_FINAL = Stage((1000, 1000, 1000), 3, 1, 1)


def _nin(
    stages: Sequence[Stage],
    final: Stage,
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    init: Init = "default",
    pool: Literal["max", "avg"] | None = None,
    seed_last: bool = False,
    **kw: Any,
) -> NiN:
    if pool is not None:  # e.g. the Caffe gist's average pooling after the second CIFAR block
        stages = (stages[0], *(Stage(s.channels, s.kernel_size, s.stride, s.padding, pool, s.dropout) for s in stages[1:]))
    if seed_last:  # d2l: every conv of the last block has num_classes channels
        final = Stage((num_classes,) * 3, final.kernel_size, final.stride, final.padding)
    return NiN(stages, final, num_classes=num_classes, in_channels=in_channels, input_size=input_size, init=init, **kw)


_CIFAR = dict(num_classes=10, in_channels=3, input_size=(32, 32), mean=CIFAR_MEAN, std=CIFAR_STD)
_IMAGENET = dict(num_classes=1000, in_channels=3, input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875)


@register_model(**_CIFAR, twin="fc-cifar10")
def nin_cifar10(**kw: Any) -> NiN:
    """NiN for CIFAR-10 (paper Sec. 4): three mlpconv blocks, global average pooling; 966,986 params."""
    return _nin(_CIFAR_STAGES, _CIFAR_FINAL, paper_std=(0.05, 0.05), **kw)


@register_model(**_CIFAR, head="fc", twin="nin-cifar10")
def fc_cifar10(*, fc_width: int = DEFAULT_FC_WIDTH, **kw: Any) -> NiN:
    """FC-headed twin of nin-cifar10: same trunk, AlexNet-style 3-layer FC head; fixed input size."""
    return _nin(_CIFAR_STAGES, _CIFAR_FINAL, head="fc", fc_width=fc_width, paper_std=(0.05, 0.05), **kw)


@register_model(**_IMAGENET, twin="fc-imagenet")
def nin_imagenet(**kw: Any) -> NiN:
    """NiN for ImageNet (Caffe model zoo NIN-ImageNet): four mlpconv blocks, 6x6 GAP; 7,595,176 params."""
    return _nin(_IMAGENET_STAGES, _IMAGENET_FINAL, paper_std=(0.01, 0.05), **kw)


@register_model(**_IMAGENET, head="fc", twin="nin-imagenet")
def fc_imagenet(*, fc_width: int = DEFAULT_FC_WIDTH, **kw: Any) -> NiN:
    """FC-headed twin of nin-imagenet: same trunk, AlexNet-style 3-layer FC head; fixed input size."""
    return _nin(_IMAGENET_STAGES, _IMAGENET_FINAL, head="fc", fc_width=fc_width, paper_std=(0.01, 0.05), **kw)


@register_model(**dict(_IMAGENET, num_classes=10, crop_pct=1.0), twin="fc-seed")
def nin_seed(**kw: Any) -> NiN:
    """The seed notebook's d2l-style NinNet (floor-mode pooling); 2,015,398 params for 10 classes."""
    return _nin(_IMAGENET_STAGES, _SEED_FINAL, ceil_mode=False, seed_last=True, paper_std=(0.01, 0.05), **kw)


@register_model(**dict(_IMAGENET, num_classes=10, crop_pct=1.0), head="fc", twin="nin-seed")
def fc_seed(*, fc_width: int = DEFAULT_FC_WIDTH, **kw: Any) -> NiN:
    """FC-headed twin of nin-seed: same trunk, AlexNet-style 3-layer FC head; fixed input size."""
    return _nin(_IMAGENET_STAGES, _SEED_FINAL, head="fc", fc_width=fc_width, ceil_mode=False, paper_std=(0.01, 0.05), **kw)
