"""TensorRT engine runner: the runner protocol over execute_async_v3, with torch CUDA tensors as
I/O buffers (no other CUDA bindings). Loads an engine only after its sidecar matches the
installed TensorRT and this GPU. Timing follows trtexec (see runners/cuda_timing.py): buffers bound
once, H2D / compute / D2H between events on the runner's own stream, every iteration kept, optional
CUDA graph of the compute, and throughput over several streams with one execution context each."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.enums import Precision
from ..core.errors import BackendUnavailableError, NinExportError
from ..core.verify import compare, random_inputs, tolerance_for
from ..runners.base import Runner
from ..runners.onnxrt import OrtRunner
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
    for name, t in (("INT64", torch.int64), ("BF16", torch.bfloat16), ("UINT8", torch.uint8)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = t
    if dt not in table:
        raise NinExportError(f"the engine has a {dt} input or output, which nin-export's runner does not bind")
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


def runtime_config(trt: Any, engine: Any) -> tuple[Any, ...]:
    """A runtime config that fits stream capture where the engine offers one (TensorRT-RTX, TensorRT 10.x from
    about 10.11, 11.x): TensorRT-RTX's built-in CUDA graphs off (the runner captures, as for TensorRT 10/11) and
    shape-specialized kernels compiled eagerly (lazy specialization would freeze fallback kernels into a
    captured graph); the other TensorRTs have neither knob and keep their defaults. () without one (10.3)."""
    if not hasattr(engine, "create_runtime_config"):
        return ()
    rc = engine.create_runtime_config()
    if hasattr(trt, "CudaGraphStrategy") and hasattr(rc, "cuda_graph_strategy"):
        rc.cuda_graph_strategy = trt.CudaGraphStrategy.DISABLED
    if hasattr(trt, "DynamicShapesKernelSpecializationStrategy") and hasattr(rc, "dynamic_shapes_kernel_specialization_strategy"):
        rc.dynamic_shapes_kernel_specialization_strategy = trt.DynamicShapesKernelSpecializationStrategy.EAGER
    return (rc,)


class _IO:
    """One context's I/O, bound once for one set of input shapes: pinned host and device tensors per
    tensor, their addresses set on the context."""

    def __init__(self, runner: "TrtRunner", context: Any, shapes: dict[str, tuple[int, ...]]) -> None:
        torch, trt, engine = runner.torch, runner.trt, runner.engine
        self.context, self.shapes = context, shapes
        self.host_in, self.dev_in, self.dev_out, self.host_out = {}, {}, {}, {}
        for name, shape in shapes.items():
            dt = _torch_dtype(trt, engine.get_tensor_dtype(name))
            self.host_in[name] = torch.empty(shape, dtype=dt, pin_memory=True)
            self.dev_in[name] = torch.empty(shape, dtype=dt, device="cuda")
            context.set_input_shape(name, shape)
            context.set_tensor_address(name, self.dev_in[name].data_ptr())
        for name in runner.outputs:
            shape = tuple(context.get_tensor_shape(name))
            dt = _torch_dtype(trt, engine.get_tensor_dtype(name))
            self.dev_out[name] = torch.empty(shape, dtype=dt, device="cuda")
            self.host_out[name] = torch.empty(shape, dtype=dt, pin_memory=True)
            context.set_tensor_address(name, self.dev_out[name].data_ptr())

    def fill(self, feed: Mapping[str, np.ndarray]) -> None:
        for name, t in self.host_in.items():
            t.copy_(_from_numpy(feed[name]))

    def h2d(self) -> None:
        for name, t in self.dev_in.items():
            t.copy_(self.host_in[name], non_blocking=True)

    def d2h(self) -> None:
        for name, t in self.dev_out.items():
            self.host_out[name].copy_(t, non_blocking=True)


def _from_numpy(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


class TrtRunner(Runner):
    name = "tensorrt"
    clock = "cuda-events"

    def __init__(self, engine: str | os.PathLike, profile: int = 0, cuda_graph: bool = False) -> None:
        super().__init__()
        self.engine_path = Path(engine)
        self.profile = profile
        self.cuda_graph = cuda_graph
        self.sidecar: dict[str, Any] = {}
        self.notes: list[str] = []
        self._graph_note: str | None = None

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

        from ..runners.cuda_timing import SplitTimer

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
        self.stream = torch.cuda.Stream()
        self._device_buffers: list[Any] = []  # device memory of user-managed contexts, alive as long as they are
        self.context = self._context(self.stream)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.timer = SplitTimer(torch, self.stream)
        self._io: _IO | None = None
        self._fed: dict[str, int] = {}
        self._graph: Any = None

    def _context(self, stream: Any) -> Any:
        ctx = self.engine.create_execution_context(*runtime_config(self.trt, self.engine))
        if ctx is None:  # an engine built with REQUIRE_USER_ALLOCATION may want its device memory from us
            ctx = self._user_managed_context()
        if self.profile:
            ctx.set_optimization_profile_async(self.profile, stream.cuda_stream)
        return ctx

    def _user_managed_context(self) -> Any:
        """A context whose device memory the runner provides (USER_MANAGED), kept alive with it."""
        rc = runtime_config(self.trt, self.engine)
        strategy = getattr(self.trt, "ExecutionContextAllocationStrategy", None)
        if not rc or strategy is None:
            raise NinExportError(f"TensorRT could not make an execution context for '{self.engine_path}' (see the TensorRT log)")
        rc[0].set_execution_context_allocation_strategy(strategy.USER_MANAGED)
        ctx = self.engine.create_execution_context(rc[0])
        if ctx is None:
            raise NinExportError(f"TensorRT could not make an execution context for '{self.engine_path}' (see the TensorRT log)")
        size = self.device_memory_bytes()
        buf = self.torch.empty(max(size, 1), dtype=self.torch.uint8, device="cuda")  # 256-byte aligned by the allocator
        ctx.set_device_memory(buf.data_ptr(), size)
        self._device_buffers.append(buf)
        return ctx

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        mn, op, mx = self.engine.get_tensor_profile_shape(name, self.profile)
        return tuple(mn), tuple(op), tuple(mx)

    def fixed_batch(self) -> int | None:
        mn, _, mx = self.profile_range(self.inputs[0])
        return mn[0] if mn[0] == mx[0] else None

    def device_memory_bytes(self) -> int:
        e = self.engine
        if hasattr(e, "get_device_memory_size_for_profile_v2"):
            return int(e.get_device_memory_size_for_profile_v2(self.profile))
        return int(getattr(e, "device_memory_size_v2", getattr(e, "device_memory_size", 0)))

    def device_memory(self) -> dict[str, int]:
        return {"engine_device_memory_bytes": self.device_memory_bytes()}

    def _shapes(self, feed: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for name in self.inputs:
            shape = tuple(np.shape(feed[name]))
            mn, _, mx = self.profile_range(name)
            if len(shape) != len(mn) or not all(a <= d <= b for a, d, b in zip(mn, shape, mx)):
                raise NinExportError(
                    f"input '{name}' shape {shape} is outside the engine's profile "
                    f"{'x'.join(map(str, mn))} .. {'x'.join(map(str, mx))}: rebuild with a wider --batch"
                )
            shapes[name] = shape
        return shapes

    def _bind(self, feed: Mapping[str, np.ndarray], always_fill: bool) -> _IO:
        """Buffers for these input shapes (made once per shape), the pinned inputs filled when the data is new."""
        shapes = self._shapes(feed)
        if self._io is None or self._io.shapes != shapes:
            self.timer.drain()  # iterations in flight still use the old buffers
            self._io, self._fed, self._graph = _IO(self, self.context, shapes), {}, None
            if self.cuda_graph:  # captured here, outside any timed iteration
                from ..runners.cuda_timing import capture_or_fallback

                graph, self._graph_note = capture_or_fallback(self._capture)
                self._graph = graph if graph is not None else False  # False: refused, plain enqueues
        if always_fill or any(self._fed.get(n) != id(feed[n]) for n in self.inputs):
            self.timer.drain()  # an in-flight H2D may still read the pinned input
            self._io.fill(feed)
            self._fed = {n: id(feed[n]) for n in self.inputs}
        return self._io

    def _execute(self, context: Any, stream: Any) -> None:
        if not context.execute_async_v3(stream.cuda_stream):
            raise NinExportError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def _compute(self) -> None:
        if self._graph:
            self._graph.replay()
        else:
            self._execute(self.context, self.stream)

    def _capturable(self) -> str | None:
        """Why TensorRT says this context cannot be captured on its stream (None: it can, or it cannot tell)."""
        check = getattr(self.context, "is_stream_capturable", None)
        if check is not None and not check(self.stream.cuda_stream):
            return (
                "TensorRT says this execution context cannot be captured on its stream (an engine built without "
                "REQUIRE_USER_ALLOCATION, or one with data-dependent shapes); plain enqueue used"
            )
        return None

    def _capture(self) -> Any:
        """One plain enqueue after a shape change (TensorRT's rule), then TensorRT's own word on capture, then a
        thread-local capture, as trtexec does."""
        torch = self.torch
        self._execute(self.context, self.stream)
        self.stream.synchronize()
        if (why := self._capturable()) is not None:
            raise NinExportError(why)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(self.stream):  # the current stream comes back even if the capture fails
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._execute(self.context, self.stream)
        return graph

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        io = self._bind(feed, always_fill=True)
        self.timer.run(io.h2d, self._compute, io.d2h)
        self.timer.drain()
        return {n: t.float().numpy().copy() for n, t in io.host_out.items()}

    def time_infer(self, feed: Mapping[str, np.ndarray]) -> float | None:
        """GPU compute time of an iteration (trtexec's GPU Compute Time), two in flight: the time of the one that
        completed, or None; H2D, D2H and enqueue time of every iteration are in ``split()``."""
        io = self._bind(feed, always_fill=False)
        return self.timer.run(io.h2d, self._compute, io.d2h)

    def drain_timing(self) -> list[float]:
        return self.timer.drain()

    def reset_split(self) -> None:
        self.timer.reset()

    def split(self) -> dict[str, Any]:
        return dict(self.timer.split(), cuda_graph=bool(self.cuda_graph and self._graph), cuda_graph_note=self._graph_note)

    def throughput(self, feed: Mapping[str, np.ndarray], streams: int, seconds: float = 2.0) -> dict[str, Any]:
        """Images per second with ``streams`` execution contexts, each with its own stream and buffers."""
        from ..runners.cuda_timing import multi_stream_throughput

        shapes = self._shapes(feed)
        lanes = []
        for _ in range(streams):
            stream = self.torch.cuda.Stream()
            io = _IO(self, self._context(stream), shapes)
            io.fill(feed)

            def enqueue(io: _IO = io, stream: Any = stream) -> None:
                io.h2d()
                self._execute(io.context, stream)
                io.d2h()

            lanes.append((stream, enqueue))
        return multi_stream_throughput(self.torch, lanes, next(iter(shapes.values()))[0], seconds)

    def host_infer_seconds(self, feed: Mapping[str, np.ndarray]) -> float:
        """Host seconds of one synchronous inference with its copies (fill, H2D, execute, D2H, wait): the scope
        Polygraphy's last_inference_time() covers, for the cross-check."""
        t0 = time.perf_counter()
        io = self._bind(feed, always_fill=True)
        self.timer.run(io.h2d, self._compute, io.d2h)
        self.timer.drain()
        return time.perf_counter() - t0

    def input_dtype(self, name: str) -> np.dtype:
        """The numpy dtype an input is bound with (float16 for an FP16-I/O engine)."""
        return np.dtype(np.float16) if self.engine.get_tensor_dtype(name) == self.trt.DataType.HALF else np.dtype(np.float32)

    def deactivate_impl(self) -> None:
        if hasattr(self, "timer"):  # nothing freed under work still in flight
            self.timer.drain()
            self.stream.synchronize()
        for attr in ("_graph", "_io", "context", "_device_buffers", "engine", "runtime"):
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
