"""INT8 side by side: Q/DQ placements and quantizers, calibration methods, TensorRT-RTX engine sizes and
onnxruntime CPU latency, on trained checkpoints, in one run on one machine.

    python benchmarks/bench_int8.py --checkpoints DIR      # DIR/<model>.pt for every model in --models
    # writes benchmarks/results/<machine>/int8_comparison.json and .md

Variants of each model (one FP32 ONNX exported from its checkpoint, the same calibration images):
  v0.1           onnxruntime's default op list, int8 symmetric: Q/DQ after every Conv and ReLU (the old default)
  tensorrt       nin-export's default: Q/DQ on the inputs of Conv/Gemm only (TensorRT's rules)
  modelopt       NVIDIA ModelOpt's ONNX PTQ (modelopt.onnx.quantization, int8, float parts float32)
  ort-cpu        nin-export --int8-target ort-cpu: uint8 activations, every op onnxruntime quantizes
  ort-static     onnxruntime.quantization.quantize_static, QDQ, U8 activations, S8 per-channel weights
Each is checked against FP32 on the held-out digits (top-1 agreement, accuracy, logit SQNR); the
TensorRT-ready ones are built into TensorRT-RTX engines (default targets), next to FP16 and FP32;
every graph is timed on onnxruntime's CPU provider at batch 1. Then every calibration method with
the default placement (and ModelOpt's two) for the fidelity table.
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

from nin_export.data import open_source
from nin_export.enums import CalibMethod, Int8Target, Precision, Quantizer
from nin_export.envinfo import environment, machine_name
from nin_export.export import export_model
from nin_export.meta import ModelMeta
from nin_export.models import build_model
from nin_export.onnx_utils import read_metadata, set_metadata
from nin_export.qdq import calibrate, head_nodes, name_nodes, ort_settings, quantize_int8
from nin_export.quantize import QuantizeOptions, quantize
from nin_export.runners import OrtRunner
from nin_export.sensitivity import fidelity
from nin_export.timing import TimingOptions, measure

SCHEMA = "nin-export/int8-comparison/1"


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


def _ort_static(src: Path, calib_x: np.ndarray, dst: Path) -> Path:
    """onnxruntime's own best static quantization for its CPU kernels."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from nin_export.qdq import _Reader

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


def _variants(name: str, sim: Path, d: Path, calib_x: np.ndarray, qkw: dict) -> dict[str, Path]:
    paths = {"fp32": sim}
    paths["fp16"] = quantize(sim, QuantizeOptions(Precision.FP16, **qkw), output=d / f"{name}.fp16.onnx").path
    paths["v0.1"] = _v01_graph(sim, calib_x, d / f"{name}.v01.int8.onnx")
    int8 = dict(qkw, calib_method=CalibMethod.MINMAX, agreement_floor=0.0)
    paths["tensorrt"] = quantize(sim, QuantizeOptions(Precision.INT8, **int8), output=d / f"{name}.int8.onnx").path
    paths["modelopt"] = quantize(
        sim, QuantizeOptions(Precision.INT8, quantizer=Quantizer.MODELOPT, **int8), output=d / f"{name}.modelopt.int8.onnx"
    ).path
    paths["ort-cpu"] = quantize(
        sim, QuantizeOptions(Precision.INT8, target=Int8Target.ORT_CPU, **int8), output=d / f"{name}.ortcpu.int8.onnx"
    ).path
    paths["ort-static"] = _ort_static(sim, calib_x, d / f"{name}.ortstatic.int8.onnx")
    return paths


def _one_model(name: str, ckpt: Path, d: Path, args, timing: TimingOptions) -> dict:
    _say(f"== {name}")
    sim = export_model(build_model(name, ckpt), d, weights=ckpt).final_path
    meta = ModelMeta.from_dict(read_metadata(onnx.load(str(sim))), "x")
    source = open_source("digits", meta.preprocess())
    train, test = source.split()
    calib_x = source.load(train[: args.calib_count]).x
    held = source.load(test)
    qkw = {"calib_data": "digits", "calib_count": args.calib_count, "eval_count": len(test), "cache_dir": None}
    paths = _variants(name, sim, d, calib_x, qkw)
    ref = _logits(sim, held.x)
    x1 = held.x[:1]
    rows = {}
    for v, p in paths.items():
        _say(f"{name} {v}")
        out = _logits(p, held.x)
        row = {"onnx_bytes": p.stat().st_size, **_counts(p), **fidelity(ref, out, held.y), "ort_cpu_b1": _latency(p, x1, timing)}
        if v in ("fp32", "fp16", "v0.1", "tensorrt", "modelopt"):
            row["tensorrt_rtx"] = _engine(p, d / f"{name}.{v}.engine")
        rows[v] = row
        _say(f"  {json.dumps({k: row[k] for k in ('nodes', 'q', 'top1_agreement', 'top1_accuracy')})}")
    methods = {}
    pairs = [(Quantizer.ORT, m) for m in CalibMethod] + [(Quantizer.MODELOPT, m) for m in (CalibMethod.MINMAX, CalibMethod.ENTROPY)]
    for q, m in pairs:
        opts = QuantizeOptions(Precision.INT8, quantizer=q, calib_method=m, **dict(qkw, agreement_floor=0.0))
        res = quantize(sim, opts, output=d / f"{name}.{q.value}.{m.value}.int8.onnx")
        methods[f"{q.value}/{m.value}"] = fidelity(ref, _logits(res.path, held.x), held.y)
        _say(f"  {q.value}/{m.value}: {methods[f'{q.value}/{m.value}']}")
    return {
        "model": name, "checkpoint": ckpt.name, "held_out": len(test), "calib_images": len(calib_x),
        "variants": rows, "methods": methods,
    }  # fmt: skip


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
        f"Calibration: {doc['models'][0]['calib_images']} digits; held-out: the digits test split. "
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
                + f"{r['ort_cpu_b1']['median_ms']:.2f} |"
            )
    lines += ["", "## nin-imagenet as registered (1000 classes, random weights): TensorRT-RTX engine sizes", ""]
    lines += ["| variant | int8 weights | ONNX | RTX engine | generated kernels | embedded CUDA source |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    for v, r in doc["nin_imagenet_1000_classes"].items():
        lines.append(
            f"| {v} | {r['int8_weight_bytes'] / 2**20:.2f} MiB | {r['onnx_bytes'] / 2**20:.2f} MiB | "
            f"{r['engine_bytes'] / 2**20:.2f} MiB | {r['generated_kernels']} | {r['embedded_source_bytes'] / 2**20:.2f} MiB |"
        )
    lines += ["", "## Calibration methods (default placement; ModelOpt's own calibration)", ""]
    lines += ["| model | quantizer/method | agreement | accuracy | SQNR dB |", "|---|---|---:|---:|---:|"]
    for m in doc["models"]:
        for k, f in m["methods"].items():
            lines.append(f"| {m['model']} | {k} | {f['top1_agreement']:.1%} | {f['top1_accuracy']:.1%} | {_fmt_db(f['sqnr_db'])} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", required=True, help="directory with <model>.pt")
    ap.add_argument("--models", default="nin-cifar10,fc-cifar10,nin-imagenet,fc-imagenet")
    ap.add_argument("--calib-count", type=int, default=300)
    ap.add_argument("--min-ms", type=float, default=2000.0)
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
        default_head = _default_head_sizes("nin-imagenet", Path(tmp) / "default-head", args.calib_count)
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
