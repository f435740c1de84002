"""The published comparison: NiN vs its FC-headed twin, on this machine, one command.

    python benchmarks/bench_nin_vs_fc.py      # -> benchmarks/results/<machine>/{nin-imagenet,nin-cifar10}/results.json
                                              #    and benchmarks/results/<machine>/report/ (Markdown, CSV, plots)

Pairs: nin-imagenet vs fc-imagenet and nin-cifar10 vs fc-cifar10; every backend installed here
(torch, onnxruntime, TensorRT where importable: without a GPU its engines are built ahead of time
and their sizes recorded); FP32, FP16, INT8; batch 1 and 16; digits as reference and calibration data.
Seeded random weights: latency, memory and size do not depend on the values.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from nin_export.bench.report import render_report
from nin_export.bench.run import BenchConfig, run_bench
from nin_export.core.envinfo import environment, machine_name
from nin_export.runners.timing import TimingOptions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default="nin-imagenet,nin-cifar10")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--min-ms", type=float, default=3000.0)
    ap.add_argument("--keep-artifacts", action="store_true", help="keep the ONNX files and engines (hundreds of MB)")
    args = ap.parse_args()
    root = Path(__file__).parent / "results" / machine_name(environment())
    paths = []
    for model in args.pairs.split(","):
        out = root / model
        cfg = BenchConfig(
            model=model,
            batches=[int(b) for b in args.batch.split(",")],
            threads=args.threads,
            timing=TimingOptions(warmup_ms=500, min_iters=10, min_ms=args.min_ms),
            out_dir=str(out),
        )
        res = run_bench(cfg, progress=lambda m, d, t: print(f"[{d}/{t}] {m}", file=sys.stderr, flush=True))
        paths.append(res["path"])
        if not args.keep_artifacts:
            shutil.rmtree(out / "artifacts", ignore_errors=True)
    rep = render_report(paths, root / "report")
    print(f"report: {rep['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
