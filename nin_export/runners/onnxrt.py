"""onnxruntime runner (CPU by default; CUDA / TensorRT execution providers where installed)."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from ..errors import BackendUnavailableError, OnnxFileError
from .base import Runner

__all__ = ["OrtRunner"]

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
        self.session = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailableError(
                f"onnxruntime here lacks {', '.join(missing)}; install onnxruntime-gpu for CUDA, or use the CPU provider"
            )
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        model = self.model if isinstance(self.model, bytes) else os.fspath(self.model)
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            where = "" if isinstance(self.model, bytes) else f" '{self.model}'"
            raise OnnxFileError(f"onnxruntime cannot load{where}: {str(e).strip().splitlines()[0][:200]}") from None
        # Cast feeds to what each input declares (float16 I/O of an FP16 graph, say).
        self._dtypes = {i.name: _NP_TYPES[i.type] for i in self.session.get_inputs() if i.type in _NP_TYPES}

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(
            zip(names, self.session.run(names, {k: v.astype(self._dtypes.get(k, v.dtype), copy=False) for k, v in feed.items()}))
        )

    def deactivate_impl(self) -> None:
        self.session = None
