"""Reading ONNX files safely and describing them (`nin-export inspect`)."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from .enums import Precision
from .errors import OnnxFileError, first_line

__all__ = [
    "toposort",
    "load_onnx",
    "read_metadata",
    "set_metadata",
    "OnnxInfo",
    "describe_onnx",
    "count_nodes",
    "QUANT_OPS",
    "graph_precision",
    "opset_of",
]

QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "DynamicQuantizeLinear",
    "ConvInteger",
    "MatMulInteger",
}


def load_onnx(path: str | os.PathLike, check: bool = True) -> onnx.ModelProto:
    """Load and (optionally) check an ONNX file, or raise OnnxFileError with one line."""
    p = Path(path)
    if not p.is_file():
        raise OnnxFileError(f"ONNX file '{p}' not found: export one with 'nin-export onnx'")
    try:
        model = onnx.load(os.fspath(p))
    except Exception as e:  # protobuf DecodeError and friends
        raise OnnxFileError(
            f"'{p}' is not a readable ONNX model ({type(e).__name__}); re-export it with 'nin-export onnx'"
        ) from None
    if not model.graph.node:
        raise OnnxFileError(f"'{p}' holds no ONNX graph; re-export it with 'nin-export onnx'")
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as e:
            raise OnnxFileError(f"'{p}' fails the ONNX checker: {first_line(e, 200)}") from None
    return model


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset the graph is written in."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def graph_precision(model: onnx.ModelProto) -> Precision:
    """Precision lives in the graph: Q/DQ (or other quantized ops) is INT8, float16 weights are FP16, else FP32."""
    if any(n.op_type in QUANT_OPS for n in model.graph.node):
        return Precision.INT8
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return Precision.FP16
    return Precision.FP32


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """Embedded metadata; JSON values decoded."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        try:
            out[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            out[prop.key] = prop.value
    return out


def set_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Merge ``meta`` into metadata_props; non-strings stored as JSON."""
    merged = {p.key: p.value for p in model.metadata_props}
    merged.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    del model.metadata_props[:]
    for k, v in merged.items():
        model.metadata_props.add(key=k, value=v)


def toposort(model: onnx.ModelProto) -> None:
    """Reorder graph nodes so each comes after the producers of its inputs (in place, stable)."""
    g = model.graph
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending = list(g.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise OnnxFileError("the ONNX graph has a cycle or an input that nothing produces")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)


def count_nodes(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in vi.type.tensor_type.shape.dim]


def _param_count(model: onnx.ModelProto) -> int:
    """Elements of weight/bias initializers; Q/DQ scales and zero points are not parameters."""
    qparams = {name for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for name in n.input[1:]}
    total = 0
    for init in model.graph.initializer:
        if init.name in qparams or len(init.dims) == 0:
            continue
        n = 1
        for d in init.dims:
            n *= d
        total += n
    return total


@dataclass
class OnnxInfo:
    path: str
    bytes: int
    opset: int
    producer: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    op_histogram: dict[str, int]
    params: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return any(op in QUANT_OPS for op in self.op_histogram)


def describe_onnx(path: str | os.PathLike) -> OnnxInfo:
    model = load_onnx(path, check=True)
    opset = opset_of(model)
    io = lambda vis: [
        {
            "name": v.name,
            "dtype": TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower(),  # noqa: E731
            "shape": _dims(v),
        }
        for v in vis
    ]
    hist = Counter(n.op_type for n in model.graph.node)
    return OnnxInfo(
        path=os.fspath(path),
        bytes=Path(path).stat().st_size,
        opset=opset,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=io(model.graph.input),
        outputs=io(model.graph.output),
        op_histogram=dict(hist.most_common()),
        params=_param_count(model),
        metadata=read_metadata(model),
    )


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The batch size the graph's (first) input is fixed at, or None for a dynamic batch."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    dims = inputs[0].type.tensor_type.shape.dim if inputs else []
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


def check_metadata_matches_graph(meta: Any, model: onnx.ModelProto, where: str | os.PathLike) -> None:
    """Refuse, in one line, metadata whose channels or input size contradict the graph's fixed input dims
    (a ModelMeta; metadata that lies would otherwise surface as onnxruntime's shape errors)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs or meta.in_channels is None:
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise OnnxFileError(f"'{where}' takes a {len(dims)}-d input; nin-export models take NCHW images")
    outs = [d.dim_value if d.HasField("dim_value") else None for d in model.graph.output[0].type.tensor_type.shape.dim]
    if meta.num_classes and len(outs) == 2 and outs[1] not in (None, meta.num_classes):
        raise OnnxFileError(
            f"'{where}' metadata says {meta.num_classes} classes but the graph has {outs[1]} outputs: "
            f"re-export it with 'nin-export onnx'"
        )
    said = [meta.in_channels, *(meta.input_size or (None, None))]
    for d, m in zip(dims[1:], said):
        if d is not None and m is not None and d != m:
            raise OnnxFileError(
                f"'{where}' metadata says input {'x'.join(map(str, said))} (CxHxW) but the graph takes "
                f"{'x'.join(str(x) if x else '?' for x in dims[1:])}: re-export it with 'nin-export onnx'"
            )
