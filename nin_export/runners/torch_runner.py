"""PyTorch eager runner (CPU, or CUDA with fp16 where a GPU exists). On CUDA it times as the TensorRT
runner does (runners/cuda_timing.py): buffers bound once, H2D / compute / D2H between events on its own
stream, every iteration kept, optionally the forward captured once in a CUDA graph and replayed."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..core.errors import BackendUnavailableError, NinExportError
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
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        input_name: str = "input",
        output_name: str = "logits",
        threads: int | None = None,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        self.model, self.want_device, self.dtype = model, device, dtype  # the device is resolved on activation
        self.device: torch.device
        self.input_name, self.output_name, self.threads = input_name, output_name, threads
        self.cuda_graph = cuda_graph

    def activate_impl(self) -> None:
        self.device = resolve_device(self.want_device)
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.model = self.model.eval().to(self.device, self.dtype)
        if self.device.type == "cuda":
            from .cuda_timing import SplitTimer

            self.stream = torch.cuda.Stream(self.device)
            self.timer = SplitTimer(torch, self.stream)
            self.clock = "cuda-events"
            self._shape: tuple[int, ...] | None = None
            self._fed: int | None = None
            self._graph_note: str | None = None
            self._graph: Any = None

    @property
    def input_names(self) -> list[str]:
        return [self.input_name]

    @torch.inference_mode()
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.device.type == "cuda":
            self._bind(feed[self.input_name], always_fill=True)
            self.timer.run(self._h2d, self._compute, self._d2h)
            self.timer.drain()
            return {self.output_name: self._host_out.float().numpy().copy()}
        x = torch.from_numpy(np.ascontiguousarray(feed[self.input_name])).to(self.device, self.dtype)
        y = self.model(x)
        return {self.output_name: y.float().cpu().numpy()}

    # --- CUDA: buffers bound once, everything on this runner's stream --------------------------------

    def _bind(self, x: np.ndarray, always_fill: bool) -> None:
        shape = tuple(x.shape)
        if shape != self._shape:
            self.timer.drain()  # iterations in flight still use the old buffers
            self._host_in = torch.empty(shape, dtype=self.dtype, pin_memory=True)
            self._dev_in = torch.empty(shape, dtype=self.dtype, device=self.device)
            self._graph = None
            with torch.cuda.stream(self.stream):  # one forward for the output's shape (and the allocator's warm-up)
                out = self.model(self._dev_in)
            self.stream.synchronize()
            self._host_out = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            self._dev_out, self._shape, self._fed = out, shape, None
            if self.cuda_graph:  # captured here, outside any timed iteration
                from .cuda_timing import capture_or_fallback

                graph, self._graph_note = capture_or_fallback(self._capture)
                self._graph = graph if graph is not None else False  # False: refused, plain enqueues
        if always_fill or self._fed != id(x):
            self.timer.drain()  # an in-flight H2D may still read the pinned input
            self._host_in.copy_(torch.from_numpy(np.ascontiguousarray(x)))
            self._fed = id(x)

    def _h2d(self) -> None:
        self._dev_in.copy_(self._host_in, non_blocking=True)

    def _compute(self) -> None:
        if self._graph:
            self._graph.replay()  # rewrites the static output captured in _capture
        else:
            self._dev_out = self.model(self._dev_in)

    def _capture(self) -> torch.cuda.CUDAGraph:
        with torch.cuda.stream(self.stream):  # warm-up on this side stream before the capture, as torch.cuda.graphs asks
            for _ in range(2):
                self.model(self._dev_in)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(self.stream):  # the current stream comes back even if the capture fails
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                out = self.model(self._dev_in)  # static output, rewritten by every replay
        self._dev_out = out
        return graph

    def _d2h(self) -> None:
        self._host_out.copy_(self._dev_out, non_blocking=True)

    def reset_split(self) -> None:
        if self.device.type == "cuda":
            self.timer.reset()

    def deactivate_impl(self) -> None:
        if self.device.type == "cuda":  # nothing freed under work still in flight
            self.timer.drain()
            self.stream.synchronize()

    def drain_timing(self) -> list[float]:
        return self.timer.drain() if self.device.type == "cuda" else []

    def split(self) -> dict | None:
        if self.device.type != "cuda":
            return None
        graph = bool(self.cuda_graph and self._graph)
        return dict(self.timer.split(), cuda_graph=graph, cuda_graph_note=self._graph_note)

    @torch.inference_mode()
    def throughput(self, feed: Mapping[str, np.ndarray], streams: int, seconds: float = 2.0) -> dict | None:
        """Images per second with ``streams`` streams, each with its own input and output buffers."""
        if self.device.type != "cuda":
            return None
        from .cuda_timing import multi_stream_throughput

        x = torch.from_numpy(np.ascontiguousarray(feed[self.input_name])).to(self.dtype)
        y0 = self.model(x.to(self.device))  # the output's shape and dtype
        lanes = []
        for _ in range(streams):
            stream = torch.cuda.Stream(self.device)
            host_in, dev_in = x.pin_memory(), torch.empty(x.shape, dtype=self.dtype, device=self.device)
            host_out = torch.empty(y0.shape, dtype=y0.dtype, pin_memory=True)

            def enqueue(host_in=host_in, dev_in=dev_in, host_out=host_out) -> None:
                dev_in.copy_(host_in, non_blocking=True)
                host_out.copy_(self.model(dev_in), non_blocking=True)

            lanes.append((stream, enqueue))
        return multi_stream_throughput(torch, lanes, x.shape[0], seconds)

    def device_memory(self) -> dict[str, int]:
        if self.device.type != "cuda":
            return {}
        return {"gpu_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device))}

    @torch.inference_mode()
    def time_infer(self, feed: Mapping[str, np.ndarray]) -> float | None:
        """CPU: host to host. CUDA: the forward's GPU time between events on this runner's stream, H2D and
        D2H timed beside it (``split()``), two iterations in flight (an earlier one's time, or None)."""
        if self.device.type != "cuda":
            return super().time_infer(feed)
        self._bind(feed[self.input_name], always_fill=False)
        return self.timer.run(self._h2d, self._compute, self._d2h)
