"""FP16 and INT8 (explicit Q/DQ) ONNX graphs that every TensorRT accepts, checked against FP32.

Precision lives in the graph (DESIGN.md section 2). FP16: float16 compute, float32 I/O by
default. INT8: onnxruntime's static quantization in QDQ format with the settings TensorRT needs:
symmetric int8 activations and weights (zero points 0), per-channel weights on the output-channel
axis, biases left in float (TensorRT rejects an INT32 bias DequantizeLinear), opset >= 13. The
global average pooling of a NiN and what follows it stay in float unless asked otherwise.

Calibration ranges are cached as JSON under a key of (model graph, calibration inputs,
preprocessing, method, count), and reused only when the key matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from ._io import atomic_path, ensure_dir, write_json
from .data import DataError, DataSource, Preprocess, Samples, open_source
from .errors import NinExportError, OnnxFileError, OutputPathError, VerificationError
from .manifest import record_artifact
from .onnx_utils import QUANT_OPS, load_onnx, read_metadata, set_metadata, toposort
from .runners import OrtRunner
from .enums import CalibMethod, Precision
from .verify import Agreement, Tolerance, compare

__all__ = [
    "CalibMethod",
    "QuantizeOptions",
    "QuantizeResult",
    "quantize",
    "convert_fp16",
    "quantize_int8",
    "MIN_CALIB_IMAGES",
    "RECOMMENDED_CALIB_IMAGES",
    "DEFAULT_CACHE_DIR",
]

# Below 16 images a single image sets most per-tensor ranges; TensorRT's and OpenVINO's guidance
# is a few hundred representative images (NNCF's default subset is 300).
MIN_CALIB_IMAGES = 16
RECOMMENDED_CALIB_IMAGES = 300
DEFAULT_CALIB_COUNT = 300
DEFAULT_EVAL_COUNT = 200
DEFAULT_CACHE_DIR = "calibration"
CACHE_VERSION = 1

TOLERANCES = {
    Precision.FP16: Tolerance(atol=float("inf"), rtol=0.0, min_cosine=0.999),
    Precision.INT8: Tolerance(atol=float("inf"), rtol=0.0, min_cosine=0.95),
}


@dataclass
class QuantizeOptions:
    precision: Precision
    keep_io_types: bool = True
    calib_data: str | None = None  # a source for open_source; FP16 uses it for the held-out check only
    calib_method: CalibMethod = CalibMethod.MINMAX
    calib_count: int = DEFAULT_CALIB_COUNT
    eval_count: int = DEFAULT_EVAL_COUNT
    allow_synthetic: bool = False
    cache_dir: str | None = DEFAULT_CACHE_DIR  # None: no cache
    quantize_head: bool = False  # INT8: quantize global average pooling and what follows too

    def to_dict(self) -> dict[str, Any]:
        d = {"precision": str(self.precision), "calib_data": self.calib_data, "eval_count": self.eval_count}
        if self.precision is Precision.FP16:
            d["keep_io_types"] = self.keep_io_types
        else:
            d.update(calib_method=self.calib_method.value, calib_count=self.calib_count, quantize_head=self.quantize_head,
                     activation="int8 symmetric per-tensor", weight="int8 symmetric per-channel (axis 0)", bias="float")
        return d


@dataclass
class QuantizeResult:
    path: Path
    parent: Path
    precision: Precision
    agreement: Agreement
    calib_images: int = 0
    cache: str | None = None  # "reused <path>" / "wrote <path>" / None
    notes: list[str] = field(default_factory=list)  # warnings for the user
    excluded_nodes: list[str] = field(default_factory=list)


Progress = Callable[[str], None]


def _is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QUANT_OPS for n in model.graph.node)


def _is_fp16(model: onnx.ModelProto) -> bool:
    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def default_output(src: Path, precision: Precision) -> Path:
    stem = src.name[: -len(".onnx")] if src.name.endswith(".onnx") else src.stem
    stem = stem[: -len(".sim")] if stem.endswith(".sim") else stem
    return src.with_name(f"{stem}.{precision.value}.onnx")


# --- data ---------------------------------------------------------------------------------------

def _select(source: DataSource, calib_count: int, eval_count: int, need_calib: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Calibration indices from the train split, held-out indices from the test split."""
    notes: list[str] = []
    train, test = source.split()
    calib = train[:calib_count] if need_calib else train[:0]
    if need_calib and len(calib) < MIN_CALIB_IMAGES:
        raise DataError(f"too few calibration images: {len(calib)} usable in the calibration split of {source.name} "
                        f"({len(source)} in all, a fifth held out); INT8 needs at least {MIN_CALIB_IMAGES}, "
                        f"{RECOMMENDED_CALIB_IMAGES} recommended")
    if need_calib and len(calib) < RECOMMENDED_CALIB_IMAGES:
        notes.append(f"only {len(calib)} calibration images ({RECOMMENDED_CALIB_IMAGES} recommended): "
                     f"INT8 ranges may be off; give more images with --calib-count/--calib-data")
    return calib, test[:eval_count], notes


def _load(source: DataSource, idx: np.ndarray, what: str) -> Samples:
    s = source.load(idx)
    if len(idx) and not len(s.x):
        raise DataError(f"none of the {len(idx)} {what} images in {source.name} could be read")
    return s


# --- FP16 ---------------------------------------------------------------------------------------

def convert_fp16(model: onnx.ModelProto, keep_io_types: bool = True) -> onnx.ModelProto:
    """Float16 compute; float32 inputs/outputs (Cast at the edges) when ``keep_io_types``."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = convert_float_to_float16(model, keep_io_types=keep_io_types)
    toposort(out)  # the converter appends the I/O Casts at the end of the node list
    return out


# --- INT8 ---------------------------------------------------------------------------------------

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


def _name_nodes(model: onnx.ModelProto) -> None:
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"


def _graph_hash(model: onnx.ModelProto) -> str:
    """The graph (nodes, weights, I/O) and its opsets: what the ranges depend on. Model metadata is left
    out, so a retrained checkpoint with the same weights (only its training time differs, and with it
    the weights sha256 recorded in the ONNX metadata) reuses the cache."""
    h = hashlib.sha256(model.graph.SerializeToString(deterministic=True))
    for op in sorted(model.opset_import, key=lambda o: o.domain):
        h.update(f"{op.domain}:{op.version};".encode())
    return h.hexdigest()


def cache_key(model: onnx.ModelProto, calib_x: np.ndarray, pre: Preprocess, method: CalibMethod, data_fingerprint: str) -> dict[str, str]:
    """Parts of the key, and the key (sha256 over the parts)."""
    parts = {
        "model": _graph_hash(model),
        "data": data_fingerprint,
        "inputs": hashlib.sha256(np.ascontiguousarray(calib_x).tobytes()).hexdigest(),
        "preprocess": json.dumps(pre.to_dict(), sort_keys=True),
        "method": method.value,
        "count": str(len(calib_x)),
    }
    parts["key"] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return parts


def _read_cache(path: Path, key: str) -> dict[str, tuple[float, float]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("version") != CACHE_VERSION or data.get("key") != key or not isinstance(data.get("ranges"), dict):
        return None
    return {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next() -> dict | None``."""

    def __init__(self, name: str, x: np.ndarray, batch: int = 16) -> None:
        self.name, self.x, self.batch, self.pos = name, x, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.x):
            return None
        chunk = self.x[self.pos: self.pos + self.batch]
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


def calibrate(model: onnx.ModelProto, x: np.ndarray, method: CalibMethod) -> dict[str, tuple[float, float]]:
    """Run onnxruntime's calibrator over ``x``; return {tensor: (lowest, highest)}."""
    from onnxruntime.quantization.calibrate import create_calibrator

    with tempfile.TemporaryDirectory(prefix="nin-export-calib-") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, os.fspath(src))
        extra = {"percentile": 99.999} if method is CalibMethod.PERCENTILE else {}
        calibrator = create_calibrator(src, None, augmented_model_path=os.fspath(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=method.ort(), extra_options=extra)
        calibrator.collect_data(_Reader(model.graph.input[0].name, x))
        data = calibrator.compute_data()
        del calibrator
    out = {}
    for name, td in data.data.items():
        lo, hi = td.range_value
        out[name] = (float(np.asarray(lo).min()), float(np.asarray(hi).max()))
    return out


def quantize_int8(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], exclude: list[str]) -> onnx.ModelProto:
    """Q/DQ insertion with the TensorRT settings, from precomputed ranges."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import save_and_reload_model_with_shape_infer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    # What quantize_static does before it builds the same quantizer (onnxruntime >= 1.17).
    op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    model = save_and_reload_model_with_shape_infer(model)
    tensors = TensorsData(CalibrationMethod.MinMax, {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                                                     for k, (lo, hi) in ranges.items()})
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    quantizer = QDQQuantizer(model, True, False, QuantType.QInt8, QuantType.QInt8, tensors, [], exclude, op_types, extra)
    quantizer.quantize_model()
    out = quantizer.model.model
    toposort(out)  # as save_model_to_file would
    return out


# --- the step ------------------------------------------------------------------------------------

def _run(path_or_bytes, xs: np.ndarray, batch: int = 32) -> np.ndarray:
    with OrtRunner(path_or_bytes) as r:
        name = r.input_names[0]
        return np.concatenate([next(iter(r.infer({name: xs[i: i + batch]}).values())) for i in range(0, len(xs), batch)])


def quantize(src: str | os.PathLike, options: QuantizeOptions, output: str | os.PathLike | None = None,
             progress: Progress | None = None) -> QuantizeResult:
    """Make ``src``'s FP16 or INT8 twin, check it against ``src`` on held-out real inputs, record it."""
    say = progress or (lambda _m: None)
    src = Path(src)
    model = load_onnx(src)
    if _is_quantized(model):
        raise OnnxFileError(f"'{src}' is already quantized (it has Q/DQ nodes): quantize the FP32 ONNX instead")
    if _is_fp16(model):
        raise OnnxFileError(f"'{src}' is already float16: quantize the FP32 ONNX instead")
    prec = options.precision
    if prec is Precision.FP32:
        raise NinExportError("nothing to do for fp32: choose --fp16 or --int8")
    if prec is Precision.INT8 and options.calib_data is None and not options.allow_synthetic:
        raise DataError("--int8 needs calibration data: --calib-data DIR|FILE.npy|digits "
                        "(or --synthetic, which makes accuracy figures meaningless)")
    if prec is Precision.INT8 and _opset(model) < 13:
        raise OnnxFileError(f"'{src}' has opset {_opset(model)}; per-channel Q/DQ needs 13 or newer: "
                            f"re-export with 'nin-export onnx --opset 13' or newer")
    if options.calib_count < 1 or options.eval_count < 1:
        raise NinExportError("--calib-count and --eval-count must be positive")
    meta = read_metadata(model)
    pre = Preprocess.from_metadata(meta)
    dest = Path(output) if output else default_output(src, prec)
    if dest.resolve() == src.resolve():
        raise OutputPathError(f"output '{dest}' would overwrite the input: choose another -o")

    spec = "synthetic" if options.allow_synthetic and options.calib_data is None else (options.calib_data or "digits")
    source = open_source(spec, pre, allow_synthetic=options.allow_synthetic)
    notes: list[str] = []
    if meta.get("weights") == "random-init":
        notes.append("the model has random weights: its logits are nearly flat, so top-1 agreement here "
                     "understates what a trained model keeps; export with --weights for real figures")
    if source.synthetic:
        notes.append("synthetic random data: the agreement figures below say nothing about accuracy on real images")
    calib_idx, eval_idx, sel_notes = _select(source, options.calib_count, options.eval_count, prec is Precision.INT8)
    notes += sel_notes
    say(f"loading {len(eval_idx)} held-out images" + (f" and {len(calib_idx)} calibration images" if len(calib_idx) else "")
        + f" from {source.name}")
    held = _load(source, eval_idx, "held-out")
    notes += held.notes()
    result = QuantizeResult(dest, src, prec, None, notes=notes)  # type: ignore[arg-type]

    if prec is Precision.FP16:
        say("converting to float16" + (" (float32 inputs/outputs kept)" if options.keep_io_types else ""))
        out_model = convert_fp16(model, options.keep_io_types)
    else:
        calib = _load(source, calib_idx, "calibration")
        notes += [n for n in calib.notes() if n not in notes]
        result.calib_images = len(calib.x)
        if len(calib.x) < MIN_CALIB_IMAGES:
            raise DataError(f"too few calibration images: only {len(calib.x)} of {source.name} could be read; "
                            f"INT8 needs at least {MIN_CALIB_IMAGES}")
        _name_nodes(model)
        parts = cache_key(model, calib.x, pre, options.calib_method, source.fingerprint())
        ranges = None
        cache_path = None
        if options.cache_dir is not None:
            cache_dir = Path(options.cache_dir)
            ensure_dir(cache_dir, "calibration cache directory", "choose another with --calib-cache, or pass --no-calib-cache")
            cache_path = cache_dir / f"{meta.get('model', src.stem)}-{options.calib_method.value}-{parts['key'][:16]}.json"
            ranges = _read_cache(cache_path, parts["key"])
            if ranges is not None:
                result.cache = f"reused {cache_path}"
                say(f"reusing calibration cache {cache_path} (key matches)")
        if ranges is None:
            say(f"calibrating ({options.calib_method.value}) on {len(calib.x)} images")
            ranges = calibrate(model, calib.x, options.calib_method)
            if cache_path is not None:
                write_json(cache_path, {"version": CACHE_VERSION, "key": parts["key"], "key_parts": parts,
                                        "model_file": src.name, "source": source.name, "method": options.calib_method.value,
                                        "count": len(calib.x), "ranges": {k: list(v) for k, v in ranges.items()}})
                result.cache = f"wrote {cache_path}"
        exclude = [] if options.quantize_head else head_nodes(model)
        result.excluded_nodes = exclude
        say("inserting Q/DQ (symmetric int8, per-channel weights, float bias)"
            + (f"; {len(exclude)} head nodes kept in float" if exclude else ""))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out_model = quantize_int8(model, ranges, exclude)

    set_metadata(out_model, {"precision": prec.value, "parent_onnx": src.name})
    say(f"checking against {src.name} on {len(held.x)} held-out images")
    ref = _run(src, held.x)
    tol = TOLERANCES[prec]
    with atomic_path(dest, suffix=".onnx") as tmp:
        onnx.save(out_model, os.fspath(tmp))
        load_onnx(tmp, check=True)
        agree = compare([ref], [_run(tmp, held.x)], tol)
        if not agree.passed:
            raise VerificationError(f"{dest.name} disagrees with {src.name}: {agree.describe()} (needs {tol.describe()}); nothing written")
    result.agreement = agree
    ver = agree.to_dict()
    ver["data"] = source.name
    if held.y is not None:
        ver["top1_accuracy_parent"] = float((ref.argmax(1) == held.y).mean())
    record_artifact(dest, kind="onnx-quantized", parent=src, precision=prec.value, options=options.to_dict(), verification=ver,
                    extra={"calibration": {"images": result.calib_images, "cache": result.cache, "source": source.name}
                           if prec is Precision.INT8 else None, "excluded_nodes": result.excluded_nodes, "notes": notes})
    return result
