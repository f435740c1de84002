"""FP16 and INT8 (explicit Q/DQ) ONNX graphs that every TensorRT accepts, checked against FP32.

Precision lives in the graph. FP16: float16 compute, float32 I/O by default. INT8: onnxruntime's
static quantization in QDQ format with the settings TensorRT needs:
symmetric int8 activations and weights (zero points 0), per-channel weights on the output-channel
axis, biases left in float (TensorRT rejects an INT32 bias DequantizeLinear), opset >= 13. The
global average pooling of a NiN and what follows it stay in float unless asked otherwise.

Calibration ranges are cached as JSON under a key of (model graph, calibration inputs,
preprocessing, method, count), and reused only when the key matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from ._io import atomic_path, check_outputs, check_schema, ensure_dir, read_json, write_json
from .data import DEFAULT_DATA, DataError, DataSource, Preprocess, Samples, open_source
from .defaults import (
    DEFAULT_AGREEMENT_FLOOR,
    DEFAULT_CACHE_DIR,
    DEFAULT_CALIB_COUNT,
    DEFAULT_EVAL_COUNT,
    MIN_CALIB_IMAGES,
    RECOMMENDED_CALIB_IMAGES,
)
from .enums import CalibMethod, Precision
from .errors import FileFormatError, NinExportError, OnnxFileError, VerificationError
from .manifest import MANIFEST_NAME, lineage, record_artifact
from .meta import ModelMeta
from .onnx_utils import check_metadata_matches_graph, graph_precision, load_onnx, opset_of, read_metadata, set_metadata, toposort
from .runners.onnxrt import OrtRunner
from .verify import Agreement, Tolerance, compare, tolerance_for

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
    "DEFAULT_CALIB_COUNT",
    "DEFAULT_EVAL_COUNT",
    "load_calibration_cache",
    "DEFAULT_AGREEMENT_FLOOR",
]

CACHE_VERSION = 1


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
    # INT8 with trained weights: the least top-1 agreement with the FP32 parent on held-out images that
    # passes (cosine alone let 50% agreement through). Random weights have near-flat logits: not applied.
    agreement_floor: float = DEFAULT_AGREEMENT_FLOOR

    def to_dict(self) -> dict[str, Any]:
        d = {"precision": str(self.precision), "calib_data": self.calib_data, "eval_count": self.eval_count}
        if self.precision is Precision.FP16:
            d["keep_io_types"] = self.keep_io_types
        else:
            d.update(
                calib_method=self.calib_method.value,
                calib_count=self.calib_count,
                quantize_head=self.quantize_head,
                activation="int8 symmetric per-tensor",
                weight="int8 symmetric per-channel (axis 0)",
                bias="float",
            )
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
    graph: onnx.ModelProto | None = field(default=None, repr=False)  # what was written to ``path``, checked


Progress = Callable[[str], None]


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
        raise DataError(
            f"too few calibration images: {len(calib)} usable in the calibration split of {source.name} "
            f"({len(source)} in all, a fifth held out); INT8 needs at least {MIN_CALIB_IMAGES}, "
            f"{RECOMMENDED_CALIB_IMAGES} recommended"
        )
    if need_calib and len(calib) < RECOMMENDED_CALIB_IMAGES:
        notes.append(
            f"only {len(calib)} calibration images ({RECOMMENDED_CALIB_IMAGES} recommended): "
            f"INT8 ranges may be off; give more images with --calib-count/--calib-data"
        )
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


def cache_key(
    model: onnx.ModelProto, calib_x: np.ndarray, pre: Preprocess, method: CalibMethod, data_fingerprint: str
) -> dict[str, str]:
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


def load_calibration_cache(path: Path, key: str) -> dict[str, tuple[float, float]] | None:
    """The ranges of the cache file at ``path`` if its key is ``key``; None when there is no such file or it
    was made for something else. A file with the wrong structure, or with ranges that are not finite or all
    zero, is refused in one line."""
    if not path.exists():
        return None
    hint = "delete it (it is rebuilt) or pass --no-calib-cache"
    data = read_json(path, "calibration cache", hint)
    check_schema(data, "calibration-cache", f"calibration cache '{path}'", hint)
    if data["key"] != key:
        return None
    ranges = {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
    bad = [k for k, (lo, hi) in ranges.items() if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi]
    if bad:
        raise FileFormatError(f"calibration cache '{path}' has invalid ranges ({bad[0]}: {ranges[bad[0]]}); {hint}")
    if all(lo == hi == 0 for lo, hi in ranges.values()):
        raise FileFormatError(f"calibration cache '{path}' has every range at zero, which would quantize everything to 0; {hint}")
    return ranges


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


def calibrate(model: onnx.ModelProto, x: np.ndarray, method: CalibMethod) -> dict[str, tuple[float, float]]:
    """Run onnxruntime's calibrator over ``x``; return {tensor: (lowest, highest)}."""
    from onnxruntime.quantization.calibrate import create_calibrator

    with tempfile.TemporaryDirectory(prefix="nin-export-calib-") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, os.fspath(src))
        extra = {"percentile": 99.999} if method is CalibMethod.PERCENTILE else {}
        calibrator = create_calibrator(
            src,
            None,
            augmented_model_path=os.fspath(Path(tmp) / "augmented.onnx"),
            calibrate_method=method.ort(),
            extra_options=extra,
        )
        # Equal batches: onnxruntime's histogram calibrators (entropy, percentile) stack the batches'
        # outputs and fail on a ragged last one (300 images in 16s leave 12).
        batch = next(b for b in range(16, 0, -1) if len(x) % b == 0)
        calibrator.collect_data(_Reader(model.graph.input[0].name, x, batch))
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
    tensors = TensorsData(
        CalibrationMethod.MinMax, {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()}
    )
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
        return np.concatenate([next(iter(r.infer({name: xs[i : i + batch]}).values())) for i in range(0, len(xs), batch)])


def _check_request(src: Path, model: onnx.ModelProto, options: QuantizeOptions) -> None:
    """Refuse, in one line, what cannot be quantized (precision is read from the graph once)."""
    graph = graph_precision(model)
    if graph is Precision.INT8:
        raise OnnxFileError(f"'{src}' is already quantized (it has Q/DQ nodes): quantize the FP32 ONNX instead")
    if graph is Precision.FP16:
        raise OnnxFileError(f"'{src}' is already float16: quantize the FP32 ONNX instead")
    prec = options.precision
    if prec is Precision.FP32:
        raise NinExportError("nothing to do for fp32: choose --fp16 or --int8")
    if prec is Precision.INT8 and options.calib_data is None and not options.allow_synthetic:
        raise DataError(
            "--int8 needs calibration data: --calib-data DIR|FILE.npy|digits "
            "(or, with 'nin-export quantize', --synthetic, which makes accuracy figures meaningless)"
        )
    if prec is Precision.INT8 and opset_of(model) < 13:
        raise OnnxFileError(
            f"'{src}' has opset {opset_of(model)}; per-channel Q/DQ needs 13 or newer: "
            f"re-export with 'nin-export onnx --opset 13' or newer"
        )
    if options.calib_count < 1 or options.eval_count < 1:
        raise NinExportError("--calib-count and --eval-count must be positive")
    if not 0.0 <= options.agreement_floor <= 1.0:
        raise NinExportError(f"--agreement-floor must be in [0, 1], got {options.agreement_floor}")


def _ranges(
    model: onnx.ModelProto,
    src: Path,
    calib: Samples,
    pre: Preprocess,
    source: DataSource,
    meta: ModelMeta,
    options: QuantizeOptions,
    result: QuantizeResult,
    say: Progress,
) -> dict[str, tuple[float, float]]:
    """Calibration ranges: from the cache when its key matches, else computed (and cached)."""
    parts = cache_key(model, calib.x, pre, options.calib_method, source.fingerprint())
    cache_path = None
    if options.cache_dir is not None:
        cache_dir = ensure_dir(
            options.cache_dir, "calibration cache directory", "choose another with --calib-cache, or pass --no-calib-cache"
        )
        cache_path = cache_dir / f"{meta.model or src.stem}-{options.calib_method.value}-{parts['key'][:16]}.json"
        ranges = load_calibration_cache(cache_path, parts["key"])
        if ranges is not None:
            result.cache = f"reused {cache_path}"
            say(f"reusing calibration cache {cache_path} (key matches)")
            return ranges
    say(f"calibrating ({options.calib_method.value}) on {len(calib.x)} images")
    ranges = calibrate(model, calib.x, options.calib_method)
    if cache_path is not None:
        write_json(
            cache_path,
            {
                "version": CACHE_VERSION,
                "key": parts["key"],
                "key_parts": parts,
                "model_file": src.name,
                "source": source.name,
                "method": options.calib_method.value,
                "count": len(calib.x),
                "ranges": {k: list(v) for k, v in ranges.items()},
            },
        )
        result.cache = f"wrote {cache_path}"
    return ranges


def _int8_graph(
    model: onnx.ModelProto,
    src: Path,
    source: DataSource,
    calib_idx: np.ndarray,
    pre: Preprocess,
    meta: ModelMeta,
    options: QuantizeOptions,
    result: QuantizeResult,
    say: Progress,
) -> onnx.ModelProto:
    calib = _load(source, calib_idx, "calibration")
    result.notes += [n for n in calib.notes() if n not in result.notes]
    result.calib_images = len(calib.x)
    if len(calib.x) < MIN_CALIB_IMAGES:
        raise DataError(
            f"too few calibration images: only {len(calib.x)} of {source.name} could be read; "
            f"INT8 needs at least {MIN_CALIB_IMAGES}"
        )
    model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's graph stays as it was
    _name_nodes(model)
    ranges = _ranges(model, src, calib, pre, source, meta, options, result, say)
    exclude = [] if options.quantize_head else head_nodes(model)
    result.excluded_nodes = exclude
    say(
        "inserting Q/DQ (symmetric int8, per-channel weights, float bias)"
        + (f"; {len(exclude)} head nodes kept in float" if exclude else "")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_int8(model, ranges, exclude)


def _tolerance(prec: Precision, options: QuantizeOptions, meta: ModelMeta, synthetic: bool) -> Tolerance:
    tol = tolerance_for(prec)
    if prec is Precision.INT8 and meta.weights != "random-init" and not synthetic:
        tol = dataclasses.replace(tol, min_top1=options.agreement_floor)
    return tol


def _write_checked(
    out_model: onnx.ModelProto, src: Path, dest: Path, held: Samples, tol: Tolerance, say: Progress
) -> tuple[Agreement, np.ndarray]:
    """Write ``out_model`` to ``dest`` only once it agrees with ``src`` on the held-out images."""
    say(f"checking against {src.name} on {len(held.x)} held-out images")
    ref = _run(src, held.x)
    with atomic_path(dest, suffix=".onnx") as tmp:
        onnx.save(out_model, os.fspath(tmp))
        load_onnx(tmp, check=True)
        agree = compare([ref], [_run(tmp, held.x)], tol)
        if not agree.passed:
            fix = (
                "; more calibration images (--calib-count), another --calib-method, or --no-calib-cache if a cached range "
                "is damaged, may help"
                if tol.min_top1
                else ""
            )
            raise VerificationError(
                f"{dest.name} disagrees with {src.name}: {agree.describe()} (needs {tol.describe()}); nothing written{fix}"
            )
    return agree, ref


def quantize(
    src: str | os.PathLike,
    options: QuantizeOptions,
    output: str | os.PathLike | None = None,
    progress: Progress | None = None,
    model: onnx.ModelProto | None = None,
) -> QuantizeResult:
    """Make ``src``'s FP16 or INT8 twin, check it against ``src`` on held-out real inputs, record it.
    ``model`` is the already loaded graph of ``src``, if the caller has it."""
    say = progress or (lambda _m: None)
    src = Path(src)
    model = model if model is not None else load_onnx(src)
    _check_request(src, model, options)
    prec = options.precision
    meta = ModelMeta.from_dict(read_metadata(model), f"ONNX metadata of '{src}'")
    check_metadata_matches_graph(meta, model, src)
    pre = meta.preprocess()
    dest = Path(output) if output else default_output(src, prec)
    check_outputs([dest, dest.parent / MANIFEST_NAME], lineage(src))
    spec = "synthetic" if options.allow_synthetic and options.calib_data is None else (options.calib_data or DEFAULT_DATA)
    source = open_source(spec, pre, allow_synthetic=options.allow_synthetic)
    result = QuantizeResult(dest, src, prec, None)  # type: ignore[arg-type]
    if meta.weights == "random-init":
        result.notes.append(
            "the model has random weights: its logits are nearly flat, so top-1 agreement here "
            "understates what a trained model keeps; export with --weights for real figures"
        )
    if source.synthetic:
        result.notes.append("synthetic random data: the agreement figures below say nothing about accuracy on real images")
    calib_idx, eval_idx, sel_notes = _select(source, options.calib_count, options.eval_count, prec is Precision.INT8)
    result.notes += sel_notes
    say(
        f"loading {len(eval_idx)} held-out images"
        + (f" and {len(calib_idx)} calibration images" if len(calib_idx) else "")
        + f" from {source.name}"
    )
    held = _load(source, eval_idx, "held-out")
    result.notes += held.notes()
    if prec is Precision.FP16:
        say("converting to float16" + (" (float32 inputs/outputs kept)" if options.keep_io_types else ""))
        out_model = convert_fp16(model, options.keep_io_types)
    else:
        out_model = _int8_graph(model, src, source, calib_idx, pre, meta, options, result, say)
    set_metadata(out_model, {"precision": prec.value, "parent_onnx": src.name})
    result.graph = out_model
    result.agreement, ref = _write_checked(out_model, src, dest, held, _tolerance(prec, options, meta, source.synthetic), say)
    ver = dict(result.agreement.to_dict(), data=source.name)
    if held.y is not None:
        ver["top1_accuracy_parent"] = float((ref.argmax(1) == held.y).mean())
    calibration = {"images": result.calib_images, "cache": result.cache, "source": source.name} if prec is Precision.INT8 else None
    record_artifact(
        dest,
        kind="onnx-quantized",
        parent=src,
        precision=prec.value,
        options=options.to_dict(),
        verification=ver,
        extra={"calibration": calibration, "excluded_nodes": result.excluded_nodes, "notes": result.notes},
    )
    return result
