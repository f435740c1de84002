"""PyTorch eager runner (CPU, or CUDA with fp16 where a GPU exists)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..errors import BackendUnavailableError, NinExportError
from .base import Runner

__all__ = ["TorchRunner", "resolve_device"]


def resolve_device(want: str | torch.device) -> torch.device:
    """'auto' (CUDA where PyTorch sees a GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'; a CUDA device
    that this PyTorch cannot reach is a BackendUnavailableError, not a CUDA stack trace."""
    if str(want) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(want)
    except RuntimeError:
        raise NinExportError(f"unknown device '{want}': use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("PyTorch here has no CUDA: install a CUDA build of torch, or use --device cpu")
    return dev


class TorchRunner(Runner):
    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        input_name: str = "input",
        output_name: str = "logits",
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.model, self.device, self.dtype = model, device, dtype  # the device is resolved on activation
        self.input_name, self.output_name, self.threads = input_name, output_name, threads

    def activate_impl(self) -> None:
        self.device = resolve_device(self.device)
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.model = self.model.eval().to(self.device, self.dtype)

    @property
    def input_names(self) -> list[str]:
        return [self.input_name]

    @torch.inference_mode()
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(feed[self.input_name])).to(self.device, self.dtype)
        y = self.model(x)
        return {self.output_name: y.float().cpu().numpy()}

    def device_memory(self) -> dict[str, int]:
        if self.device.type != "cuda":
            return {}
        return {"gpu_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device))}

    @torch.inference_mode()
    def time_infer(self, feed: Mapping[str, np.ndarray]) -> float:
        if self.device.type != "cuda":
            return super().time_infer(feed)
        x = torch.from_numpy(np.ascontiguousarray(feed[self.input_name])).to(self.device, self.dtype)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        self.model(x)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
