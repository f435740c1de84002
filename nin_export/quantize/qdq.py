"""INT8 graphs: which nodes get Q/DQ, calibration, and the two quantizers (onnxruntime, NVIDIA ModelOpt).

Placement follows TensorRT's rules by default (Int8Target.TENSORRT): Q/DQ on the activation and weight
inputs of Conv, Gemm and MatMul only, as NVIDIA's ModelOpt places it. TensorRT then fuses conv + bias +
ReLU and moves Q/DQ through commuting ops such as MaxPool by itself; a Q/DQ pair after every Conv and
every ReLU (onnxruntime's default op list) only adds nodes for it to remove. Int8Target.ORT_CPU is
onnxruntime's own best CPU layout: uint8 asymmetric activations, int8 per-channel weights, every
operator onnxruntime quantizes, int32 biases. TensorRT refuses that one (non-zero zero points).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..core._proc import spawn_call
from ..core.enums import CalibMethod, Int8Target
from ..core.errors import NinExportError
from ..core.onnx_utils import fixed_batch, toposort
from .calibrate import ENTROPY_ALGORITHM, ENTROPY_BINS, QUANTIZED_BINS, calibrate_entropy

__all__ = [
    "QDQ_OPS",
    "HISTOGRAM_OPTIONS",
    "head_nodes",
    "quantizable_nodes",
    "match_nodes",
    "name_nodes",
    "calibrate",
    "quantize_int8",
    "modelopt_int8",
    "float16_remainder",
    "release_float_inputs",
    "has_uint8_activations",
]

QDQ_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # the ops whose inputs TensorRT wants quantized


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a stable name (``<op>_<index>``), in place: exclusions and reports need one."""
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Global average pooling nodes and everything downstream of them."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    todo = [n for n in model.graph.node if n.op_type in ("GlobalAveragePool", "ReduceMean")]
    seen: dict[str, None] = {}
    while todo:
        n = todo.pop()
        if n.name in seen:
            continue
        seen[n.name] = None
        for o in n.output:
            todo.extend(consumers.get(o, []))
    return list(seen)


def quantizable_nodes(model: onnx.ModelProto, skip: Sequence[str] = ()) -> list[onnx.NodeProto]:
    """The Conv/Gemm/MatMul nodes INT8 quantizes, in graph order, less those named in ``skip``."""
    skipped = set(skip)
    return [n for n in model.graph.node if n.op_type in QDQ_OPS and n.name not in skipped]


def match_nodes(model: onnx.ModelProto, patterns: list[str], what: str = "--exclude") -> list[str]:
    """Names of the quantizable nodes that match any of ``patterns`` (node names or shell-style globs,
    e.g. 'node_conv2d' or 'node_conv2d_*'), unnamed nodes named as name_nodes names them. A pattern
    that matches none is refused in one line."""
    names = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(model.graph.node) if n.op_type in QDQ_OPS]
    out: dict[str, None] = {}
    for pat in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise NinExportError(
                f"{what} '{pat}' matches none of the model's {len(names)} Conv/Gemm/MatMul nodes ({shown}); "
                f"'nin-export sensitivity' lists them all"
            )
        out.update(dict.fromkeys(hits))
    return list(out)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next() -> dict | None``."""

    def __init__(self, name: str, x: np.ndarray, batch: int = 16) -> None:
        self.name, self.x, self.batch, self.pos = name, x, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.x):
            return None
        chunk = self.x[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return {self.name: chunk}

    def rewind(self) -> None:
        self.pos = 0

    def __iter__(self):
        self.rewind()
        while (item := self.get_next()) is not None:
            yield item

    def __len__(self) -> int:
        return len(self.x)

    def set_range(self, start_index: int, end_index: int) -> None:  # for CalibStridedMinMax; unused
        self.pos = start_index


def _equal_batch(n: int) -> int:
    """The largest batch <= 16 that divides ``n``: onnxruntime's histogram calibrators (entropy,
    percentile) stack the batches' outputs and fail on a ragged last one (300 images in 16s leave 12)."""
    return next(b for b in range(16, 0, -1) if n % b == 0)


# What each histogram method computes, recorded in the calibration cache key. Entropy is TensorRT's
# (calibrate.py: |x| in 2048 bins, KL over 128 levels); it was onnxruntime's signed search before, and
# onnxruntime's 128-bin default before that (one candidate: identical to minmax), so neither is reused.
HISTOGRAM_OPTIONS: dict[CalibMethod, dict[str, int | float | str]] = {
    CalibMethod.ENTROPY: {"num_bins": ENTROPY_BINS, "num_quantized_bins": QUANTIZED_BINS, "algorithm": ENTROPY_ALGORITHM},
    CalibMethod.PERCENTILE: {"num_bins": 2048, "percentile": 99.999},
}


def calibrate(model: onnx.ModelProto, x: np.ndarray, method: CalibMethod) -> dict[str, tuple[float, float]]:
    """{tensor: (lowest, highest)} over ``x``: entropy as TensorRT computes it (calibrate.py), minmax and
    percentile by onnxruntime's calibrators."""
    fixed = fixed_batch(model)
    if fixed:  # a graph exported with a fixed batch is fed exactly that many images at a time
        x = x[: len(x) - len(x) % fixed]
        if not len(x):
            raise NinExportError(f"the graph takes batches of exactly {fixed}: give at least {fixed} calibration images")
    batch = fixed or _equal_batch(len(x))
    if method is CalibMethod.ENTROPY:
        return calibrate_entropy(model, x, batch=batch)
    from onnxruntime.quantization.calibrate import create_calibrator

    with tempfile.TemporaryDirectory(prefix="nin-export-calib-") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, os.fspath(src))
        calibrator = create_calibrator(
            src,
            None,
            augmented_model_path=os.fspath(Path(tmp) / "augmented.onnx"),
            calibrate_method=method.ort(),
            extra_options={k: v for k, v in HISTOGRAM_OPTIONS.get(method, {}).items() if k != "algorithm"},
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
            calibrator.collect_data(_Reader(model.graph.input[0].name, x, batch))
            data = calibrator.compute_data()
        del calibrator
    out = {}
    for name, td in data.data.items():
        lo, hi = td.range_value
        out[name] = (float(np.asarray(lo).min()), float(np.asarray(hi).max()))
    return out


def ort_settings(target: Int8Target, every_op: bool = False):
    """(op types, activation type, extra options) for onnxruntime's QDQ quantizer. ``every_op``: TensorRT's
    integer types with onnxruntime's full op list, Q/DQ after every Conv and ReLU (nin-export 0.1's
    placement, kept for comparisons)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    every = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    if target is Int8Target.ORT_CPU:
        return every, QuantType.QUInt8, {"WeightSymmetric": True}
    if every_op:
        return every, QuantType.QInt8, {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    extra = {
        "ActivationSymmetric": True,  # zero points 0: all TensorRT accepts
        "WeightSymmetric": True,
        "QuantizeBias": False,  # TensorRT rejects an INT32 bias DequantizeLinear
        "OpTypesToExcludeOutputQuantization": list(QDQ_OPS),  # inputs only: TensorRT fuses the rest
    }
    return list(QDQ_OPS), QuantType.QInt8, extra


def quantize_int8(
    model: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    exclude: list[str],
    target: Int8Target = Int8Target.TENSORRT,
    only: list[str] | None = None,
    settings: tuple | None = None,
) -> onnx.ModelProto:
    """Q/DQ insertion by onnxruntime's QDQ quantizer from precomputed ranges: per-channel int8 weights
    (stored as int8), activations as ``target`` wants. ``exclude``: nodes kept in float; ``only``: quantize
    these nodes alone (the per-layer sensitivity); ``settings``: ort_settings(...) other than the target's."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import save_and_reload_model_with_shape_infer

    op_types, activation, extra = settings or ort_settings(target)
    model = save_and_reload_model_with_shape_infer(model)  # what quantize_static does first
    tensors = TensorsData(
        CalibrationMethod.MinMax, {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantizer = QDQQuantizer(model, True, False, QuantType.QInt8, activation, tensors, only or [], exclude, op_types, extra)
        quantizer.quantize_model()
    out = quantizer.model.model
    toposort(out)  # as save_model_to_file would
    return out


FP16_QDQ_OPSET = 19  # float16 scales in QuantizeLinear/DequantizeLinear


def float16_remainder(model: onnx.ModelProto) -> onnx.ModelProto:
    """An INT8 Q/DQ graph with what it leaves in float (layers kept in float, the head, biases, ReLU, pooling)
    in float16 and its inputs/outputs kept float32, as ModelOpt's ``high_precision_dtype='fp16'`` makes it:
    the Q/DQ scales become float16, so DequantizeLinear feeds float16 layers, which needs opset 19."""
    from onnx import version_converter
    from onnxruntime.transformers.float16 import convert_float_to_float16

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < FP16_QDQ_OPSET:
        try:
            model = version_converter.convert_version(model, FP16_QDQ_OPSET)
        except Exception as e:  # the converter raises its own RuntimeError/ValidationError types
            raise NinExportError(
                f"could not move the INT8 graph from opset {opset} to {FP16_QDQ_OPSET} for float16 Q/DQ scales ({e}); "
                f"keep the float layers in float32 with --float-dtype fp32"
            ) from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = convert_float_to_float16(model, keep_io_types=True)
    toposort(out)  # the converter appends the I/O Casts at the end of the node list
    return out


# Ops that pass a quantized tensor's values through unchanged in kind: a Q/DQ before them still reaches
# the layer after them (ModelOpt puts one in front of MaxPool).
_PASS_THROUGH = ("MaxPool", "Relu", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")


def _consumer_map(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def release_float_inputs(model: onnx.ModelProto, float_nodes: list[str]) -> list[str]:
    """Give each of ``float_nodes`` its input in float, in place: an activation Q/DQ pair in front of it, or in
    front of the MaxPool (or other pass-through op) that feeds it, is bypassed when everything it reaches is
    kept in float. Refused, in one line, when the pair also feeds an INT8 layer. Returns the DQ nodes bypassed."""
    prod = {o: n for n in model.graph.node for o in n.output}
    cons = _consumer_map(model)
    floats = set(float_nodes)

    def only_float(t: str) -> bool:  # everything that reads t, through pass-through ops, is kept in float
        return all(c.name in floats or (c.op_type in _PASS_THROUGH and all(map(only_float, c.output))) for c in cons.get(t, []))

    bypassed = []
    for node in [n for n in model.graph.node if n.name in floats and n.input]:
        t = node.input[0]
        while t in prod and prod[t].op_type in _PASS_THROUGH:
            t = prod[t].input[0]
        dq = prod.get(t)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = prod.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or dq.name in bypassed:
            continue
        if not only_float(dq.output[0]):
            raise NinExportError(
                f"--quantizer modelopt quantized the input of {node.name} ({dq.name}), which also feeds an INT8 layer: "
                f"it cannot be kept in float alone; exclude its neighbours too, or use --quantizer ort"
            )
        for c in cons.get(dq.output[0], []):
            c.input[:] = [q.input[0] if i == dq.output[0] else i for i in c.input]
        bypassed.append(dq.name)
    _drop_unused(model)
    return bypassed


def _drop_unused(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes whose outputs nothing reads, then initializers nothing reads."""
    while True:
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.output[0] not in used]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


MODELOPT_METHODS = {CalibMethod.MINMAX: "max", CalibMethod.ENTROPY: "entropy"}


def check_modelopt_method(method: CalibMethod) -> None:
    """ModelOpt's INT8 calibrates with max (our minmax) or entropy; anything else is one line."""
    if method not in MODELOPT_METHODS:
        raise NinExportError(
            f"--quantizer modelopt calibrates with {' or '.join(m.value for m in MODELOPT_METHODS)}, not {method.value}"
        )


def _modelopt_child(src: str, dst: str, npy: str, method: str, exclude: list[str], dtype: str) -> str | None:
    """In a spawned process: importing ModelOpt's ONNX quantizer patches onnxruntime's calibrators for the
    whole process (they then expect node names where onnxruntime passes op types), so it never runs in
    ours. Returns None, or why ModelOpt could not run."""
    try:
        from modelopt.onnx.quantization import quantize as mo_quantize
    except ImportError as e:
        return f"--quantizer modelopt needs NVIDIA ModelOpt's ONNX quantizer ({e}): pip install 'nin-export[modelopt]'"
    sink = io.StringIO()
    # ModelOpt prints its progress (logging, tqdm, onnxruntime's calibrator): the library stays quiet.
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mo_quantize(
            src,
            quantize_mode="int8",
            calibration_data=np.load(npy),
            calibration_method=method,
            calibration_eps=["cpu"],
            nodes_to_exclude=[re.escape(n) + "$" for n in exclude] or None,
            high_precision_dtype=dtype,
            output_path=dst,
            log_level="ERROR",
        )
    return None


def _modelopt_job(args: tuple) -> str | None:
    return _modelopt_child(*args)


def modelopt_int8(
    model: onnx.ModelProto, x: np.ndarray, method: CalibMethod, exclude: list[str], fp16: bool = False
) -> onnx.ModelProto:
    """NVIDIA ModelOpt's ONNX post-training quantization (``modelopt.onnx.quantization.quantize``, int8 mode)
    on the CPU, float parts in float16 (``fp16``, float32 I/O kept) or float32, in a child process (see
    _modelopt_child). ModelOpt calibrates by itself (its own onnxruntime pass over ``x``). The nodes of
    ``exclude`` get float inputs (release_float_inputs): ModelOpt leaves a Q/DQ in front of their MaxPool."""
    check_modelopt_method(method)
    with tempfile.TemporaryDirectory(prefix="nin-export-modelopt-") as tmp:
        src, dst, npy = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx", Path(tmp) / "calib.npy"
        onnx.save(model, os.fspath(src))
        np.save(npy, x)
        args = (os.fspath(src), os.fspath(dst), os.fspath(npy), MODELOPT_METHODS[method], list(exclude), "fp16" if fp16 else "fp32")
        try:
            why = spawn_call(_modelopt_job, args)  # a child that ends with this process, however it ends
        except RuntimeError as e:  # ModelOpt raised, or its process died
            raise NinExportError(f"NVIDIA ModelOpt could not quantize the graph: {e}") from None
        if why:
            raise NinExportError(why)
        out = onnx.load(os.fspath(dst))
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    release_float_inputs(out, exclude)
    return out


def has_uint8_activations(model: onnx.ModelProto) -> bool:
    """True for a graph with uint8 QuantizeLinear zero points (the onnxruntime CPU layout), which
    TensorRT does not run as written (it wants zero points of 0)."""
    zp = {i.name: i.data_type for i in model.graph.initializer}
    return any(
        n.op_type == "QuantizeLinear" and len(n.input) > 2 and zp.get(n.input[2]) == onnx.TensorProto.UINT8
        for n in model.graph.node
    )
