"""FP16 and INT8 (explicit Q/DQ) ONNX graphs that every TensorRT accepts, checked against FP32.

Precision lives in the graph. FP16: float16 compute, float32 I/O by default. INT8: symmetric int8
activations and weights (zero points 0), per-channel weights on the output-channel axis stored as int8,
biases left in float (TensorRT rejects an INT32 bias DequantizeLinear), opset >= 13, and Q/DQ on the
inputs of Conv/Gemm/MatMul only, as TensorRT's rules and NVIDIA ModelOpt place it (see qdq.py). The
global average pooling of a NiN and what follows it stay in float unless asked otherwise; so do layers
named with ``exclude``, and, with ``min_agreement``, the most sensitive layers until the held-out top-1
agreement with FP32 reaches it (see sensitivity.py).

Calibration ranges are cached as JSON under a key of (model graph, calibration inputs,
preprocessing, method, count), and reused only when the key matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from ..core._io import atomic_path, check_outputs, check_schema, ensure_dir, read_json, write_json
from ..core.data import DEFAULT_DATA, DataError, DataSource, Preprocess, Samples, open_source
from ..core.defaults import (
    DEFAULT_AGREEMENT_FLOOR,
    DEFAULT_CACHE_DIR,
    DEFAULT_CALIB_COUNT,
    DEFAULT_EVAL_COUNT,
    MIN_CALIB_IMAGES,
    RECOMMENDED_CALIB_IMAGES,
)
from ..core.enums import CalibMethod, Int8Target, Precision, Quantizer
from ..core.errors import FileFormatError, NinExportError, OnnxFileError, VerificationError
from ..core.manifest import MANIFEST_NAME, check_manifest, lineage, record_artifact
from ..core.meta import ModelMeta
from ..core.onnx_utils import (
    check_metadata_matches_graph,
    graph_precision,
    load_onnx,
    opset_of,
    read_metadata,
    set_metadata,
    toposort,
)
from ..core.precision import precision_info
from ..core.verify import Agreement, Tolerance, compare, tolerance_for
from ..runners.onnxrt import OrtRunner
from .qdq import (
    HISTOGRAM_OPTIONS,
    calibrate,
    check_modelopt_method,
    float16_remainder,
    head_nodes,
    match_nodes,
    modelopt_int8,
    name_nodes,
    quantizable_nodes,
    quantize_int8,
)
from .sensitivity import Sensitivity, fidelity, keep_float_until, rank_layers, share

__all__ = [
    "CalibMethod",
    "QuantizeOptions",
    "quantize_options",
    "QuantizeResult",
    "quantize",
    "convert_fp16",
    "quantize_int8",
    "analyze",
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
    precision: Precision = Precision.INT8  # a default so that a settings file's [quantize] can be this type
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
    target: Int8Target = Int8Target.TENSORRT  # INT8: Q/DQ placement and integer types
    quantizer: Quantizer = Quantizer.ORT
    exclude: list[str] = field(default_factory=list)  # INT8: node names or globs kept in float
    min_agreement: float | None = None  # INT8: keep the most sensitive layers in float until this is reached
    # INT8: the layers left in float (head, excluded, fallback) in FP16 or FP32; None: FP16 for TensorRT, FP32 for ort-cpu
    float_dtype: Precision | None = None

    def remainder(self) -> Precision:
        """The precision of what an INT8 graph leaves in float."""
        if self.float_dtype is not None:
            return self.float_dtype
        return Precision.FP32 if self.target is Int8Target.ORT_CPU else Precision.FP16

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"precision": str(self.precision), "calib_data": self.calib_data, "eval_count": self.eval_count}
        if self.precision is Precision.FP16:
            d["keep_io_types"] = self.keep_io_types
        else:
            ort_cpu = self.target is Int8Target.ORT_CPU
            d.update(
                calib_method=self.calib_method.value,
                calib_count=self.calib_count,
                quantize_head=self.quantize_head,
                target=self.target.value,
                quantizer=self.quantizer.value,
                exclude=list(self.exclude),
                min_agreement=self.min_agreement,
                float_dtype=self.remainder().value,
                placement="every op onnxruntime quantizes" if ort_cpu else "inputs of Conv/Gemm/MatMul",
                activation="uint8 asymmetric per-tensor" if ort_cpu else "int8 symmetric per-tensor",
                weight="int8 symmetric per-channel (axis 0)",
                bias="int32" if ort_cpu else "float",
            )
        return d


def quantize_options(
    precision: Precision,
    *,
    calib_data: str | None = None,
    calib_method: str = CalibMethod.MINMAX.value,
    calib_count: int = DEFAULT_CALIB_COUNT,
    eval_count: int = DEFAULT_EVAL_COUNT,
    calib_cache: str | None = None,
    no_calib_cache: bool = False,
    quantize_head: bool = False,
    agreement_floor: float = DEFAULT_AGREEMENT_FLOOR,
    exclude: Sequence[str] = (),
    min_agreement: float | None = None,
    quantizer: str = Quantizer.ORT.value,
    float_dtype: str | None = None,
    int8_target: str = Int8Target.TENSORRT.value,
    keep_io_types: bool = True,
    synthetic: bool = False,
) -> QuantizeOptions:
    """QuantizeOptions from the values a user types (the CLI's options, by name): enums by value, a cache
    directory (``calib_cache``, default DEFAULT_CACHE_DIR) unless ``no_calib_cache``; both is refused."""
    if no_calib_cache and calib_cache:
        raise NinExportError("--calib-cache and --no-calib-cache contradict each other: pass one")
    return QuantizeOptions(
        precision,
        keep_io_types=keep_io_types,
        calib_data=calib_data,
        calib_method=CalibMethod(calib_method),
        calib_count=calib_count,
        eval_count=eval_count,
        allow_synthetic=synthetic,
        quantize_head=quantize_head,
        agreement_floor=agreement_floor,
        cache_dir=None if no_calib_cache else (calib_cache or DEFAULT_CACHE_DIR),
        exclude=list(exclude),
        min_agreement=min_agreement,
        quantizer=Quantizer(quantizer),
        float_dtype=Precision(float_dtype) if float_dtype else None,
        target=Int8Target(int8_target),
    )


@dataclass
class QuantizeResult:
    path: Path
    parent: Path
    precision: Precision
    agreement: Agreement
    graph: onnx.ModelProto = field(repr=False)  # what was written to ``path``, checked
    calib_images: int = 0
    cache: str | None = None  # "reused <path>" / "wrote <path>" / None
    notes: list[str] = field(default_factory=list)  # warnings for the user
    excluded_nodes: list[str] = field(default_factory=list)  # every node left in float (head included)
    float_layers: list[dict[str, str]] = field(default_factory=list)  # Conv/Gemm kept in float, and why
    selection: dict[str, Any] | None = None  # --min-agreement: its figures on the held-out half it chose on


@dataclass
class _Findings:
    """What a request learns on its way, before there is a graph to check: QuantizeResult's records."""

    calib_images: int = 0
    cache: str | None = None
    notes: list[str] = field(default_factory=list)
    excluded_nodes: list[str] = field(default_factory=list)
    float_layers: list[dict[str, str]] = field(default_factory=list)
    selection: dict[str, Any] | None = None


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
    if need_calib and len(calib) < MIN_CALIB_IMAGES:  # --calib-count itself was checked before: the data is short
        raise DataError(
            f"too few calibration images: {len(calib)} usable in the calibration split of {source.name} "
            f"({len(source)} in all, a fifth held out); INT8 needs at least {MIN_CALIB_IMAGES}, "
            f"{RECOMMENDED_CALIB_IMAGES} recommended"
        )
    if need_calib and calib_count > len(train):  # one warning, with the recommendation when it applies
        short = (
            f" ({RECOMMENDED_CALIB_IMAGES} recommended: INT8 ranges may be off)" if len(train) < RECOMMENDED_CALIB_IMAGES else ""
        )
        notes.append(
            f"--calib-count {calib_count:,} is more than the {len(train):,} images in the calibration split of "
            f"{source.name}: calibrating on {len(train):,}{short}"
        )
    elif need_calib and len(calib) < RECOMMENDED_CALIB_IMAGES:
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
    if HISTOGRAM_OPTIONS.get(method):  # entropy before its 2048-bin histogram equalled minmax: not reused
        parts["histogram"] = json.dumps(HISTOGRAM_OPTIONS[method], sort_keys=True)
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


# --- the step ------------------------------------------------------------------------------------


def _run(path_or_bytes, xs: np.ndarray, batch: int = 32) -> np.ndarray:
    with OrtRunner(path_or_bytes) as r:
        return r.infer_batches(xs, batch)


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
    if prec is Precision.INT8 and options.calib_count < MIN_CALIB_IMAGES:
        raise DataError(
            f"too few calibration images: --calib-count {options.calib_count} asks for {options.calib_count}; INT8 needs "
            f"at least {MIN_CALIB_IMAGES} ({RECOMMENDED_CALIB_IMAGES} recommended)"
        )
    _check_int8_controls(options)


def _check_int8_controls(options: QuantizeOptions) -> None:
    for name, v in (("--agreement-floor", options.agreement_floor), ("--min-agreement", options.min_agreement)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise NinExportError(f"{name} must be in [0, 1], got {v}")
    if options.precision is not Precision.INT8:
        flags = (("--exclude", options.exclude), ("--min-agreement", options.min_agreement is not None))
        used = [n for n, on in (*flags, ("--float-dtype", options.float_dtype)) if on]
        if used or options.quantizer is not Quantizer.ORT or options.target is not Int8Target.TENSORRT:
            raise NinExportError(f"{', '.join(used) or '--quantizer/--int8-target'} applies to --int8 only")
    if options.float_dtype not in (None, Precision.FP16, Precision.FP32):
        raise NinExportError(f"--float-dtype is fp16 or fp32, not {options.float_dtype}")
    if options.target is Int8Target.ORT_CPU and options.float_dtype is Precision.FP16:
        raise NinExportError(
            "--float-dtype fp16 is for TensorRT graphs: onnxruntime's CPU kernels run float32 (drop it with --int8-target ort-cpu)"
        )
    if options.min_agreement is not None and options.eval_count < 2:
        raise NinExportError(
            "--min-agreement chooses on one half of the held-out images and reports on the other: --eval-count must be at least 2"
        )
    if options.quantizer is Quantizer.MODELOPT:
        if options.target is not Int8Target.TENSORRT:
            raise NinExportError("--quantizer modelopt makes TensorRT graphs only: drop --int8-target ort-cpu")
        check_modelopt_method(options.calib_method)


def _ranges(
    model: onnx.ModelProto,
    src: Path,
    calib: Samples,
    pre: Preprocess,
    source: DataSource,
    meta: ModelMeta,
    options: QuantizeOptions,
    found: _Findings,
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
            found.cache = f"reused {cache_path}"
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
        found.cache = f"wrote {cache_path}"
    return ranges


def held_out_halves(n: int) -> tuple[slice, slice]:
    """--min-agreement's two parts of ``n`` held-out images: it chooses its float layers on the first
    (n // 2) and every reported figure comes from the second, which it never saw."""
    return slice(0, n // 2), slice(n // 2, n)


def _part(s: Samples, part: slice) -> Samples:
    return Samples(s.x[part], None if s.y is None else s.y[part])


@dataclass
class _Job:
    """One quantization request, loaded: the parent graph, its metadata, the data and the held-out
    reference logits every check compares with. With --min-agreement, ``choose`` is the half of the
    held-out images layers are chosen on, and ``held`` the other half, which reports."""

    src: Path
    model: onnx.ModelProto
    meta: ModelMeta
    pre: Preprocess
    source: DataSource
    options: QuantizeOptions
    found: _Findings
    held: Samples
    calib_idx: np.ndarray
    say: Progress
    choose: Samples | None = None
    _refs: dict[str, np.ndarray] = field(default_factory=dict)

    def _ref_of(self, part: str) -> np.ndarray:
        if part not in self._refs:
            self._refs[part] = _run(self.src, (self.held if part == "held" else self.chosen).x)
        return self._refs[part]

    @property
    def chosen(self) -> Samples:
        """``choose``, where --min-agreement loaded it."""
        if self.choose is None:
            raise RuntimeError("no held-out half to choose on: --min-agreement was not given for an INT8 graph")
        return self.choose

    @property
    def ref(self) -> np.ndarray:
        return self._ref_of("held")

    @property
    def choose_ref(self) -> np.ndarray:
        return self._ref_of("choose")

    def run(self, graph: onnx.ModelProto) -> np.ndarray:
        return _run(graph.SerializeToString(), self.held.x)

    def run_choose(self, graph: onnx.ModelProto) -> np.ndarray:
        return _run(graph.SerializeToString(), self.chosen.x)


def _prepare(src: Path, model: onnx.ModelProto, options: QuantizeOptions, dest: Path | None, say: Progress) -> _Job:
    """Check the request and the outputs, open the data, load the held-out images."""
    _check_request(src, model, options)
    prec = options.precision
    meta = ModelMeta.from_dict(read_metadata(model), f"ONNX metadata of '{src}'")
    check_metadata_matches_graph(meta, model, src)
    pre = meta.preprocess()
    if options.exclude:  # a pattern that matches nothing, or everything, is refused before any work
        if len(match_nodes(model, options.exclude)) >= len(quantizable_nodes(model)):
            raise NinExportError(
                f"--exclude {' '.join(options.exclude)} keeps every Conv/Gemm layer in float: nothing is left to "
                f"quantize; exclude fewer layers (or use --fp16)"
            )
    if dest is not None:
        check_outputs([dest, dest.parent / MANIFEST_NAME], lineage(src))
        check_manifest(dest.parent)
    spec = "synthetic" if options.allow_synthetic and options.calib_data is None else (options.calib_data or DEFAULT_DATA)
    source = open_source(spec, pre, allow_synthetic=options.allow_synthetic)
    found = _Findings()
    if meta.weights == "random-init":
        found.notes.append(
            "the model has random weights: its logits are nearly flat, so top-1 agreement here "
            "understates what a trained model keeps; export with --weights for real figures"
        )
    if source.synthetic:
        found.notes.append("synthetic random data: the agreement figures below say nothing about accuracy on real images")
    calib_idx, eval_idx, sel_notes = _select(source, options.calib_count, options.eval_count, prec is Precision.INT8)
    found.notes += sel_notes
    say(
        f"loading {len(eval_idx)} held-out images"
        + (f" and {len(calib_idx)} calibration images" if len(calib_idx) else "")
        + f" from {source.name}"
    )
    held = _load(source, eval_idx, "held-out")
    found.notes += held.notes()
    choose = None
    if options.min_agreement is not None and prec is Precision.INT8:
        if len(held.x) < 2:
            raise DataError(f"--min-agreement needs at least 2 readable held-out images in {source.name}, found {len(held.x)}")
        first, second = held_out_halves(len(held.x))
        choose, held = _part(held, first), _part(held, second)
    return _Job(src, model, meta, pre, source, options, found, held, calib_idx, say, choose)


@dataclass
class _Int8Plan:
    """What every INT8 graph of one request shares: the named parent, its calibration, the head."""

    job: _Job
    model: onnx.ModelProto
    calib: Samples
    head: list[str]
    _ranges: dict[str, tuple[float, float]] | None = None

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        if self._ranges is None:
            j = self.job
            self._ranges = _ranges(self.model, j.src, self.calib, j.pre, j.source, j.meta, j.options, j.found, j.say)
        return self._ranges

    def graph(self, float_layers: list[str]) -> onnx.ModelProto:
        """Every quantizable node in INT8 but the head and ``float_layers``; what stays float in the
        precision --float-dtype says (FP16 needs opset 19: float16 Q/DQ scales)."""
        o = self.job.options
        fp16 = o.remainder() is Precision.FP16
        if o.quantizer is Quantizer.MODELOPT:
            self.job.say("quantizing with NVIDIA ModelOpt (it calibrates by itself)")
            return modelopt_int8(self.model, self.calib.x, o.calib_method, self.head + float_layers, fp16)
        graph = quantize_int8(self.model, self.ranges, self.head + float_layers, o.target)
        return float16_remainder(graph) if fp16 else graph

    def only(self, node: str) -> onnx.ModelProto:
        """``node`` alone in INT8 (TensorRT placement: the layer's own inputs)."""
        return quantize_int8(self.model, self.ranges, self.head, Int8Target.TENSORRT, only=[node])

    def quantizable(self) -> list[onnx.NodeProto]:
        return quantizable_nodes(self.model, skip=self.head)


def _plan(job: _Job) -> _Int8Plan:
    calib = _load(job.source, job.calib_idx, "calibration")
    r = job.found
    r.notes += [n for n in calib.notes() if n not in r.notes]
    r.calib_images = len(calib.x)
    if len(calib.x) < MIN_CALIB_IMAGES:
        raise DataError(
            f"too few calibration images: only {len(calib.x)} of {job.source.name} could be read; "
            f"INT8 needs at least {MIN_CALIB_IMAGES}"
        )
    model = onnx.ModelProto.FromString(job.model.SerializeToString())  # the caller's graph stays as it was
    name_nodes(model)
    # onnxruntime's CPU layout quantizes the head too: a float GAP leaves the last conv unfused, and slower
    quantize_head = job.options.quantize_head or job.options.target is Int8Target.ORT_CPU
    return _Int8Plan(job, model, calib, [] if quantize_head else head_nodes(model))


def fp16_graph(job: _Job) -> onnx.ModelProto:
    """The precision table's FP16 converter: float16 compute, float32 I/O unless told otherwise."""
    keep = job.options.keep_io_types
    job.say("converting to float16" + (" (float32 inputs/outputs kept)" if keep else ""))
    return convert_fp16(job.model, keep)


def int8_graph(job: _Job) -> onnx.ModelProto:
    """The INT8 graph: every quantizable layer but the head, --exclude's and what --min-agreement keeps float."""
    plan, o, say = _plan(job), job.options, job.say
    chosen = match_nodes(plan.model, o.exclude)
    floats = {n: f"--exclude {' '.join(o.exclude)}" for n in chosen if n not in plan.head}
    say(
        f"inserting Q/DQ ({o.quantizer.value}, {o.target.value} placement, per-channel weights)"
        + (f"; {len(plan.head)} head nodes" if plan.head else "")
        + (f"; {len(floats)} excluded layer(s)" if floats else "")
        + (f" kept in float ({o.remainder().value})" if plan.head or floats else "")
    )
    graph = plan.graph(list(floats))
    if o.min_agreement is not None:
        graph = _keep_float_for(job, plan, graph, floats, o.min_agreement)
    ops = {n.name: n.op_type for n in plan.model.graph.node}
    job.found.float_layers = [{"node": n, "op": ops[n], "why": why} for n, why in floats.items()]
    job.found.excluded_nodes = plan.head + list(floats)
    return graph


# The converters the precision table names (core.precision: PrecisionInfo.converter), by name
CONVERTERS: dict[str, Callable[[_Job], onnx.ModelProto]] = {f.__name__: f for f in (fp16_graph, int8_graph)}


def _keep_float_for(job: _Job, plan: _Int8Plan, graph: onnx.ModelProto, floats: dict[str, str], target: float) -> onnx.ModelProto:
    """--min-agreement (``target``): on the choosing half of the held-out images, keep the most sensitive layers
    in float until the agreement reaches the target (adds them to ``floats``); the graph, and its figures on that
    half in job.found.selection."""
    say, run, ref = job.say, job.run_choose, job.choose_ref
    n = len(job.chosen.x)
    agree = fidelity(ref, run(graph))["top1_agreement"]
    say(
        f"choosing on {n} of the held-out images (the other {len(job.held.x)} report): top-1 agreement with every "
        f"other layer in INT8 {agree:.1%} (--min-agreement {share(target)})"
    )
    if agree < target:
        todo = [x for x in plan.quantizable() if x.name not in floats]
        ranking = rank_layers(plan.model, todo, plan.only, run, ref, say)
        kept, graph, agree = keep_float_until(target, ranking, lambda ks: plan.graph(list(floats) + ks), run, ref, say)
        floats.update({k: f"--min-agreement {target:g}" for k in kept})
    f = fidelity(ref, run(graph), job.chosen.y)
    job.found.selection = {
        "images": n,
        "top1_agreement": f["top1_agreement"],
        "top1_accuracy": f["top1_accuracy"],
        "note": f"--min-agreement chose its float layers on these {n} held-out images; the verification figures are on "
        f"the other {len(job.held.x)}, which it never saw",
    }
    return graph


def _tolerance(prec: Precision, options: QuantizeOptions, meta: ModelMeta, synthetic: bool) -> Tolerance:
    tol = tolerance_for(prec)
    if prec is Precision.INT8 and meta.weights != "random-init" and not synthetic:
        tol = dataclasses.replace(tol, min_top1=options.agreement_floor)
    return tol


def _write_checked(out_model: onnx.ModelProto, job: _Job, dest: Path, tol: Tolerance) -> tuple[Agreement, np.ndarray]:
    """Write ``out_model`` to ``dest`` only once it agrees with the parent on the held-out images;
    the agreement, and the written graph's outputs on those images."""
    src = job.src
    job.say(f"checking against {src.name} on {len(job.held.x)} held-out images")
    ref = job.ref
    with atomic_path(dest, suffix=".onnx") as tmp:
        onnx.save(out_model, os.fspath(tmp))
        load_onnx(tmp, check=True)
        out = _run(tmp, job.held.x)
        agree = compare([ref], [out], tol)
        if not agree.passed:
            fix = (
                f"; keep the most sensitive layers in float with --min-agreement {tol.min_top1:g} (or --exclude LAYER; "
                f"'nin-export sensitivity' ranks them), or try more calibration images (--calib-count), another "
                f"--calib-method, or --no-calib-cache if a cached range is damaged"
                if tol.min_top1
                else ""
            )
            raise VerificationError(
                f"{dest.name} disagrees with {src.name}: {agree.describe()} (needs {tol.describe()}); nothing written{fix}"
            )
    return agree, out


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
    prec = options.precision
    dest = Path(output) if output else default_output(src, prec)
    job = _prepare(src, model, options, dest, say)
    out_model = CONVERTERS[precision_info(prec).converter or ""](job)
    set_metadata(out_model, {"precision": prec.value, "parent_onnx": src.name})
    if prec is Precision.INT8:
        set_metadata(out_model, {"int8_target": options.target.value, "quantizer": options.quantizer.value})
    agreement, out = _write_checked(out_model, job, dest, _tolerance(prec, options, job.meta, job.source.synthetic))
    f = job.found
    result = QuantizeResult(
        dest, src, prec, agreement, out_model, f.calib_images, f.cache, f.notes, f.excluded_nodes, f.float_layers, f.selection
    )
    ver = dict(result.agreement.to_dict(), data=job.source.name)
    if job.held.y is not None:
        ver["top1_accuracy_parent"] = float((job.ref.argmax(1) == job.held.y).mean())
        ver["top1_accuracy"] = float((out.argmax(1) == job.held.y).mean())
    if result.selection is not None:
        ver["selection"] = result.selection
        if options.min_agreement is not None:  # always, where a selection was made
            _note_unseen(result, result.selection, options.min_agreement)
    int8 = prec is Precision.INT8
    calibration = {"images": result.calib_images, "cache": result.cache, "source": job.source.name} if int8 else None
    recorded = options.to_dict()
    if int8 and result.calib_images != options.calib_count:  # the manifest records what was used
        recorded.update(calib_count=result.calib_images, calib_count_requested=options.calib_count)
    record_artifact(
        result.path,
        kind="onnx-quantized",
        parent=src,
        precision=prec.value,
        options=recorded,
        verification=ver,
        extra={
            "calibration": calibration,
            "excluded_nodes": result.excluded_nodes,
            "float_layers": result.float_layers,
            "notes": result.notes,
        },
    )
    return result


def _note_unseen(result: QuantizeResult, selection: dict[str, Any], target: float) -> None:
    """Say so when the graph --min-agreement chose falls short of its target on the images it never saw."""
    a = result.agreement
    if a.top1_agreement < target:
        result.notes.append(
            f"--min-agreement {share(target)} was reached on the {selection['images']} held-out images it chose "
            f"on ({selection['top1_agreement']:.1%}); on the other {a.n_samples}, which it never saw, the graph "
            f"keeps {a.top1_agreement:.1%}"
        )


def analyze(src: str | os.PathLike, options: QuantizeOptions, progress: Progress | None = None) -> Sensitivity:
    """Per-layer INT8 sensitivity of the FP32 graph ``src``: each quantizable layer alone in INT8,
    compared with FP32 on held-out images; most sensitive first (see sensitivity.py)."""
    say = progress or (lambda _m: None)
    src = Path(src)
    options = dataclasses.replace(options, precision=Precision.INT8, float_dtype=Precision.FP32)  # INT8's cost alone
    job = _prepare(src, load_onnx(src), options, None, say)
    plan = _plan(job)
    plan.ranges  # noqa: B018 (calibrate, or read the cache, before the first graph)
    say("every layer in INT8")
    full = fidelity(job.ref, job.run(plan.graph([])), job.held.y)
    layers = rank_layers(plan.model, plan.quantizable(), plan.only, job.run, job.ref, say)
    return Sensitivity(
        model=job.meta.model or src.stem,
        source=src.name,
        calib_method=options.calib_method.value,
        calib_images=job.found.calib_images,
        eval_images=len(job.held.x),
        data=job.source.name,
        full_int8=full,
        fp32_accuracy=None if job.held.y is None else float((job.ref.argmax(1) == job.held.y).mean()),
        layers=layers,
    )
