"""TensorRT engine runner: the runner protocol over execute_async_v3, with torch CUDA tensors as
I/O buffers (no other CUDA bindings). Loads an engine only after its sidecar matches the
installed TensorRT and this GPU."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..enums import Precision
from ..errors import BackendUnavailableError, NinExportError
from ..runners.base import Runner
from ..runners.onnxrt import OrtRunner
from ..verify import compare, random_inputs, tolerance_for
from ._api import TrtFlavour, load_trt
from .sidecar import check_compatible, check_engine_file, current_gpu, read_sidecar, sidecar_path

__all__ = ["TrtRunner", "verify_engine"]


def _torch_dtype(trt: Any, dt: Any):
    import torch

    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    if hasattr(trt.DataType, "INT64"):
        table[trt.DataType.INT64] = torch.int64
    return table[dt]


PLAIN_PLAN_NOTE = (
    "no sidecar beside the engine (a plain plan, such as trtexec writes): nothing is known of how it was "
    "built, so TensorRT's own validity check decides"
)


def engine_validity(trtm: Any, runtime: Any, data: bytes) -> str | None:
    """Why TensorRT says the plan cannot run here (its diagnostics named), or None when it can or the
    installed TensorRT has no such check (TensorRT-RTX has; 10.x and 11.x find out when deserializing)."""
    if not hasattr(runtime, "get_engine_validity"):
        return None
    validity = runtime.get_engine_validity(data)
    status, diag = validity if isinstance(validity, tuple) else (validity, 0)
    if not str(status).endswith("INVALID"):
        return None
    flags = getattr(trtm.trt, "EngineInvalidityDiagnostics", None)
    names = [n.lower().replace("_", " ") for n in dir(flags) if n.isupper() and int(diag) & int(getattr(flags, n))] if flags else []
    return ", ".join(names) or "no GPU to check it against"


class TrtRunner(Runner):
    name = "tensorrt"

    def __init__(self, engine: str | os.PathLike, profile: int = 0) -> None:
        super().__init__()
        self.engine_path = Path(engine)
        self.profile = profile
        self.sidecar: dict[str, Any] = {}
        self.notes: list[str] = []
        self.last_end_to_end_s: float | None = None

    def activate_impl(self) -> None:
        if not self.engine_path.is_file():
            raise NinExportError(f"engine '{self.engine_path}' not found: build one with 'nin-export trt MODEL.onnx'")
        if sidecar_path(self.engine_path).exists():
            self.sidecar = read_sidecar(self.engine_path, verify=False)
            trtm = load_trt(TrtFlavour(self.sidecar["flavour"]))
            check_compatible(self.sidecar, trtm, current_gpu())
            check_engine_file(self.engine_path, self.sidecar)  # once it can run here: hashing a big plan costs
        else:  # a plain plan (trtexec's, say): TensorRT's own checks decide
            self.sidecar = {}
            self.notes.append(PLAIN_PLAN_NOTE)
            trtm = load_trt()
            if current_gpu() is None:
                raise BackendUnavailableError(
                    "no CUDA GPU is visible here (or torch has no CUDA): engines run only on an NVIDIA GPU"
                )
        import torch  # lazy: CUDA buffers only where an engine runs

        trt = trtm.trt
        self.trt, self.torch = trt, torch
        self.logger = trt.Logger(trt.Logger.ERROR)
        self.runtime = trt.Runtime(self.logger)
        data = self.engine_path.read_bytes()
        why = engine_validity(trtm, self.runtime, data)
        if why is not None:
            raise NinExportError(f"{trtm.describe()} says '{self.engine_path}' cannot run here ({why}); rebuild it here")
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise NinExportError(f"{trtm.describe()} could not load '{self.engine_path}' (corrupt, or built elsewhere); rebuild it")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        if self.profile:
            self.context.set_optimization_profile_async(self.profile, self.stream.cuda_stream)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        mn, op, mx = self.engine.get_tensor_profile_shape(name, self.profile)
        return tuple(mn), tuple(op), tuple(mx)

    def device_memory_bytes(self) -> int:
        e = self.engine
        if hasattr(e, "get_device_memory_size_for_profile_v2"):
            return int(e.get_device_memory_size_for_profile_v2(self.profile))
        return int(getattr(e, "device_memory_size_v2", getattr(e, "device_memory_size", 0)))

    def device_memory(self) -> dict[str, int]:
        return {"engine_device_memory_bytes": self.device_memory_bytes()}

    def _bind(self, feed: Mapping[str, np.ndarray]):
        torch = self.torch
        dev_in = {}
        for name in self.inputs:
            x = np.ascontiguousarray(feed[name])
            mn, _, mx = self.profile_range(name)
            if len(x.shape) != len(mn) or not all(a <= d <= b for a, d, b in zip(mn, x.shape, mx)):
                raise NinExportError(
                    f"input '{name}' shape {x.shape} is outside the engine's profile "
                    f"{'x'.join(map(str, mn))} .. {'x'.join(map(str, mx))}: rebuild with a wider --batch"
                )
            t = torch.from_numpy(x).to("cuda", non_blocking=False).to(_torch_dtype(self.trt, self.engine.get_tensor_dtype(name)))
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
            dev_in[name] = t
        dev_out = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            t = torch.empty(shape, dtype=_torch_dtype(self.trt, self.engine.get_tensor_dtype(name)), device="cuda")
            self.context.set_tensor_address(name, t.data_ptr())
            dev_out[name] = t
        return dev_in, dev_out

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise NinExportError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        _, dev_out = self._bind(feed)
        with self.torch.cuda.stream(self.stream):
            self._execute()
        self.stream.synchronize()
        out = {n: t.float().cpu().numpy() for n, t in dev_out.items()}
        self.last_end_to_end_s = time.perf_counter() - start
        return out

    def time_infer(self, feed: Mapping[str, np.ndarray]) -> float:
        """GPU compute time of one inference (CUDA events around execute_async_v3); the host-to-host
        figure with copies is left in ``last_end_to_end_s``."""
        torch = self.torch
        start_host = time.perf_counter()
        _, dev_out = self._bind(feed)
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record(self.stream)
        self._execute()
        ev1.record(self.stream)
        for t in dev_out.values():
            t.cpu()
        ev1.synchronize()
        self.last_end_to_end_s = time.perf_counter() - start_host
        return ev0.elapsed_time(ev1) / 1000.0

    def deactivate_impl(self) -> None:
        for attr in ("context", "engine", "runtime"):
            if hasattr(self, attr):
                delattr(self, attr)


def verify_engine(engine: str | os.PathLike, onnx_path: str | os.PathLike, batches: tuple[int, ...] = (), seed: int = 0):
    """Run the engine and onnxruntime on the same random inputs at batch sizes inside the profile
    (min, opt and max by default); return the Agreement."""
    with TrtRunner(engine) as trt_run, OrtRunner(onnx_path) as ort_run:
        name = trt_run.input_names[0]
        mn, op, mx = trt_run.profile_range(name)
        sizes = batches or tuple(sorted({mn[0], op[0], mx[0]}))
        xs = random_inputs([(b, *op[1:]) for b in sizes], seed)
        refs = [next(iter(ort_run.infer({ort_run.input_names[0]: x}).values())) for x in xs]
        outs = [next(iter(trt_run.infer({name: x}).values())) for x in xs]
    return compare(refs, outs, tolerance_for(Precision(trt_run.sidecar.get("precision", "fp32")), engine=True))
