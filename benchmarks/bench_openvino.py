"""OpenVINO against onnxruntime and PyTorch eager on this machine's CPU, NiN against its FC-headed twin,
FP32 and INT8, with the machine's measured GEMM limits, in one run.

    python benchmarks/bench_openvino.py [--checkpoints DIR] [--threads 2]
    # writes benchmarks/results/<machine>/openvino.json and openvino.md

1. The limits: an FP32 GEMM and an INT8 GEMM (u8 x s8 -> s32, VNNI where the CPU has it) in each library
   that has one here: PyTorch (matmul: oneDNN/MKL; quantized linear on the fbgemm and onednn engines)
   and OpenVINO (a 1x1 convolution, its FP32 and INT8 kernels). The best of each is the limit.
2. Every model of --models (default: both pairs): exported to ONNX, INT8 Q/DQ graphs made with the same
   code as ``nin-export quantize`` in both placements (TensorRT's, the default; ``--int8-target ort-cpu``),
   and NNCF's own PTQ (``nncf.quantize`` on the OpenVINO model) where NNCF is installed, all calibrated on
   the same 300 digits. Models with a checkpoint in --checkpoints use it (agreement with FP32 PyTorch and
   accuracy on the held-out digits are then measured); the others have seeded random weights (timing only).
3. Every variant at batch 1 and 16, interleaved: ``--rounds`` rounds, each timing every variant for
   ``--window-s`` after a warm-up, so that a change in the host's load hits all variants alike. The median
   over all rounds' iterations is the figure; GOP/s = 2 x MACs x batch / median.
4. OpenVINO's per-layer profile (PERF_COUNT) of the INT8 graph of the first model at batch 1: the time in
   integer convolutions, in FakeQuantize / reorder nodes, and the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nin_export.core.data import Preprocess, open_source
from nin_export.core.enums import Int8Target, Precision
from nin_export.core.envinfo import environment, machine_name
from nin_export.export.exporter import export_model
from nin_export.models import build_model, get_spec
from nin_export.models.summary import summarize
from nin_export.quantize.ptq import QuantizeOptions, quantize
from nin_export.runners import OrtRunner, TorchRunner
from nin_export.runners.openvino import OvRunner

SCHEMA = "nin-export/openvino-bench/1"
CALIB = 300
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _median_s(fn: Callable[[], Any], reps: int = 10) -> tuple[float, float]:
    """(best, median) seconds of ``fn`` after two warm-up calls."""
    fn(), fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def cpu_features() -> dict[str, Any]:
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        pass
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return {"flags": {k: k in flags for k in FLAGS}, "openvino_capabilities": list(caps)}


# --- 1. the GEMM limits ----------------------------------------------------------------------------


def _torch_gemms(n: int) -> list[dict[str, Any]]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = [dict(library="torch matmul (oneDNN/MKL)", dtype="fp32", seconds=_median_s(lambda: a @ b))]
    qa = torch.quantize_per_tensor(a.abs(), 0.05, 0, torch.quint8)
    for engine in ("fbgemm", "onednn"):
        if engine not in torch.backends.quantized.supported_engines:
            continue
        torch.backends.quantized.engine = engine
        packed = torch.ops.quantized.linear_prepack(torch.quantize_per_tensor(b, 0.05, 0, torch.qint8), None)
        secs = _median_s(lambda packed=packed: torch.ops.quantized.linear(qa, packed, 0.1, 0))
        out.append(dict(library=f"torch quantized linear ({engine})", dtype="int8", seconds=secs))
    return [dict(r, shape=[n, n, n], ops=2 * n**3) for r in out]


def _ort_gemms(n: int, threads: int) -> list[dict[str, Any]]:
    """onnxruntime's MLAS: MatMul in float32, MatMulInteger u8 x s8 -> s32."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng, out = np.random.default_rng(0), []
    for dtype, op, a_type, y_type in (
        ("fp32", "MatMul", TensorProto.FLOAT, TensorProto.FLOAT),
        ("int8", "MatMulInteger", TensorProto.UINT8, TensorProto.INT32),
    ):
        w = rng.standard_normal((n, n)).astype(np.float32) if dtype == "fp32" else rng.integers(-127, 127, (n, n), dtype=np.int8)
        x = rng.standard_normal((n, n)).astype(np.float32) if dtype == "fp32" else rng.integers(0, 255, (n, n), dtype=np.uint8)
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "w"], ["y"])],
            "gemm",
            [helper.make_tensor_value_info("a", a_type, [n, n])],
            [helper.make_tensor_value_info("y", y_type, [n, n])],
            [numpy_helper.from_array(w, "w")],
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        secs = _median_s(lambda sess=sess, x=x: sess.run(None, {"a": x}))
        out.append(dict(library=f"onnxruntime {op} (MLAS)", dtype=dtype, seconds=secs, shape=[n, n, n], ops=2 * n**3))
    return out


def _ov_conv1x1(n: int, hw: int, int8: bool, threads: int) -> dict[str, Any]:
    """An n -> n 1x1 convolution over hw x hw pixels: a GEMM of M = hw^2, N = K = n, in OpenVINO's kernels."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, n, hw, hw], np.float32)
    w = ops.constant(np.random.default_rng(0).standard_normal((n, n, 1, 1)).astype(np.float32))
    if int8:  # FakeQuantize on both inputs: OpenVINO's low-precision transformations make it u8 x s8
        c = lambda v: ops.constant(np.float32(v))  # noqa: E731
        x_q, w_q = ops.fake_quantize(x, c(0), c(4), c(0), c(4), 256), ops.fake_quantize(w, c(-4), c(4), c(-4), c(4), 255)
    else:
        x_q, w_q = x, w
    conv = ops.convolution(x_q, w_q, [1, 1], [0, 0], [0, 0], [1, 1])
    cfg = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
    compiled = ov.Core().compile_model(ov.Model([conv], [x]), "CPU", cfg)
    req, feed = compiled.create_infer_request(), np.abs(np.random.default_rng(1).standard_normal((1, n, hw, hw))).astype(np.float32)
    secs = _median_s(lambda: req.infer({0: feed}))
    kernels = sorted({p.exec_type for p in req.get_profiling_info() if p.node_type == "Convolution"})
    lib = f"OpenVINO 1x1 convolution ({', '.join(kernels)})"
    return dict(library=lib, dtype="int8" if int8 else "fp32", seconds=secs, shape=[hw * hw, n, n], ops=2 * hw * hw * n * n)


def gemm_limits(threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    rows = _torch_gemms(1024) + _torch_gemms(2048) + _ort_gemms(1024, threads) + _ort_gemms(2048, threads)
    rows += [_ov_conv1x1(n, hw, q, threads) for n, hw in ((512, 32), (1024, 32)) for q in (False, True)]
    for r in rows:
        best, med = r.pop("seconds")
        r.update(gops_best=r["ops"] / best / 1e9, gops_median=r["ops"] / med / 1e9)
        _say(f"  {r['library']:55} {r['dtype']} {r['shape']}: {r['gops_best']:7.1f} GOP/s (median {r['gops_median']:.1f})")
    best = {d: max((r for r in rows if r["dtype"] == d), key=lambda r: r["gops_best"]) for d in ("fp32", "int8")}
    limit = {d: {"gops": r["gops_best"], "library": r["library"], "shape": r["shape"]} for d, r in best.items()}
    return {"rows": rows, "limit": limit, "int8_over_fp32": limit["int8"]["gops"] / limit["fp32"]["gops"]}


# --- 2. models and their variants ------------------------------------------------------------------


def _calib_and_held_out(name: str, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c, h, w = model.input_shape
    source = open_source("digits", Preprocess.for_spec(get_spec(name), c, (h, w)))
    train, test = source.split()
    held = source.load(test)
    return source.load(train[:CALIB]).x, held.x, held.y


def _nncf_ir(fp32: Path, calib: np.ndarray, out: Path) -> tuple[Path | None, str | None]:
    """NNCF's default PTQ (symmetric INT8, its own placement) on the OpenVINO model, saved as IR."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        return None, "NNCF is not installed (pip install nncf)"
    ov_model = ov.Core().read_model(os.fspath(fp32))
    q = nncf.quantize(ov_model, nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]), subset_size=len(calib))
    ov.save_model(q, os.fspath(out))
    return out, None


def prepare(name: str, ckpt: Path | None, work: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(name, os.fspath(ckpt) if ckpt else None).eval()
    calib, held_x, held_y = _calib_and_held_out(name, model)
    d = work / name
    fp32 = export_model(model, d, weights=ckpt).final_path
    graphs = {"fp32": fp32}
    for t in (Int8Target.TENSORRT, Int8Target.ORT_CPU):
        opts = QuantizeOptions(Precision.INT8, calib_data="digits", calib_count=CALIB, cache_dir=None, target=t)
        graphs[f"int8-{t.value}"] = quantize(fp32, opts, output=d / f"{name}.int8.{t.value}.onnx").path
    graphs["int8-nncf"], nncf_note = _nncf_ir(fp32, calib, d / f"{name}.int8.nncf.xml")
    c, h, w = model.input_shape
    info = {"macs": summarize(model, (c, h, w)).macs, "input_shape": [c, h, w], "weights": ckpt.name if ckpt else "random (seed 0)"}
    return {"name": name, "model": model, "graphs": graphs, "held": (held_x, held_y), "info": info, "nncf_note": nncf_note}


def variants(prep: dict[str, Any], threads: int) -> dict[str, Callable[[], Any]]:
    """Runner factories, by "runtime precision (graph)"."""
    g = prep["graphs"]
    out: dict[str, Callable[[], Any]] = {
        "torch fp32 (eager)": lambda: TorchRunner(prep["model"], threads=threads),
        "onnxruntime fp32": lambda: OrtRunner(g["fp32"], threads=threads),
        "onnxruntime int8 (ort-cpu Q/DQ)": lambda: OrtRunner(g["int8-ort-cpu"], threads=threads),
        "openvino fp32": lambda: OvRunner(g["fp32"], threads=threads),
        "openvino int8 (tensorrt Q/DQ)": lambda: OvRunner(g["int8-tensorrt"], threads=threads),
        "openvino int8 (ort-cpu Q/DQ)": lambda: OvRunner(g["int8-ort-cpu"], threads=threads),
    }
    if g["int8-nncf"] is not None:
        out["openvino int8 (NNCF PTQ)"] = lambda: OvRunner(g["int8-nncf"], threads=threads)
    return out


# --- 3. timing and quality -------------------------------------------------------------------------


def _window(runner: Any, feed: dict[str, np.ndarray], warmup_s: float, window_s: float, min_iters: int = 3) -> list[float]:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup_s:
        runner.infer(feed)
    lat: list[float] = []
    t0 = time.perf_counter()
    while len(lat) < min_iters or time.perf_counter() - t0 < window_s:
        t = time.perf_counter()
        runner.infer(feed)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def time_interleaved(runners: dict[str, Any], shape: list[int], batch: int, rounds: int, window_s: float) -> dict[str, Any]:
    x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
    lat: dict[str, list[float]] = {k: [] for k in runners}
    per_round: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            got = _window(r, {r.input_names[0]: x}, 0.3, window_s)
            lat[k] += got
            per_round[k].append(float(np.median(got)))
    return {
        k: {
            "median_ms": float(np.median(v)),
            "p90_ms": float(np.percentile(v, 90)),
            "iterations": len(v),
            "round_medians_ms": per_round[k],
        }
        for k, v in lat.items()
    }


def quality(runners: dict[str, Any], prep: dict[str, Any]) -> dict[str, Any]:
    """Top-1 agreement with FP32 PyTorch and accuracy on every held-out digit (trained weights only)."""
    x, y = prep["held"]
    ref = runners["torch fp32 (eager)"].infer_batches(x, 32)
    out = {}
    for k, r in runners.items():
        got = r.infer_batches(x, 32)
        out[k] = {"top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()), "accuracy": float((got.argmax(1) == y).mean())}
    return {"samples": int(len(x)), "vs": "fp32 torch", "rows": out}


# --- 4. where the time goes --------------------------------------------------------------------------


def _category(p: dict[str, Any]) -> str:
    t, k = p["type"], p["kernel"].lower()
    if t == "Convolution" or t.startswith("FullyConnected"):
        return "int8 convolution / FC" if "i8" in k else "float convolution / FC"
    if t == "Reorder":
        return "reorder (layout/precision)"
    if t in ("FakeQuantize", "Subgraph", "Eltwise"):
        return "quantize / dequantize / eltwise"
    return "pooling and the rest" if t not in ("Input", "Output", "Parameter", "Result") else "I/O"


def profile(graph: Path, shape: list[int], macs: int, threads: int, iters: int = 30) -> dict[str, Any]:
    """OpenVINO's per-layer times of ``graph`` at batch 1, summed over ``iters`` inferences."""
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    layers: dict[str, dict[str, Any]] = {}
    with OvRunner(graph, threads=threads, profile=True) as r:
        for _ in range(5 + iters):
            r.infer({r.input_names[0]: x})
            for p in r.layer_profile():
                e = layers.setdefault(p["node"], dict(p, us=0.0, category=_category(p)))
                e["us"] += p["us"]
    for e in layers.values():
        e["us"] /= 5 + iters
    total = sum(e["us"] for e in layers.values())
    share: dict[str, float] = {}
    for e in layers.values():
        share[e["category"]] = share.get(e["category"], 0.0) + e["us"] / total
    conv_us = sum(e["us"] for e in layers.values() if "convolution" in e["category"])
    top = sorted(layers.values(), key=lambda e: -e["us"])
    return {
        "graph": graph.name,
        "total_ms": total / 1000,
        "share": share,
        "conv_ms": conv_us / 1000,
        "conv_gops": 2 * macs / (conv_us / 1e6) / 1e9 if conv_us else None,
        "layers": [{k: e[k] for k in ("node", "type", "kernel", "us", "category")} for e in top],
    }


# --- the run -----------------------------------------------------------------------------------------


def local_limits(threads: int) -> dict[str, Any]:
    """The limits again, just before a model is timed (a shared host's load changes): GEMMs at 1024^3."""
    out: dict[str, Any] = {}
    for r in _torch_gemms(1024) + _ort_gemms(1024, threads):
        gops = r["ops"] / r["seconds"][0] / 1e9
        if gops > out.get(r["dtype"], {}).get("gops", 0):
            out[r["dtype"]] = {"gops": gops, "library": r["library"]}
    return out


def measure_model(prep: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    runners = {k: f() for k, f in variants(prep, args.threads).items()}
    for r in runners.values():
        r.activate()
    try:
        res: dict[str, Any] = {
            "info": prep["info"],
            "nncf": prep["nncf_note"] or "NNCF PTQ (default preset), 300 digits",
            "batches": {},
        }
        res["limit"] = local_limits(args.threads)
        for b in args.batches:
            _say(f"{prep['name']}: batch {b}, {args.rounds} rounds")
            res["batches"][str(b)] = time_interleaved(runners, prep["info"]["input_shape"], b, args.rounds, args.window_s)
        if prep["info"]["weights"] != "random (seed 0)":
            res["quality"] = quality(runners, prep)
    finally:
        for r in runners.values():
            r.deactivate()
    return res


def _gops(res: dict[str, Any]) -> None:
    """GOP/s of every timed variant and its share of the limit for its precision measured just before the model."""
    for m in res["models"].values():
        for b, rows in m["batches"].items():
            for k, row in rows.items():
                row["gops"] = 2 * m["info"]["macs"] * int(b) / (row["median_ms"] / 1000) / 1e9
                row["of_limit"] = row["gops"] / m["limit"]["int8" if " int8" in k else "fp32"]["gops"]


def _speedups(res: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, m in res["models"].items():
        for b, rows in m["batches"].items():
            ov_int8 = min((k for k in rows if k.startswith("openvino int8")), key=lambda k: rows[k]["median_ms"])
            best = min((k for k in rows if " int8" in k), key=lambda k: rows[k]["median_ms"])
            ms = {k: v["median_ms"] for k, v in rows.items()}
            out[f"{name} b{b}"] = {
                "onnxruntime int8/fp32": ms["onnxruntime fp32"] / ms["onnxruntime int8 (ort-cpu Q/DQ)"],
                "openvino int8/fp32": ms["openvino fp32"] / ms[ov_int8],
                "openvino int8 row": ov_int8,
                "best int8": best,
                "best int8 vs onnxruntime fp32": ms["onnxruntime fp32"] / ms[best],
                "best int8 vs torch eager fp32": ms["torch fp32 (eager)"] / ms[best],
            }
    return out


def _md_models(res: dict[str, Any]) -> list[str]:
    lines = []
    for name, m in res["models"].items():
        q = (m.get("quality") or {}).get("rows", {})
        lim = m["limit"]
        lines += [f"### {name} ({m['info']['macs'] / 1e6:.1f} M MACs, weights: {m['info']['weights']})", ""]
        lines += [
            f"GEMM limits measured just before its timing: FP32 {lim['fp32']['gops']:.0f}, INT8 {lim['int8']['gops']:.0f} GOP/s.",
            "",
        ]
        lines += [
            "| variant | " + " | ".join(f"b{b} ms | b{b} GOP/s (of limit)" for b in m["batches"]) + " | agreement / accuracy |"
        ]
        lines += ["|---|" + "---:|---:|" * len(m["batches"]) + "---:|"]
        for k in next(iter(m["batches"].values())):
            cells = [f"{r[k]['median_ms']:.2f} | {r[k]['gops']:.0f} ({r[k]['of_limit']:.0%})" for r in m["batches"].values()]
            qual = f"{q[k]['top1_agreement']:.1%} / {q[k]['accuracy']:.1%}" if k in q else "random weights"
            lines.append(f"| {k} | " + " | ".join(cells) + f" | {qual} |")
        lines.append("")
    return lines


def _md_pairs(res: dict[str, Any], pairs: list[tuple[str, str]]) -> list[str]:
    lines = ["## Twin / NiN latency (median; above 1: NiN is faster)", ""]
    for nin, fc in pairs:
        if nin not in res["models"] or fc not in res["models"]:
            continue
        bs = list(res["models"][nin]["batches"])
        lines += [f"| {fc} / {nin} | " + " | ".join(f"b{b}" for b in bs) + " |", "|---|" + "---:|" * len(bs)]
        for k in res["models"][nin]["batches"][bs[0]]:
            ratios = [
                res["models"][fc]["batches"][b][k]["median_ms"] / res["models"][nin]["batches"][b][k]["median_ms"] for b in bs
            ]
            lines.append(f"| {k} | " + " | ".join(f"{v:.2f}x" for v in ratios) + " |")
        lines.append("")
    return lines


def _md_profile(p: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    lines = [f"## Where the time goes: OpenVINO per-layer profile, {p['graph']}, batch 1", ""]
    lines += [f"Sum of layer times {p['total_ms']:.2f} ms. Share by kind:", ""]
    lines += [f"- {k}: {v:.1%}" for k, v in sorted(p["share"].items(), key=lambda kv: -kv[1])]
    if p["conv_gops"]:
        lines += [
            "",
            f"Convolution and FC nodes: {p['conv_ms']:.2f} ms, so the model's MACs ran at {p['conv_gops']:.0f} GOP/s "
            f"there, against the INT8 limit of {limits['int8']['gops']:.0f}.",
        ]
    lines += ["", "| layer | type | kernel | us |", "|---|---|---|---:|"]
    lines += [f"| {e['node']} | {e['type']} | {e['kernel']} | {e['us']:.0f} |" for e in p["layers"][:15]]
    return lines + [""]


def markdown(res: dict[str, Any], pairs: list[tuple[str, str]]) -> str:
    lim = res["gemm"]["limit"]
    lines = [
        f"# OpenVINO, onnxruntime and PyTorch on {res['machine']} ({res['environment']['cpu']}, {res['threads']} threads)",
        "",
        f"`python benchmarks/bench_openvino.py {' '.join(res['argv'])}` on {res['created']}; load average "
        f"{res['load_before'][0]:.2f} before, {res['load_after'][0]:.2f} after (1 min). Versions: {res['versions']}.",
        f"CPU flags: {', '.join(k for k, v in res['cpu']['flags'].items() if v) or 'none of ' + ', '.join(FLAGS)}; "
        f"OpenVINO capabilities: {', '.join(res['cpu']['openvino_capabilities'])}.",
        "",
        "## Measured limits (best of each library, same run)",
        "",
        "| library | dtype | M, N, K | GOP/s best | median |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| {r['library']} | {r['dtype']} | {r['shape']} | {r['gops_best']:.1f} | {r['gops_median']:.1f} |"
        for r in res["gemm"]["rows"]
    ]
    lines += [
        "",
        f"Limit: FP32 {lim['fp32']['gops']:.0f} GOP/s ({lim['fp32']['library']}), INT8 {lim['int8']['gops']:.0f} GOP/s "
        f"({lim['int8']['library']}): INT8/FP32 = {res['gemm']['int8_over_fp32']:.2f}x.",
        "",
        "## Latency (median over every round's iterations), GOP/s and share of the limit measured just before the model",
        "",
    ]
    lines += _md_models(res) + _md_pairs(res, pairs)
    lines += [
        "## INT8 / FP32 per runtime, and the best INT8 path",
        "",
        "| model, batch | onnxruntime | openvino | best INT8 | vs onnxruntime FP32 | vs torch eager FP32 |",
    ]
    lines += ["|---|---:|---:|---|---:|---:|"]
    for k, s in res["speedups"].items():
        lines.append(
            f"| {k} | {s['onnxruntime int8/fp32']:.2f}x | {s['openvino int8/fp32']:.2f}x | {s['best int8']} | "
            f"{s['best int8 vs onnxruntime fp32']:.2f}x | {s['best int8 vs torch eager fp32']:.2f}x |"
        )
    return "\n".join(
        lines + [""] + (_md_profile(res["profile"], next(iter(res["models"].values()))["limit"]) if res.get("profile") else [])
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="nin-imagenet,fc-imagenet,nin-cifar10,fc-cifar10")
    ap.add_argument("--checkpoints", type=Path, default=None, help="DIR/<model>.pt for the models trained on the digits")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window-s", type=float, default=1.0)
    ap.add_argument("-o", "--output", default=None, help="JSON path (the .md goes beside it)")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batch.split(",")]
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated")  # the limit's int8 GEMM needs it
    env = environment()
    out = Path(args.output or Path(__file__).parent / "results" / machine_name(env) / "openvino.json")
    import openvino as ov

    res: dict[str, Any] = {"schema": SCHEMA, "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "argv": sys.argv[1:]}
    res.update(environment=env, machine=machine_name(env), threads=args.threads, cpu=cpu_features(), load_before=os.getloadavg())
    res["versions"] = {"openvino": ov.__version__, "torch": torch.__version__, "onnxruntime": env["versions"].get("onnxruntime")}
    _say("GEMM limits")
    res["gemm"] = gemm_limits(args.threads)
    res["models"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            ckpt = args.checkpoints / f"{name}.pt" if args.checkpoints and (args.checkpoints / f"{name}.pt").exists() else None
            _say(f"{name}: export, INT8 graphs, NNCF ({'trained' if ckpt else 'random weights'})")
            prep = prepare(name, ckpt, Path(tmp))
            res["models"][name] = measure_model(prep, args)
            if "profile" not in res:
                best = min(("int8-tensorrt", "int8-ort-cpu"), key=lambda g: _ov_ms(res["models"][name], g))
                res["profile"] = profile(prep["graphs"][best], prep["info"]["input_shape"], prep["info"]["macs"], args.threads)
    res["load_after"] = os.getloadavg()
    _gops(res)
    res["speedups"] = _speedups(res)
    pairs = [(n, get_spec(n).twin) for n in res["models"] if get_spec(n).head == "gap" and get_spec(n).twin]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(res, pairs))
    _say(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _ov_ms(m: dict[str, Any], graph: str) -> float:
    return m["batches"][next(iter(m["batches"]))][f"openvino int8 ({graph.split('-', 1)[1]} Q/DQ)"]["median_ms"]


if __name__ == "__main__":
    sys.exit(main())
