"""Per-layer INT8 sensitivity and the mixed-precision search that keeps the most sensitive layers in float.

One layer at a time is quantized (its activation and weight inputs), the rest stays float, and the
graph is compared with the FP32 parent on held-out images: top-1 agreement and the signal-to-
quantization-noise ratio of the logits (SQNR, dB). Layers rank by agreement, then by SQNR, worst first.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TypedDict

import numpy as np
import onnx

from ..core._format import share
from ..core._io import atomic_path, check_outputs, write_json
from ..core.errors import VerificationError

__all__ = [
    "LayerSensitivity",
    "Sensitivity",
    "Fidelity",
    "fidelity",
    "rank_layers",
    "keep_float_until",
    "write_sensitivity",
    "share",
    "SENSITIVITY_STEM",
    "sensitivity_paths",
    "sensitivity_outputs",
]

Progress = Callable[[str], None]
Run = Callable[[onnx.ModelProto], np.ndarray]  # a graph's logits on the held-out images


def sqnr_db(ref: np.ndarray, out: np.ndarray) -> float:
    """10 log10(signal power / noise power) of ``out`` against ``ref``; inf when they are equal."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    noise = float(((ref - out) ** 2).sum())
    return math.inf if noise == 0 else 10.0 * math.log10(max(float((ref**2).sum()), 1e-30) / noise)


class Fidelity(TypedDict):
    """How close a graph's outputs come to the reference's: what ``fidelity`` returns."""

    top1_agreement: float
    sqnr_db: float  # inf when they are equal
    top1_accuracy: float | None  # None without labels


def fidelity(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None) -> Fidelity:
    """Top-1 agreement with ``ref``, SQNR (dB) and, with labels, top-1 accuracy."""
    return {
        "top1_agreement": float((ref.argmax(1) == out.argmax(1)).mean()),
        "sqnr_db": sqnr_db(ref, out),
        "top1_accuracy": None if labels is None else float((out.argmax(1) == labels).mean()),
    }


@dataclass
class LayerSensitivity:
    node: str
    op_type: str
    params: int
    top1_agreement: float  # with this layer alone in INT8
    sqnr_db: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sqnr_db"] = None if math.isinf(self.sqnr_db) else round(self.sqnr_db, 3)
        return d


@dataclass
class Sensitivity:
    model: str
    source: str  # the ONNX analysed (file name)
    calib_method: str
    calib_images: int
    eval_images: int
    data: str
    full_int8: Fidelity  # every layer quantized
    fp32_accuracy: float | None
    layers: list[LayerSensitivity] = field(default_factory=list)  # most sensitive first

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [x.to_dict() for x in self.layers]
        d["full_int8"] = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in self.full_int8.items()}
        return d


def _params(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    init = {i.name: i for i in model.graph.initializer}
    return sum(int(np.prod(init[i].dims)) for i in node.input[1:] if i in init)


def rank_layers(
    parent: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    only: Callable[[str], onnx.ModelProto],
    run: Run,
    ref: np.ndarray,
    say: Progress,
) -> list[LayerSensitivity]:
    """Quantize each of ``nodes`` alone (``only(name)`` makes that graph); most sensitive first."""
    rows = []
    for k, n in enumerate(nodes, 1):
        say(f"layer {k}/{len(nodes)}: {n.name} ({n.op_type}) alone in INT8")
        f = fidelity(ref, run(only(n.name)))
        rows.append(LayerSensitivity(n.name, n.op_type, _params(parent, n), f["top1_agreement"], f["sqnr_db"]))
    return sorted(rows, key=lambda r: (r.top1_agreement, r.sqnr_db))


def keep_float_until(
    target: float,
    ranking: list[LayerSensitivity],
    excluding: Callable[[list[str]], onnx.ModelProto],
    run: Run,
    ref: np.ndarray,
    say: Progress,
) -> tuple[list[str], onnx.ModelProto, float]:
    """Keep the most sensitive layers in float, one more at a time, until top-1 agreement reaches
    ``target``. Returns (layers kept in float, the graph, its agreement)."""
    kept: list[str] = []
    for layer in ranking[:-1]:  # all of them in float would be the FP32 graph again
        kept.append(layer.node)
        graph = excluding(kept)
        agree = fidelity(ref, run(graph))["top1_agreement"]
        say(f"{len(kept)} layer(s) in float (+{layer.node}): top-1 agreement {agree:.1%}")
        if agree >= target:
            return kept, graph, agree
    raise VerificationError(
        f"top-1 agreement stays below {share(target)} with all but one of {len(ranking)} layers in float: INT8 gains "
        f"nothing here; lower --min-agreement, try another --calib-method or more calibration images, or use --fp16"
    )


# --- writing -------------------------------------------------------------------------------------


def _markdown(s: Sensitivity) -> str:
    full = s.full_int8
    lines = [
        f"# INT8 sensitivity of {s.model}",
        "",
        f"{s.source}, calibrated ({s.calib_method}) on {s.calib_images} images, compared with FP32 on "
        f"{s.eval_images} held-out images of {s.data}. Each row quantizes that layer alone; the rest stays float.",
        "",
        f"Every layer in INT8: top-1 agreement {full['top1_agreement']:.1%}, SQNR {_db(full['sqnr_db'])}"
        + (f", accuracy {full['top1_accuracy']:.1%} (FP32 {s.fp32_accuracy:.1%})" if full.get("top1_accuracy") is not None else ""),
        "",
        "| rank | layer | op | params | top-1 agreement | SQNR (dB) |",
        "|---:|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {i} | `{r.node}` | {r.op_type} | {r.params:,} | {r.top1_agreement:.1%} | {_db(r.sqnr_db)} |"
        for i, r in enumerate(s.layers, 1)
    ]
    lines += [
        "",
        "Keep the top rows in float with `--exclude LAYER`, or let `--min-agreement P` choose them in this order.",
        "",
    ]
    return "\n".join(lines)


def _db(v: float | None) -> str:
    return "inf" if v is None or math.isinf(v) else f"{v:.1f}"


def _chart(s: Sensitivity, path: Path) -> Path:
    from ..core.plot import pyplot, save_figure

    plt = pyplot()
    rows = s.layers
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    y = np.arange(len(rows))[::-1]
    drop = [100 * (1 - r.top1_agreement) for r in rows]
    ax1.barh(y, drop, color="#c0392b")
    ax1.set_yticks(y, [f"{r.node} ({r.op_type})" for r in rows], fontsize=8)
    ax1.set_xlabel("top-1 disagreement with FP32 (%), this layer alone in INT8")
    finite = [r.sqnr_db for r in rows if not math.isinf(r.sqnr_db)]
    cap = (max(finite) + 5) if finite else 60.0
    ax2.barh(y, [min(r.sqnr_db, cap) for r in rows], color="#2c7fb8")
    ax2.set_xlabel("logit SQNR (dB), higher is safer")
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"INT8 sensitivity, {s.model} ({s.eval_images} held-out images); most sensitive at the top", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


SENSITIVITY_STEM = "sensitivity"  # the files' name: sensitivity.json, .md and .png


def sensitivity_paths(out_dir: Path, stem: str = SENSITIVITY_STEM) -> list[Path]:
    """The JSON, Markdown and chart ``write_sensitivity`` writes under ``out_dir``."""
    return [out_dir / f"{stem}.{ext}" for ext in ("json", "md", "png")]


def sensitivity_outputs(src: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Where the ranking of the model ``src`` goes: ``out_dir``, or <name>.sensitivity/ beside the model
    (model.sim.onnx -> model.sim.sensitivity/); its files are checked writable, and not ``src``, before any work."""
    src = Path(src)
    out = Path(out_dir) if out_dir else src.with_name(src.name.removesuffix(".onnx") + ".sensitivity")
    check_outputs(sensitivity_paths(out), [src])
    return out


def write_sensitivity(s: Sensitivity, out_dir: Path, stem: str = SENSITIVITY_STEM) -> list[Path]:
    """JSON, Markdown and a bar chart under ``out_dir``; each written whole or not at all."""
    paths = sensitivity_paths(out_dir, stem)
    check_outputs(paths)
    write_json(paths[0], dict(s.to_dict(), schema="nin-export/sensitivity/1"))
    with atomic_path(paths[1], suffix=".md") as tmp:
        tmp.write_text(_markdown(s))
    _chart(s, paths[2])
    return paths
