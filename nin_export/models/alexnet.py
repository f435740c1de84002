"""AlexNet in torchvision's layout (same state_dict keys), the FC-headed net NiN is measured against.

torchvision's AdaptiveAvgPool2d((6, 6)) is left out: at 224x224 the trunk already yields 6x6, and
without it the net states honestly that its FC head fixes the input size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._registry import IMAGENET_MEAN, IMAGENET_STD, Classifier, register_model
from .nin import Init, _flat_features, init_weights

__all__ = ["AlexNet", "alexnet"]


class AlexNet(Classifier):
    def __init__(
        self, *, num_classes: int, in_channels: int, input_size: tuple[int, int], dropout: float = 0.5, init: Init = "default"
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        flat = _flat_features(self.features, in_channels, input_size)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(flat, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        self.input_size = tuple(input_size)
        self.head = "fc"
        init_weights(self, init, paper_std=(0.01, 0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model(
    num_classes=1000, in_channels=3, input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, head="fc"
)
def alexnet(**kw: Any) -> AlexNet:
    """AlexNet (torchvision layout), the classic FC-headed comparator; 61,100,840 params."""
    return AlexNet(**kw)
