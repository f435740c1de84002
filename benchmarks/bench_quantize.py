"""onnxruntime CPU: FP32 vs FP16 vs INT8 (Q/DQ) for nin-imagenet and fc-imagenet at batch 1 and 16.

    python benchmarks/bench_quantize.py            # writes benchmarks/results/<machine>/quantize_ort_cpu.json

Models are built with seeded random weights (timing does not depend on the values), exported,
quantized with the same code as `nin-export quantize` (INT8 calibrated on 300 digits, with
`--int8-target ort-cpu`: onnxruntime's CPU layout, as `nin-export bench` measures its CPU row), then
timed trtexec-style with the same code as `nin-export bench`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nin_export.core.enums import Int8Target, Precision
from nin_export.core.envinfo import environment, machine_name
from nin_export.export.exporter import export_model
from nin_export.models import create_model
from nin_export.quantize.ptq import QuantizeOptions, quantize
from nin_export.runners import OrtRunner
from nin_export.runners.timing import TimingOptions, measure

SCHEMA = "nin-export/quantize-bench/1"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="nin-imagenet,fc-imagenet")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    ap.add_argument("--min-ms", type=float, default=3000.0)
    ap.add_argument("--min-iters", type=int, default=10)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    env = environment()
    out = Path(args.output or Path(__file__).parent / "results" / machine_name(env) / "quantize_ort_cpu.json")
    timing = TimingOptions(warmup_ms=500, min_iters=args.min_iters, min_ms=args.min_ms)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = create_model(name)
            res = export_model(model, Path(tmp) / name)
            paths = {Precision.FP32: res.final_path}
            for prec in (Precision.FP16, Precision.INT8):
                target = {"target": Int8Target.ORT_CPU} if prec is Precision.INT8 else {}
                q = quantize(res.final_path, QuantizeOptions(prec, calib_data="digits", cache_dir=None, **target))
                paths[prec] = q.path
                print(f"{name} {prec}: {q.agreement.describe()}", file=sys.stderr)
            for prec, path in paths.items():
                with OrtRunner(path, threads=args.threads) as r:
                    for b in map(int, args.batch.split(",")):
                        x = np.random.default_rng(b).standard_normal((b, 3, 224, 224)).astype(np.float32)
                        st = measure(r, {"input": x}, timing)
                        rows.append(
                            {
                                "model": name,
                                "backend": "onnxruntime-cpu",
                                "precision": str(prec),
                                "batch": b,
                                "file_bytes": path.stat().st_size,
                                "latency_ms": st.to_dict(),
                            }
                        )
                        print(
                            f"{name:13} {prec} b={b:2}: median {st.median:8.2f} ms, {st.images_per_s:8.1f} img/s "
                            f"({st.iterations} iters)",
                            file=sys.stderr,
                        )
    speedups = {}
    for name in args.models.split(","):
        for b in map(int, args.batch.split(",")):
            med = {r["precision"]: r["latency_ms"]["median"] for r in rows if r["model"] == name and r["batch"] == b}
            speedups[f"{name}/b{b}"] = {p: med["fp32"] / m for p, m in med.items()}
    result = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": env,
        "threads": args.threads or "onnxruntime default",
        "timing": vars(timing),
        "rows": rows,
        "speedup_vs_fp32_median": speedups,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(speedups, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
