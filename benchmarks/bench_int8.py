"""INT8 side by side: Q/DQ placements and quantizers, calibration methods, TensorRT-RTX engine sizes and
onnxruntime CPU latency, on trained checkpoints, in one run on one machine.

    python benchmarks/bench_int8.py --checkpoints DIR      # DIR/<model>.pt for every model in --models
    # writes benchmarks/results/<machine>/int8_comparison.json and .md
    python benchmarks/bench_int8.py --checkpoints DIR --variants fp32,fp16,tensorrt --no-latency \
        -o benchmarks/results/<machine>/int8_calibration.json   # calibration and mixed precision only

Variants of each model (one FP32 ONNX exported from its checkpoint, the same calibration images):
  v0.1           onnxruntime's default op list, int8 symmetric: Q/DQ after every Conv and ReLU (the old default)
  tensorrt       nin-export's default: Q/DQ on the inputs of Conv/Gemm only (TensorRT's rules)
  modelopt       NVIDIA ModelOpt's ONNX PTQ (modelopt.onnx.quantization, int8, float parts float32)
  ort-cpu        nin-export --int8-target ort-cpu: uint8 activations, every op onnxruntime quantizes
  ort-static     onnxruntime.quantization.quantize_static, QDQ, U8 activations, S8 per-channel weights
Every figure is on the unseen half of the held-out digits (the second half of the test split, which
--min-agreement never chooses on): top-1 agreement, accuracy, logit SQNR. The TensorRT-ready graphs
(what INT8 leaves in float in FP16, the default) are built into TensorRT-RTX engines (default targets),
next to FP16 and FP32; every graph is timed on onnxruntime's CPU provider at batch 1. Then every
calibration method with the default placement (and ModelOpt's two), onnxruntime's signed entropy search
(nin-export's entropy before TensorRT's) beside them, and per-tensor amax: minmax, onnxruntime's signed
entropy, TensorRT's entropy (nin-export's), ModelOpt's entropy. Last, on nin-imagenet, mixed precision:
--min-agreement's choice (chosen on one half, reported on the other) and the most sensitive layers kept in
float, their engines with the float layers in FP16 and in FP32.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from nin_export.core.data import open_source
from nin_export.core.enums import CalibMethod, Int8Target, Precision, Quantizer
from nin_export.core.envinfo import environment, machine_name
from nin_export.core.meta import ModelMeta
from nin_export.core.onnx_utils import read_metadata, set_metadata
from nin_export.export.exporter import export_model
from nin_export.models import build_model
from nin_export.quantize.ptq import QuantizeOptions, analyze, held_out_halves, quantize
from nin_export.quantize.qdq import calibrate, float16_remainder, head_nodes, name_nodes, ort_settings, quantize_int8
from nin_export.quantize.sensitivity import fidelity
from nin_export.runners import OrtRunner
from nin_export.runners.timing import TimingOptions, measure

SCHEMA = "nin-export/int8-comparison/2"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _v01_graph(src: Path, calib_x: np.ndarray, dst: Path) -> Path:
    """The 0.1 placement: onnxruntime's full op list with the TensorRT integer settings."""
    model = onnx.load(str(src))
    name_nodes(model)
    ranges = calibrate(model, calib_x, CalibMethod.MINMAX)
    out = quantize_int8(model, ranges, head_nodes(model), settings=ort_settings(Int8Target.TENSORRT, every_op=True))
    set_metadata(out, {"precision": "int8"})
    onnx.save(out, str(dst))
    return dst


def _ort_signed_entropy(model: onnx.ModelProto, calib_x: np.ndarray) -> dict[str, tuple[float, float]]:
    """nin-export's entropy before this round: onnxruntime's EntropyCalibrater, 2048 bins, 128 quantized bins,
    searching a signed histogram symmetrically around zero."""
    import contextlib
    import io
    import os

    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    from nin_export.quantize.qdq import _equal_batch, _Reader

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "m.onnx")
        onnx.save(model, src)
        cal = create_calibrator(
            src, None, augmented_model_path=os.path.join(tmp, "a.onnx"), calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": 2048, "num_quantized_bins": 128},
        )  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            cal.collect_data(_Reader(model.graph.input[0].name, calib_x, _equal_batch(len(calib_x))))
            data = cal.compute_data()
    return {k: (float(np.min(td.range_value[0])), float(np.max(td.range_value[1]))) for k, td in data.data.items()}


def _activation_amax(path: Path) -> dict[str, float]:
    """{tensor: amax} of a Q/DQ graph's activation QuantizeLinear nodes (scale x 127), by the float tensor
    they quantize (through the float16 graph's input Cast)."""
    m = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    prod = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for n in m.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits:
            continue
        name = n.input[0]
        if name in prod and prod[name].op_type == "Cast":
            name = prod[name].input[0]
        out[name] = float(np.asarray(inits[n.input[1]], np.float64).max()) * 127
    return out


def _amax_table(m: onnx.ModelProto, calib_x: np.ndarray, modelopt_entropy: Path, cache: Path) -> dict:
    """Per activation quantized by TensorRT's placement: amax by minmax, onnxruntime's signed entropy,
    TensorRT's entropy (nin-export's; minmax's and its ranges read back from the calibration cache) and
    ModelOpt's entropy."""

    def cached(method: CalibMethod) -> dict:
        doc = json.loads(next(cache.glob(f"*-{method.value}-*.json")).read_text())
        return {k: tuple(v) for k, v in doc["ranges"].items()}

    ranges = {
        "minmax": cached(CalibMethod.MINMAX),
        "ort-signed-entropy": _ort_signed_entropy(m, calib_x),
        "entropy": cached(CalibMethod.ENTROPY),
    }
    mo = _activation_amax(modelopt_entropy)
    rows = {}
    for t in mo:
        rows[t] = {k: max(abs(v) for v in r[t]) for k, r in ranges.items() if t in r}
        rows[t]["modelopt-entropy"] = mo[t]
    return rows


def _ort_static(src: Path, calib_x: np.ndarray, dst: Path) -> Path:
    """onnxruntime's own best static quantization for its CPU kernels."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from nin_export.quantize.qdq import _Reader

    quantize_static(
        str(src), str(dst), _Reader("input", calib_x, 20), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return dst


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    with OrtRunner(path) as r:
        return r.infer_batches(x)


def _counts(path: Path) -> dict:
    m = onnx.load(str(path))
    ops = Counter(n.op_type for n in m.graph.node)
    int8 = sum(int(np.prod(i.dims)) for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1)
    return {"nodes": len(m.graph.node), "q": ops["QuantizeLinear"], "dq": ops["DequantizeLinear"], "int8_weight_bytes": int8}


def _engine(path: Path, out: Path) -> dict:
    """A TensorRT-RTX engine with the product's builder; its size and the CUDA source it embeds for the
    kernels it generates at run time (TensorRT-RTX compiles those just in time)."""
    from nin_export.trt import BuildOptions, TrtFlavour, build_engine

    res = build_engine(path, BuildOptions(flavour=TrtFlavour.TENSORRT_RTX), output=out)
    blob = res.engine.read_bytes()
    return {
        "engine_bytes": len(blob),
        "generated_kernels": blob.count(b"function={"),
        "embedded_source_bytes": sum(len(s) for s in re.findall(rb"[\x20-\x7e\t\n]{64,}", blob)),
    }


def _latency(path: Path, x: np.ndarray, timing: TimingOptions) -> dict:
    with OrtRunner(path) as r:
        st = measure(r, {r.input_names[0]: x}, timing)
    return {"median_ms": st.median, "p90_ms": st.p90, "iterations": st.iterations}


VARIANTS = ("fp32", "fp16", "v0.1", "tensorrt", "modelopt", "ort-cpu", "ort-static")
ENGINE_VARIANTS = ("fp16", "v0.1", "tensorrt", "modelopt")  # FP32's engine is 4x FP16's and says nothing new


def _variants(name: str, sim: Path, d: Path, calib_x: np.ndarray, qkw: dict, wanted: list[str]) -> dict[str, Path]:
    int8 = dict(qkw, calib_method=CalibMethod.MINMAX, agreement_floor=0.0)
    make = {
        "fp32": lambda: sim,
        "fp16": lambda: quantize(sim, QuantizeOptions(Precision.FP16, **qkw), output=d / f"{name}.fp16.onnx").path,
        "v0.1": lambda: _v01_graph(sim, calib_x, d / f"{name}.v01.int8.onnx"),
        "tensorrt": lambda: quantize(sim, QuantizeOptions(Precision.INT8, **int8), output=d / f"{name}.int8.onnx").path,
        "modelopt": lambda: (
            quantize(
                sim, QuantizeOptions(Precision.INT8, quantizer=Quantizer.MODELOPT, **int8), output=d / f"{name}.modelopt.int8.onnx"
            ).path
        ),
        "ort-cpu": lambda: (
            quantize(
                sim, QuantizeOptions(Precision.INT8, target=Int8Target.ORT_CPU, **int8), output=d / f"{name}.ortcpu.int8.onnx"
            ).path
        ),
        "ort-static": lambda: _ort_static(sim, calib_x, d / f"{name}.ortstatic.int8.onnx"),
    }
    return {v: make[v]() for v in VARIANTS if v in wanted}


def _one_model(name: str, ckpt: Path, d: Path, args, timing: TimingOptions) -> dict:
    _say(f"== {name}")
    sim = export_model(build_model(name, ckpt), d, weights=ckpt).final_path
    meta = ModelMeta.from_dict(read_metadata(onnx.load(str(sim))), "x")
    source = open_source("digits", meta.preprocess())
    train, test = source.split()
    calib_x = source.load(train[: args.calib_count]).x
    held = source.load(test[held_out_halves(len(test))[1]])  # the unseen half
    qkw = {"calib_data": "digits", "calib_count": args.calib_count, "eval_count": len(test), "cache_dir": None}
    paths = _variants(name, sim, d, calib_x, qkw, args.variants.split(","))
    ref = _logits(sim, held.x)
    x1 = held.x[:1]
    rows = {}
    for v, p in paths.items():
        _say(f"{name} {v}")
        out = _logits(p, held.x)
        row = {"onnx_bytes": p.stat().st_size, **_counts(p), **fidelity(ref, out, held.y)}
        if args.latency:
            row["ort_cpu_b1"] = _latency(p, x1, timing)
        if v in ENGINE_VARIANTS:
            row["tensorrt_rtx"] = _engine(p, d / f"{name}.{v}.engine")
        rows[v] = row
        _say(f"  {json.dumps({k: row[k] for k in ('nodes', 'q', 'top1_agreement', 'top1_accuracy')})}")
    methods, amax = _methods(name, sim, d, calib_x, qkw, ref, held)
    mixed = _mixed(name, sim, d, qkw, ref, held, args.top, args.min_agreement) if name in args.mixed.split(",") else None
    return {
        "model": name, "checkpoint": ckpt.name, "held_out": len(test), "unseen_half": len(held.x),
        "calib_images": len(calib_x), "variants": rows, "methods": methods, "amax": amax, "mixed": mixed,
    }  # fmt: skip


def _methods(name: str, sim: Path, d: Path, calib_x: np.ndarray, qkw: dict, ref: np.ndarray, held) -> tuple[dict, dict]:
    """Every calibration method (default placement, float parts in FP16), onnxruntime's signed entropy the
    same way, and the per-tensor amax table."""
    methods, paths = {}, {}
    pairs = [(Quantizer.ORT, m) for m in CalibMethod] + [(Quantizer.MODELOPT, m) for m in (CalibMethod.MINMAX, CalibMethod.ENTROPY)]
    for q, m in pairs:
        kw = dict(qkw, agreement_floor=0.0, cache_dir=str(d / "cache"))  # the ranges, read back by _amax_table
        opts = QuantizeOptions(Precision.INT8, quantizer=q, calib_method=m, **kw)
        paths[f"{q.value}/{m.value}"] = quantize(sim, opts, output=d / f"{name}.{q.value}.{m.value}.int8.onnx").path
    model = onnx.load(str(sim))
    name_nodes(model)
    signed = float16_remainder(quantize_int8(model, _ort_signed_entropy(model, calib_x), head_nodes(model)))
    paths["ort/entropy-signed (before)"] = d / f"{name}.signed.int8.onnx"
    onnx.save(signed, str(paths["ort/entropy-signed (before)"]))
    for k, p in paths.items():
        methods[k] = fidelity(ref, _logits(p, held.x), held.y)
        _say(f"  {k}: {methods[k]}")
    return methods, _amax_table(model, calib_x, paths["modelopt/entropy"], d / "cache")


def _mixed(name: str, sim: Path, d: Path, qkw: dict, ref: np.ndarray, held, top: int, min_agreement: float) -> dict:
    """Mixed precision with TensorRT's entropy: --min-agreement's choice, and the ``top`` most sensitive layers
    (ranked on the choosing half) kept in float, in FP16 and in FP32, with their engines; figures on the unseen half."""
    out = {}
    kw = dict(qkw, calib_method=CalibMethod.ENTROPY, agreement_floor=0.0, cache_dir=str(d / "cache"))
    res = quantize(sim, QuantizeOptions(Precision.INT8, min_agreement=min_agreement, **kw), output=d / f"{name}.ma.int8.onnx")
    out["min_agreement"] = {
        "target": min_agreement, "float_layers": [f["node"] for f in res.float_layers], "chosen_on": res.selection,
        "unseen": fidelity(ref, _logits(res.path, held.x), held.y), "tensorrt_rtx": _engine(res.path, d / f"{name}.ma.engine"),
    }  # fmt: skip
    half = QuantizeOptions(Precision.INT8, **dict(kw, eval_count=held_out_halves(qkw["eval_count"])[0].stop))
    ranking = [r.node for r in analyze(sim, half).layers][:top]
    for dt in (Precision.FP16, Precision.FP32):
        opts = QuantizeOptions(Precision.INT8, exclude=ranking, float_dtype=dt, **kw)
        p = quantize(sim, opts, output=d / f"{name}.top{top}.{dt.value}.int8.onnx").path
        row = {"float_layers": ranking, **fidelity(ref, _logits(p, held.x), held.y)}
        row["tensorrt_rtx"] = _engine(p, d / f"{name}.top{top}.{dt.value}.engine")
        out[f"top{top}_float_{dt.value}"] = row
        _say(f"  {name}, {top} layers in {dt.value}: engine {row['tensorrt_rtx']['engine_bytes'] / 2**20:.2f} MiB")
    return out


def _default_head_sizes(name: str, d: Path, calib_count: int) -> dict:
    """Engine sizes of the registry's model as it is (nin-imagenet: 1000 classes), seeded random weights:
    sizes do not depend on the values."""
    import torch

    from nin_export.models import create_model

    _say(f"== {name} (1000-class head, random weights): engine sizes")
    torch.manual_seed(0)
    sim = export_model(create_model(name), d).final_path
    meta = ModelMeta.from_dict(read_metadata(onnx.load(str(sim))), "x")
    source = open_source("digits", meta.preprocess())
    calib_x = source.load(source.split()[0][:calib_count]).x
    qkw = {"calib_data": "digits", "calib_count": calib_count, "eval_count": 32, "cache_dir": None}
    paths = {
        "fp16": quantize(sim, QuantizeOptions(Precision.FP16, **qkw), output=d / f"{name}.fp16.onnx").path,
        "v0.1": _v01_graph(sim, calib_x, d / f"{name}.v01.int8.onnx"),
        "tensorrt": quantize(sim, QuantizeOptions(Precision.INT8, **qkw), output=d / f"{name}.int8.onnx").path,
    }
    return {v: {**_counts(p), "onnx_bytes": p.stat().st_size, **_engine(p, d / f"{name}.{v}.engine")} for v, p in paths.items()}


def _finite(v):
    """The document with inf (SQNR of identical outputs) as null: JSON has no infinity."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and not np.isfinite(v) else v


def _fmt_db(v) -> str:
    return "inf" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.1f}"


def _markdown(doc: dict) -> str:
    lines = [
        "# INT8 comparison",
        "",
        f"Machine: {doc['machine']} ({doc['environment'].get('cpu')}), {doc['created']}. "
        f"Calibration: {doc['models'][0]['calib_images']} digits; every figure on the unseen half of the held-out "
        f"digits ({doc['models'][0]['unseen_half']} of {doc['models'][0]['held_out']}). "
        "Engines: TensorRT-RTX " + doc["tensorrt_rtx"] + ", default targets, batch profile 1:8:32.",
        "",
        "| model | variant | nodes | Q | DQ | ONNX | RTX engine | generated kernels | agreement | accuracy | SQNR dB "
        "| ORT CPU b1 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in doc["models"]:
        for v, r in m["variants"].items():
            e = r.get("tensorrt_rtx") or {}
            lines.append(
                f"| {m['model']} | {v} | {r['nodes']} | {r['q']} | {r['dq']} | {r['onnx_bytes'] / 2**20:.2f} MiB | "
                + (f"{e['engine_bytes'] / 2**20:.2f} MiB | {e['generated_kernels']} | " if e else "- | - | ")
                + f"{r['top1_agreement']:.1%} | {r['top1_accuracy']:.1%} | {_fmt_db(r['sqnr_db'])} | "
                + (f"{r['ort_cpu_b1']['median_ms']:.2f} |" if "ort_cpu_b1" in r else "- |")
            )
    heads = doc["nin_imagenet_1000_classes"]
    if heads:
        lines += ["", "## nin-imagenet as registered (1000 classes, random weights): TensorRT-RTX engine sizes", ""]
        lines += ["| variant | int8 weights | ONNX | RTX engine | generated kernels | embedded CUDA source |"]
        lines += ["|---|---:|---:|---:|---:|---:|"]
    for v, r in heads.items():
        lines.append(
            f"| {v} | {r['int8_weight_bytes'] / 2**20:.2f} MiB | {r['onnx_bytes'] / 2**20:.2f} MiB | "
            f"{r['engine_bytes'] / 2**20:.2f} MiB | {r['generated_kernels']} | {r['embedded_source_bytes'] / 2**20:.2f} MiB |"
        )
    lines += ["", "## Calibration methods (default placement, float parts in FP16; ModelOpt's own calibration)", ""]
    lines += ["| model | quantizer/method | agreement | accuracy | SQNR dB |", "|---|---|---:|---:|---:|"]
    for m in doc["models"]:
        for k, f in m["methods"].items():
            lines.append(f"| {m['model']} | {k} | {_fid(f)} |")
    return "\n".join(lines + _amax_markdown(doc) + _mixed_markdown(doc)) + "\n"


def _amax_markdown(doc: dict) -> list[str]:
    cols = ("minmax", "ort-signed-entropy", "entropy", "modelopt-entropy")
    lines = ["", "## Per-tensor amax: minmax, onnxruntime's signed entropy (before), TensorRT's entropy (now), ModelOpt's", ""]
    lines += ["| model | tensor | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for m in doc["models"]:
        for t, r in m["amax"].items():
            lines.append(f"| {m['model']} | `{t}` | " + " | ".join(f"{r[c]:.3g}" if c in r else "-" for c in cols) + " |")
    return lines


def _mixed_markdown(doc: dict) -> list[str]:
    lines = []
    for m in (m for m in doc["models"] if m.get("mixed")):
        v, mx = m["variants"], m["mixed"]
        ma, chosen = mx["min_agreement"], mx["min_agreement"]["chosen_on"] or {}
        size = {k: v[k]["tensorrt_rtx"]["engine_bytes"] / 2**20 for k in ("fp16", "tensorrt")}
        lines += ["", f"## {m['model']}: mixed precision (TensorRT's entropy), figures on the unseen half", ""]
        lines += [f"RTX engines: FP16 {size['fp16']:.2f} MiB, all INT8 {size['tensorrt']:.2f} MiB.", ""]
        lines += ["| graph | layers in float | agreement | accuracy | SQNR dB | RTX engine |", "|---|---|---:|---:|---:|---:|"]
        said = f" (chosen on {chosen['images']} images: {chosen['top1_agreement']:.1%})" if chosen else ""
        rows = [(f"--min-agreement {ma['target']:g}{said}", ma["float_layers"], ma["unseen"], ma["tensorrt_rtx"])]
        rows += [(k, r["float_layers"], r, r["tensorrt_rtx"]) for k, r in mx.items() if k.startswith("top")]
        for label, floats, f, e in rows:
            lines.append(f"| {label} | {len(floats)} | {_fid(f)} | {e['engine_bytes'] / 2**20:.2f} MiB |")
    return lines


def _fid(f: dict) -> str:
    return f"{f['top1_agreement']:.1%} | {f['top1_accuracy']:.1%} | {_fmt_db(f['sqnr_db'])}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", required=True, help="directory with <model>.pt")
    ap.add_argument("--models", default="nin-cifar10,fc-cifar10,nin-imagenet,fc-imagenet")
    ap.add_argument("--calib-count", type=int, default=300)
    ap.add_argument("--min-ms", type=float, default=2000.0)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="graphs of the placement table (comma-separated)")
    ap.add_argument("--default-head", action="store_true", help="also nin-imagenet's 1000-class engine sizes")
    ap.add_argument("--no-latency", dest="latency", action="store_false", help="skip onnxruntime CPU timing")
    ap.add_argument("--mixed", default="nin-imagenet", help="models whose mixed-precision graphs are built (comma-separated)")
    ap.add_argument("--min-agreement", type=float, default=0.99)
    ap.add_argument("--top", type=int, default=5, help="the most sensitive layers kept in float for the engine-size check")
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    import tensorrt_rtx

    env = environment()
    out = Path(args.output or Path(__file__).parent / "results" / machine_name(env) / "int8_comparison.json")
    timing = TimingOptions(warmup_ms=300, min_iters=20, min_ms=args.min_ms)
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            models.append(_one_model(name, Path(args.checkpoints) / f"{name}.pt", Path(tmp) / name, args, timing))
        default_head = (
            _default_head_sizes("nin-imagenet", Path(tmp) / "default-head", args.calib_count) if args.default_head else {}
        )
    doc = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_name(env),
        "environment": env,
        "tensorrt_rtx": tensorrt_rtx.__version__,
        "timing": dataclasses.asdict(timing),
        "models": models,
        "nin_imagenet_1000_classes": default_head,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = _finite(doc)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    out.with_suffix(".md").write_text(_markdown(doc))
    _say(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
