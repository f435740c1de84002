"""OpenVINO runner: an ONNX graph read by OpenVINO (``openvino.Core.read_model``) and compiled for its
CPU plugin. FP32 graphs run with the f32 inference precision (OpenVINO would pick bf16 on its own
where the CPU has it); the half-precision row asks for the best native type the CPU has (f16, else
bf16, else f32); explicit Q/DQ graphs run in INT8, OpenVINO turning each Q/DQ pair into a
FakeQuantize its low-precision transformations fuse into the integer kernels.

The model is reshaped to each input's static shape before it is compiled (OpenVINO's CPU kernels
are faster on static shapes): the first inference at a new shape compiles, and only the latest
compiled model is kept. One stream and the latency hint by default; ``throughput`` runs N streams.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..core.errors import BackendUnavailableError, OnnxFileError, first_line
from .base import Runner

if TYPE_CHECKING:
    import openvino as ov

__all__ = ["OvRunner", "openvino_missing", "half_precision_hint", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'nin-export[openvino]' (or pip install openvino)"
_HINTS = ("f32", "bf16", "f16")


def openvino_missing() -> str | None:
    """Why OpenVINO's CPU plugin cannot be used here (None: it can)."""
    try:
        import openvino as ov
    except ImportError:
        return f"OpenVINO is not installed: {INSTALL_HINT}"
    except Exception as e:  # noqa: BLE001  (a broken install: its own error types)
        return f"OpenVINO cannot be imported: {first_line(e, 200)}"
    try:
        devices = ov.Core().available_devices
    except Exception as e:  # noqa: BLE001
        return f"OpenVINO {ov.__version__} cannot start: {first_line(e, 200)}"
    return None if "CPU" in devices else f"OpenVINO {ov.__version__} here has no CPU device (devices: {', '.join(devices)})"


def half_precision_hint() -> str:
    """The inference precision for a half-precision row: f16 where the CPU computes in it, else bf16, else f32."""
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "f16" if "FP16" in caps else "bf16" if "BF16" in caps else "f32"


class OvRunner(Runner):
    name = "openvino"

    def __init__(
        self,
        model: str | os.PathLike,
        threads: int | None = None,
        precision_hint: str = "f32",
        streams: int = 1,
        profile: bool = False,
    ) -> None:
        super().__init__()
        if precision_hint not in _HINTS:
            raise ValueError(f"precision hint must be one of {', '.join(_HINTS)}, got {precision_hint!r}")
        self.model = model
        self.threads = threads
        self.precision_hint = precision_hint
        self.streams = streams
        self.profile = profile
        self._shape: tuple[int, ...] | None = None
        self.compiled: ov.CompiledModel | None = None  # the latest input shape's, and its request
        self.request: ov.InferRequest | None = None

    def activate_impl(self) -> None:
        if (why := openvino_missing()) is not None:
            raise BackendUnavailableError(why)
        import openvino as ov

        self._ov = ov
        self.core = ov.Core()
        try:
            self.graph = self.core.read_model(os.fspath(self.model))
        except Exception as e:  # noqa: BLE001  (OpenVINO raises its own RuntimeError subtypes)
            raise OnnxFileError(f"OpenVINO cannot read '{self.model}': {first_line(e, 200)}") from None
        if len(self.graph.inputs) != 1:
            raise OnnxFileError(f"'{self.model}' has {len(self.graph.inputs)} inputs; the OpenVINO runner takes one")
        self._input = self.graph.inputs[0].get_any_name()
        self._outputs = [o.get_any_name() for o in self.graph.outputs]
        self.compiled, self.request, self._shape = None, None, None

    def config(self, streams: int | None = None) -> dict[str, Any]:
        """What the CPU plugin is asked for: threads (0: all cores), streams, hint, inference precision."""
        n = streams or self.streams
        return {
            "INFERENCE_NUM_THREADS": int(self.threads or 0),
            "NUM_STREAMS": n,
            "PERFORMANCE_HINT": "LATENCY" if n == 1 else "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": self.precision_hint,
            "PERF_COUNT": self.profile,
        }

    def _compile(self, shape: tuple[int, ...], streams: int | None = None) -> ov.CompiledModel:
        graph = self.graph.clone()
        graph.reshape({self._input: list(shape)})
        try:
            return self.core.compile_model(graph, "CPU", self.config(streams))
        except Exception as e:  # noqa: BLE001
            raise OnnxFileError(f"OpenVINO cannot compile '{self.model}' for input {shape}: {first_line(e, 200)}") from None

    def _ready(self, shape: tuple[int, ...]) -> ov.InferRequest:
        if shape != self._shape or self.request is None:
            self.compiled, self.request = None, None  # free the previous shape's model first
            compiled = self._compile(shape)
            self.compiled, self.request, self._shape = compiled, compiled.create_infer_request(), shape
        return self.request

    @property
    def input_names(self) -> list[str]:
        return [self._input]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(feed) != {self._input}:
            raise OnnxFileError(f"OpenVINO runner: expected input '{self._input}', got {', '.join(feed) or 'none'}")
        x = np.ascontiguousarray(feed[self._input], dtype=np.float32)
        request = self._ready(tuple(x.shape))
        try:
            res = request.infer({self._input: x}, share_inputs=True)
        except Exception as e:  # noqa: BLE001
            raise OnnxFileError(f"OpenVINO failed on {self._input} {tuple(x.shape)}: {first_line(e, 200)}") from None
        return {name: np.array(res[i]) for i, name in enumerate(self._outputs)}

    def settings(self) -> dict[str, Any]:
        """What the compiled model runs with, read back from OpenVINO (the hint may be refused or changed)."""
        out: dict[str, Any] = {"runtime": "openvino", "version": self._ov.__version__, "device": "CPU"}
        out["requested"] = {k: v for k, v in self.config().items() if k != "PERF_COUNT"}
        if self.compiled is not None:
            for key in ("INFERENCE_PRECISION_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT"):
                value = self.compiled.get_property(key)
                out[key.lower()] = value.to_string() if hasattr(value, "to_string") else str(value)
        return out

    def layer_profile(self) -> list[dict[str, Any]]:
        """Per-layer times of the last inference (``profile=True``): name, type, kernel, microseconds."""
        if self.request is None or not self.profile:
            return []
        return [
            {"node": p.node_name, "type": p.node_type, "kernel": p.exec_type, "us": p.real_time.total_seconds() * 1e6}
            for p in self.request.get_profiling_info()
            if p.status.name == "EXECUTED"
        ]

    def throughput(self, feed: Mapping[str, np.ndarray], streams: int, seconds: float = 2.0) -> dict[str, Any]:
        """Images per second over ``streams`` CPU streams (OpenVINO's AsyncInferQueue, one request per stream)."""
        x = np.ascontiguousarray(next(iter(feed.values())), dtype=np.float32)
        compiled = self._compile(tuple(x.shape), streams)
        queue = self._ov.AsyncInferQueue(compiled, streams)
        for _ in range(streams):  # warm every request once
            queue.start_async({self._input: x})
        queue.wait_all()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            queue.start_async({self._input: x})
            n += 1
        queue.wait_all()
        elapsed = time.perf_counter() - t0
        return {"streams": streams, "batch": int(x.shape[0]), "rounds": n, "images_per_s": n * x.shape[0] / elapsed}

    def deactivate_impl(self) -> None:
        self.request = self.compiled = self.graph = None
        self._shape = None
