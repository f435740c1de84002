"""How the default training recipe was chosen: a grid of recipes for nin-cifar10 on the built-in
digits, each trained with ``nin_export.train.train`` exactly as ``nin-export train`` does, several
seeds each; per epoch validation top-1, final test top-1, and whether the loss stayed at chance (ln 10)
(the failure of a NiN whose final ReLU closes before global average pooling).

    python benchmarks/train_recipe.py                      # the full grid; on a GPU in minutes
    python benchmarks/train_recipe.py --quick              # the default recipe and the old one, CPU-friendly
    -> benchmarks/results/<machine>/train_recipe.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nin_export.core._io import write_json
from nin_export.core.envinfo import environment, machine_name
from nin_export.train import TrainOptions, train

GRID = {
    "optimizer_lr": [("adamw", 3e-4), ("adamw", 1e-3), ("adamw", 2e-3), ("sgd", 0.01), ("sgd", 0.05), ("sgd", 0.1)],
    "head_bias": [0.0, 0.1, 1.0],
    "dropout": [0.0, 0.5],
}
QUICK = {"optimizer_lr": [("adamw", 1e-3), ("adamw", 2e-3)], "head_bias": [0.0, 1.0], "dropout": [0.0, 0.5]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nin-cifar10")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--quick", action="store_true", help="a small grid (8 recipes)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    env = environment()
    out = Path(args.output or Path(__file__).parent / "results" / machine_name(env) / "train_recipe.json")
    grid = QUICK if args.quick else GRID
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    result = {
        "model": args.model,
        "data": args.data,
        "epochs": args.epochs,
        "seeds": seeds,
        "environment": env,
        "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in grid.items()},
        "runs": runs,
    }
    combos = list(itertools.product(grid["optimizer_lr"], grid["head_bias"], grid["dropout"]))
    with tempfile.TemporaryDirectory() as tmp:
        for n, ((opt, lr), hb, do) in enumerate(combos, 1):
            per_seed = []
            for seed in seeds:
                o = TrainOptions(
                    epochs=args.epochs, patience=None, optimizer=opt, lr=lr, head_bias=hb, dropout=do, seed=seed, device=args.device
                )
                t0 = time.perf_counter()
                meta = train(args.model, args.data, Path(tmp) / "ckpt.pt", o)
                per_seed.append(
                    {
                        "seed": seed,
                        "test_top1": meta["accuracy"]["test_top1"],
                        "val_top1": [h["val_top1"] for h in meta["history"]],
                        "train_loss": [round(h["train_loss"], 4) for h in meta["history"]],
                        "stuck": meta["history"][-1]["train_loss"] > 2.2,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "device": meta["device"],
                    }
                )
            accs = [r["test_top1"] for r in per_seed]
            row = {
                "optimizer": opt,
                "lr": lr,
                "head_bias": hb,
                "dropout": do,
                "test_top1_mean": float(np.mean(accs)),
                "test_top1_min": float(np.min(accs)),
                "stuck": sum(r["stuck"] for r in per_seed),
                "seeds": per_seed,
            }
            runs.append(row)
            print(
                f"[{n}/{len(combos)}] {opt} lr {lr:g} head_bias {hb:g} dropout {do:g}: test top-1 mean {row['test_top1_mean']:.3f} "
                f"min {row['test_top1_min']:.3f}, stuck at chance {row['stuck']}/{len(seeds)}",
                file=sys.stderr,
                flush=True,
            )
            write_json(out, result)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
