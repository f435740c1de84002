"""Per-layer summary: output shapes, parameters and multiply-accumulates (MACs) for one image.

MACs count convolutions and linear layers (what every paper and tool reports); ReLU, pooling and
dropout are counted as zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..core._io import proc_kib_field
from ..core.enums import Precision
from ..core.errors import InputSizeError
from ..core.precision import BYTES_PER_PARAM
from ._registry import Classifier

__all__ = [
    "Precision",
    "LayerInfo",
    "ModelSummary",
    "summarize",
    "BYTES_PER_PARAM",
    "WEIGHT_BYTES_RULE",
    "activation_elements",
    "check_memory",
]

WEIGHT_BYTES_RULE = (
    "weight bytes count every parameter at its precision's width (FP32 4 bytes, FP16 2); at INT8, "
    "conv and linear weights count 1 byte and biases 4 bytes, since biases stay float in the Q/DQ graph; "
    "per-channel scales are not counted"
)


def _weight_bytes(params: int, biases: int, precision: Precision) -> int:
    """The one rule (WEIGHT_BYTES_RULE)."""
    if precision is Precision.INT8:
        return (params - biases) * BYTES_PER_PARAM[Precision.INT8] + biases * BYTES_PER_PARAM[Precision.FP32]
    return params * BYTES_PER_PARAM[precision]


@dataclass
class LayerInfo:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    biases: int = 0


@dataclass
class ModelSummary:
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[LayerInfo] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def biases(self) -> int:
        return sum(layer.biases for layer in self.layers)

    def weight_bytes(self) -> dict[str, int]:
        """Bytes of weights at each precision (WEIGHT_BYTES_RULE)."""
        return {str(p): _weight_bytes(self.params, self.biases, p) for p in Precision}

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(params=self.params, macs=self.macs, weight_bytes=self.weight_bytes())
        return d


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return int(out[0].numel()) * (m.in_channels // m.groups) * kh * kw
    if isinstance(m, nn.Linear):
        return m.in_features * m.out_features
    return 0


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelSummary:
    """Run one zero (C, H, W) input through ``model`` and record each leaf layer."""
    layers: list[LayerInfo] = []
    hooks = []

    def hook(name: str):
        def fn(m: nn.Module, _inp, out: torch.Tensor) -> None:
            params = sum(p.numel() for p in m.parameters(recurse=False))
            biases = sum(p.numel() for n, p in m.named_parameters(recurse=False) if n == "bias")
            layers.append(LayerInfo(name, type(m).__name__, tuple(out.shape[1:]), int(params), _macs(m, out), int(biases)))

        return fn

    for name, m in model.named_modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(hook(name)))
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(1, *input_shape))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return ModelSummary(tuple(input_shape), tuple(out.shape[1:]), layers)


def activation_elements(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[int, int]:
    """(largest, total) output elements of the leaf layers for one image of ``input_shape``, found on the meta
    device: no memory is used, whatever the size asked for."""
    import copy

    sizes: list[int] = []
    probe = copy.deepcopy(model).to("meta").eval()
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(int(out.numel())))
        for m in probe.modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            probe(torch.empty((1, *input_shape), device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return (max(sizes) if sizes else 0), sum(sizes)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where it cannot be read."""
    return proc_kib_field("/proc/meminfo", "MemAvailable")


def check_memory(model: Classifier, input_shape: tuple[int, int, int], batch: int, option: str, training: bool = False) -> None:
    """Refuse, before any work, a batch whose activations alone are known to exceed this machine's available
    memory: the largest layer output x batch x 4 bytes (inference), every layer's output (training keeps them
    all for the backward pass). The message gives the estimate and names the option to lower."""
    free = available_memory_bytes()
    if free is None:
        return
    largest, total = activation_elements(model, input_shape)
    need = (total if training else largest) * batch * 4
    if need > free:
        c, h, w = input_shape
        raise InputSizeError(
            f"{model.spec.name} at batch {batch} and {c}x{h}x{w} needs at least {need / 2**30:.1f} GiB for its activations, "
            f"and this machine has {free / 2**30:.1f} GiB available: lower {option}"
        )
