"""onnxruntime runner: the CPU execution provider by default; the CUDA and TensorRT execution providers
where onnxruntime-gpu is installed (CUDA_PROVIDERS, TENSORRT_PROVIDERS)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import BackendUnavailableError, OnnxFileError, first_line
from .base import Runner

__all__ = ["OrtRunner", "CUDA_PROVIDERS", "TENSORRT_PROVIDERS", "provider_missing"]

CUDA_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
# TensorRT first, CUDA for what TensorRT leaves, CPU last (onnxruntime's documented order)
TENSORRT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_HINT = "install onnxruntime-gpu in place of onnxruntime (pip uninstall onnxruntime; pip install onnxruntime-gpu)"


def provider_missing(provider: str) -> str | None:
    """Why onnxruntime here cannot offer ``provider`` (None: it can)."""
    import onnxruntime as ort

    if provider in ort.get_available_providers():
        return None
    return f"onnxruntime {ort.__version__} here has no {provider}: {_GPU_HINT}"


_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OrtRunner(Runner):
    name = "onnxruntime"

    def __init__(
        self, model: str | os.PathLike | bytes, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.threads = threads
        self._session: Any = None  # an onnxruntime.InferenceSession while active (onnxruntime ships no type hints)

    def activate_impl(self) -> None:
        import onnxruntime as ort

        for p in self.providers:
            if (why := provider_missing(p)) is not None:
                raise BackendUnavailableError(why)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        model = self.model if isinstance(self.model, bytes) else os.fspath(self.model)
        try:
            self._session = ort.InferenceSession(model, sess_options=opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            where = "" if isinstance(self.model, bytes) else f" '{self.model}'"
            raise OnnxFileError(f"onnxruntime cannot load{where}: {first_line(e, 200)}") from None
        wanted, got = self.providers[0], self.session.get_providers()
        if wanted not in got:  # onnxruntime falls back to the CPU, with a log line, when a GPU provider cannot start
            raise BackendUnavailableError(
                f"onnxruntime could not start {wanted} (it fell back to {', '.join(got)}): "
                f"check the CUDA, cuDNN and TensorRT libraries onnxruntime-gpu needs"
            )
        # Cast feeds to what each input declares (float16 I/O of an FP16 graph, say).
        self._dtypes = {i.name: _NP_TYPES[i.type] for i in self.session.get_inputs() if i.type in _NP_TYPES}

    @property
    def session(self) -> Any:
        """The onnxruntime.InferenceSession; RuntimeError before ``activate``."""
        if self._session is None:
            raise RuntimeError(f"{self.name} must be activated first")
        return self._session

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def fixed_batch(self) -> int | None:
        dim = self.session.get_inputs()[0].shape[0] if self.session.get_inputs()[0].shape else None
        return dim if isinstance(dim, int) and dim > 0 else None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        cast = {k: v.astype(self._dtypes.get(k, v.dtype), copy=False) for k, v in feed.items()}
        try:
            return dict(zip(names, self.session.run(names, cast)))
        except Exception as e:  # onnxruntime's own types: a graph whose declared shapes lie, say
            shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in cast.items())
            raise OnnxFileError(f"onnxruntime failed on {shapes}: {first_line(e, 200)}") from None

    def deactivate_impl(self) -> None:
        self._session = None
