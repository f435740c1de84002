"""Reports rendered from benchmark JSON: Markdown (NiN vs its twin side by side, with ratios),
CSV, and PNG plots. Several result files (say a Jetson's and a desktop's) merge into one report."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..core._format import fmt_bytes
from ..core._io import atomic_path, check_outputs, ensure_dir
from ..core.plot import pyplot, save_figure
from ..core.precision import PRECISIONS
from ..models.summary import WEIGHT_BYTES_RULE
from .results import load_results

__all__ = ["render_report", "pair_ratios", "headline"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return (a / b) if a and b else None


def _fmt(x: Any, kind: str = "") -> str:
    if x is None:
        return "-"
    if kind == "bytes":
        return fmt_bytes(x, digits=1)
    if kind == "ratio":
        return f"{x:.2f}x"
    if kind == "int":
        return f"{int(x):,}"
    if kind == "pct":
        return f"{x:.1%}"
    if isinstance(x, float):
        return f"{x:.3g}" if x < 100 else f"{x:,.0f}"
    return str(x)


def _ok_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in res["rows"] if r["status"] == "ok"]


def pair_ratios(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per backend x precision x batch measured for both models: the two rows and twin/NiN ratios."""
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    index = {(r["model"], r["backend"], r["precision"], r["batch"]): r for r in _ok_rows(res)}
    out = []
    for (m, backend, prec, batch), a in index.items():
        if m != model or (baseline, backend, prec, batch) not in index:
            continue
        b = index[(baseline, backend, prec, batch)]
        la, lb = a["latency_ms"], b["latency_ms"]
        out.append(
            {
                "backend": backend,
                "precision": prec,
                "batch": batch,
                "nin": a,
                "twin": b,
                "latency_ratio": _ratio(lb["median"], la["median"]),
                "throughput_ratio": _ratio(lb["images_per_s"], la["images_per_s"]),
                "rss_ratio": _ratio(b["memory"]["peak_rss_bytes"], a["memory"]["peak_rss_bytes"]),
                "rss_delta_ratio": _ratio(
                    b["memory"]["peak_rss_bytes"] - b["memory"]["rss_before_load_bytes"],
                    a["memory"]["peak_rss_bytes"] - a["memory"]["rss_before_load_bytes"],
                ),
                "weight_ratio": _ratio(b["weight_bytes"], a["weight_bytes"]),
                "artifact_ratio": _ratio((b["artifact"] or {}).get("bytes"), (a["artifact"] or {}).get("bytes")),
            }
        )
    return sorted(out, key=lambda e: (e["backend"], e["precision"], e["batch"]))


def _accuracy_table(accuracy: dict[str, dict[str, Any]]) -> list[str]:
    """Per model and artifact: top-1/top-5 from 'nin-export eval' on the held-out split."""
    lines = ["| model | artifact | top-1 | top-5 | held-out images |", "|---|---|---:|---:|---:|"]
    for model, arts in accuracy.items():
        for label, r in arts.items():
            if not r or "top1" not in r:
                lines.append(f"| {model} | {label} | - | - | {(r or {}).get('reason', 'not evaluated')} |")
                continue
            lines.append(
                f"| {model} | {label} (`{r['artifact']}`) | {_fmt(r['top1'], 'pct')} | {_fmt(r.get('top5'), 'pct')} | "
                f"{r['samples']} of {r['data']} |"
            )
    return lines


def _relative(path: str, out: Path) -> str:
    """``path`` as seen from the report's directory: no report names a machine's absolute paths."""
    try:
        return os.path.relpath(Path(path).resolve(), out.resolve())
    except ValueError:  # another drive (Windows)
        return Path(path).name


def _env_table(results: list[dict[str, Any]], out: Path) -> list[str]:
    lines = [
        "| machine | CPU | cores | GPU | TensorRT | onnxruntime | torch | Jetson | results |",
        "|---|---|---:|---|---|---|---|---|---|",
    ]
    for res in results:
        e = res["environment"]
        gpu = e.get("gpu") or {}
        gpu_s = f"{gpu.get('name')} (cc {gpu.get('compute_capability')}, driver {gpu.get('driver', '?')})" if gpu else "none"
        trt = ", ".join(f"{k} {v}" for k, v in (e.get("tensorrt") or {}).items()) or "none"
        j = e.get("jetson")
        js = f"{j.get('model')}, nvpmodel {j.get('nvpmodel', '?')}, jetson_clocks {j.get('jetson_clocks', '?')}" if j else "-"
        v = e.get("versions", {})
        lines.append(
            f"| {res['machine']} | {e.get('cpu')} | {e.get('cpu_cores')} | {gpu_s} | {trt} | {v.get('onnxruntime', '-')} | "
            f"{v.get('torch', '-')} | {js} | `{_relative(res['source'], out)}` ({res['created']}) |"
        )
    return lines


def _field(d: dict[str, Any], key: str | tuple[str, str]) -> Any:
    """``d[key]``, or ``d[key[0]][key[1]]`` for a pair of keys; None where missing."""
    return d.get(key) if isinstance(key, str) else (d.get(key[0]) or {}).get(key[1])


def _models_table(res: dict[str, Any]) -> list[str]:
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    a, b = res["models"].get(model, {}), res["models"].get(baseline, {})
    keys: list[tuple[str, str | tuple[str, str], str]] = [("parameters", "params", "int"), ("MACs per image", "macs", "int")]
    keys += [(f"weights {p}", ("weight_bytes", p), "bytes") for p in (p.value for p in PRECISIONS)]
    art = sorted(set(a.get("artifact_bytes", {})) | set(b.get("artifact_bytes", {})))
    keys += [(f"file {k}", ("artifact_bytes", k), "bytes") for k in art]
    acc_a = (a.get("reference") or {}).get("fp32_torch_accuracy")
    acc_b = (b.get("reference") or {}).get("fp32_torch_accuracy")
    lines = [
        f"| | {model} | {baseline} | {baseline} / {model} |",
        "|---|---:|---:|---:|",
        f"| weights | {a.get('weights', '-')} | {b.get('weights', '-')} | |",
    ]
    for label, key, kind in keys:
        va, vb = _field(a, key), _field(b, key)
        lines.append(f"| {label} | {_fmt(va, kind)} | {_fmt(vb, kind)} | {_fmt(_ratio(vb, va), 'ratio')} |")
    if acc_a is not None:
        ref = a.get("reference", {})
        lines.append(
            f"| FP32 accuracy on {ref.get('samples')} held-out {ref.get('data')} | {_fmt(acc_a, 'pct')} | {_fmt(acc_b, 'pct')} | |"
        )
    return lines


_CLOCKS = {
    "host": "host clock: host to host around one inference (CPU runtimes, onnxruntime's GPU providers)",
    "cuda-events": "GPU compute time between CUDA events on the runner's stream (trtexec's GPU Compute Time)",
}


def row_clock(r: dict[str, Any]) -> str:
    """The clock a row's latencies are on (results written before rows named it: GPU splits mean events)."""
    return (r.get("latency_ms") or {}).get("clock") or ("cuda-events" if r.get("gpu_split") else "host")


def _side_by_side(res: dict[str, Any]) -> list[str]:
    """One table per clock: host-clock latencies and GPU-event latencies never share a column. img/s is over
    the timed loop's wall time on every row."""
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    lines: list[str] = []
    pairs = pair_ratios(res)
    for clock, what in _CLOCKS.items():
        rows = [e for e in pairs if row_clock(e["nin"]) == clock]
        if not rows:
            continue
        lines += [
            f"Latency on the {what}; img/s over wall time.",
            "",
            f"| backend | precision | batch | median ms {model} | {baseline} | ratio | img/s {model} | {baseline} | ratio | "
            f"peak RSS {model} | {baseline} | ratio | p99 ms {model} | {baseline} | agreement {model} | {baseline} | "
            f"accuracy {model} | {baseline} |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(_side_by_side_line(e) for e in rows),
            "",
        ]
    return lines


def _side_by_side_line(e: dict[str, Any]) -> str:
    a, b = e["nin"], e["twin"]
    qa, qb = a.get("quality") or {}, b.get("quality") or {}
    return (
        f"| {e['backend']} | {e['precision']} | {e['batch']} | {_fmt(a['latency_ms']['median'])} | "
        f"{_fmt(b['latency_ms']['median'])} | {_fmt(e['latency_ratio'], 'ratio')} | {_fmt(a['latency_ms']['images_per_s'])} | "
        f"{_fmt(b['latency_ms']['images_per_s'])} | "
        f"{_fmt(e['throughput_ratio'], 'ratio')} | {_fmt(a['memory']['peak_rss_bytes'], 'bytes')} | "
        f"{_fmt(b['memory']['peak_rss_bytes'], 'bytes')} | {_fmt(e['rss_ratio'], 'ratio')} | {_fmt(a['latency_ms']['p99'])} | "
        f"{_fmt(b['latency_ms']['p99'])} | {_fmt(qa.get('top1_agreement'), 'pct')} | {_fmt(qb.get('top1_agreement'), 'pct')} | "
        f"{_fmt(qa.get('accuracy'), 'pct')} | {_fmt(qb.get('accuracy'), 'pct')} |"
    )


_DEVICE_MEMORY = (
    ("gpu_peak_allocated_bytes", "peak GPU memory allocated by PyTorch"),
    ("engine_device_memory_bytes", "TensorRT engine device memory"),
    ("nvml_process_bytes", "GPU memory NVML sees for the process (TensorRT's own included)"),
    ("nvmap_process_bytes", "NvMap buffers of the process (Jetson unified memory)"),
)


def _device_memory(res: dict[str, Any]) -> list[str]:
    """Per backend and precision, the GPU memory figures each job recorded (one job covers every batch,
    so the figure is the largest batch's), NiN and twin side by side; [] where none was recorded."""
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    seen: dict[tuple[str, str, str], dict[str, int]] = {}
    for r in _ok_rows(res):
        for key, label in _DEVICE_MEMORY:
            v = (r.get("memory") or {}).get(key)
            if v is not None:
                seen.setdefault((r["backend"], r["precision"], label), {})[r["model"]] = v
    if not seen:
        return []
    lines = [
        "### Device memory",
        "",
        f"| backend | precision | figure | {model} | {baseline} | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for (backend, prec, label), v in sorted(seen.items()):
        a, b = v.get(model), v.get(baseline)
        lines.append(f"| {backend} | {prec} | {label} | {_fmt(a, 'bytes')} | {_fmt(b, 'bytes')} | {_fmt(_ratio(b, a), 'ratio')} |")
    return lines + [""]


def _gpu_split(res: dict[str, Any]) -> list[str]:
    """GPU rows: enqueue, H2D, compute, D2H and latency medians over every timed iteration, wall-time and
    compute-only throughput, and trtexec's warnings."""
    rows = [r for r in _ok_rows(res) if r.get("gpu_split")]
    if not rows:
        return []
    lines = [
        "### GPU time split",
        "",
        "CUDA events on the runner's own stream around the copies and the compute, two iterations in flight, "
        "every timed iteration (medians, ms). Latency is H2D + compute + D2H (trtexec's Latency); enqueue is the "
        "host's time to enqueue one iteration (trtexec's Enqueue Time). img/s (wall) is over the timed loop's "
        "wall time (trtexec's Throughput); img/s (compute) is batch / mean GPU compute time, an upper bound.",
        "",
        "| model | backend | precision | batch | CUDA graph | enqueue | H2D | compute | D2H | latency | img/s (wall) | "
        "img/s (compute) | img/s over N streams | warnings |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        g, ms, lat = r["gpu_split"], r.get("multi_stream") or {}, r["latency_ms"]
        streams = f" ({ms['streams']})" if ms else ""
        med = {k: (g.get(k) or {}).get("median") for k in ("enqueue_ms", "h2d_ms", "compute_ms", "d2h_ms", "host_latency_ms")}
        graph = "yes" if g.get("cuda_graph") else ("no: " + g["cuda_graph_note"] if g.get("cuda_graph_note") else "no")
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | {graph} | "
            + " | ".join(_fmt(v) for v in med.values())
            + f" | {_fmt(lat.get('images_per_s'))} | {_fmt(lat.get('compute_images_per_s'))} | "
            + f"{_fmt(ms.get('images_per_s'))}{streams} | "
            + ("; ".join(g.get("warnings") or []) or "-")
            + " |"
        )
    return lines + [""]


def _not_measured(res: dict[str, Any]) -> list[str]:
    groups: dict[tuple, list[int]] = {}
    for r in res["rows"]:
        if r["status"] != "ok":
            groups.setdefault((r["model"], r["backend"], r["precision"], r["status"], r["reason"]), []).append(r["batch"])
    if not res["rows"]:
        return ["No row was measured: the run stopped before its first row."]
    if not groups:
        return ["Every row was measured."]
    lines = ["| model | backend | precision | batches | status | reason |", "|---|---|---|---|---|---|"]
    for (m, b, p, st, why), batches in groups.items():
        lines.append(f"| {m} | {b} | {p} | {', '.join(map(str, batches))} | {st} | {why} |")
    return lines


def _pair_models(res: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and the baseline's records; {} for one a stopped run never reached (Ctrl-C keeps what it has)."""
    models = res["models"]
    return models.get(res["config"]["model"]) or {}, models.get(res["config"]["baseline"]) or {}


def headline(res: dict[str, Any]) -> dict[str, Any]:
    """The figures the README quotes: twin / NiN for params, fp32 weight bytes, fp32 file size, and the
    median-latency and peak-RSS ratios of the first backend at batch 1."""
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    a, b = _pair_models(res)
    h: dict[str, Any] = {
        "model": model,
        "baseline": baseline,
        "machine": res["machine"],
        "params_ratio": _ratio(b.get("params"), a.get("params")),
        "macs_ratio": _ratio(b.get("macs"), a.get("macs")),
        "fp32_weight_ratio": _ratio((b.get("weight_bytes") or {}).get("fp32"), (a.get("weight_bytes") or {}).get("fp32")),
        "onnx_fp32_ratio": _ratio(
            (b.get("artifact_bytes") or {}).get("onnx-fp32"), (a.get("artifact_bytes") or {}).get("onnx-fp32")
        ),
    }
    pairs = [e for e in pair_ratios(res) if e["batch"] == min(res["config"]["batches"])]
    h["latency_ratio_batch1"] = {f"{e['backend']}/{e['precision']}": e["latency_ratio"] for e in pairs}
    h["rss_ratio_batch1"] = {f"{e['backend']}/{e['precision']}": e["rss_ratio"] for e in pairs}
    return h


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


_ROW_KEYS = "model role backend device precision batch status reason params macs_per_image weight_bytes".split()
_LAT_KEYS = "median mean min p90 p95 p99 max".split()
_MEM_KEYS = "peak_rss_bytes rss_before_load_bytes engine_device_memory_bytes gpu_peak_allocated_bytes".split()
_QUALITY_KEYS = "top1_agreement cosine accuracy".split()
CSV_COLUMNS = [
    "machine",
    *_ROW_KEYS,
    "artifact_bytes",
    *(f"{k}_ms" for k in _LAT_KEYS),
    "clock",
    "images_per_s",
    "compute_images_per_s",
    "iterations",
    *_MEM_KEYS,
    *_QUALITY_KEYS,
    "threads",
]


def _csv_row(machine: str, r: dict[str, Any]) -> dict[str, Any]:
    lat, mem, q = r.get("latency_ms") or {}, r.get("memory") or {}, r.get("quality") or {}
    return {
        "machine": machine,
        **{k: r.get(k) for k in _ROW_KEYS},
        "artifact_bytes": (r.get("artifact") or {}).get("bytes"),
        **{f"{k}_ms": lat.get(k) for k in _LAT_KEYS},
        "clock": row_clock(r) if lat else None,
        "images_per_s": lat.get("images_per_s"),
        "compute_images_per_s": lat.get("compute_images_per_s"),
        "iterations": lat.get("iterations"),
        **{k: mem.get(k) for k in _MEM_KEYS},
        **{k: q.get(k) for k in _QUALITY_KEYS},
        "threads": r.get("threads"),
    }


def _csv(results: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for res in results:
            for r in res["rows"]:
                w.writerow(_csv_row(res["machine"], r))


def _latency_vs_batch(results: list[dict[str, Any]], out: Path) -> Path | None:
    """One panel per backend x precision, one line per machine x model."""

    panels = sorted({(r["backend"], r["precision"]) for res in results for r in _ok_rows(res)})
    if not panels:
        return None
    plt = pyplot()
    cols = min(3, len(panels))
    fig, axes = plt.subplots(
        (len(panels) + cols - 1) // cols, cols, figsize=(5 * cols, 3.8 * ((len(panels) + cols - 1) // cols)), squeeze=False
    )
    batches = sorted({r["batch"] for res in results for r in _ok_rows(res)})
    colours = _pair_colours(results, plt)
    for ax, (backend, prec) in zip(axes.flat, panels):
        for res in results:
            colour = colours[(res["machine"], res["config"]["model"])]
            for model in (res["config"]["model"], res["config"]["baseline"]):
                pts = sorted(
                    (r["batch"], r["latency_ms"]["median"])
                    for r in _ok_rows(res)
                    if r["model"] == model and r["backend"] == backend and r["precision"] == prec
                )
                if pts:
                    style = "-o" if res["models"][model]["head"] == "gap" else "--s"
                    label = f"{model} ({res['machine']})" if len(results) > 1 else model
                    ax.plot(*zip(*pts), style, color=colour, label=label, mfc="none" if style == "--s" else colour)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches, [str(b) for b in batches])
        _label_log_axis(ax.yaxis, *ax.get_ylim())
        clock = next(row_clock(r) for res in results for r in _ok_rows(res) if (r["backend"], r["precision"]) == (backend, prec))
        ylabel = "median GPU compute (ms, CUDA events)" if clock == "cuda-events" else "median latency (ms, host clock)"
        ax.set(title=f"{backend} {prec}", xlabel="batch", ylabel=ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Latency vs batch: one colour per model pair; NiN solid, FC-headed twin dashed and hollow")
    fig.tight_layout()
    return save_figure(fig, out / "latency_vs_batch.png")


def _size_bars(res: dict[str, Any], out: Path) -> Path:
    """Parameters and file sizes, NiN vs twin, labelled with the ratio."""
    plt = pyplot()
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    a, b = _pair_models(res)
    keys = [k for k in sorted(a.get("artifact_bytes", {})) if k in b.get("artifact_bytes", {})]
    labels = ["params (M)"] + [f"{k} (MiB)" for k in keys]
    va = [(a.get("params") or 0) / 1e6] + [a["artifact_bytes"][k] / 2**20 for k in keys]
    vb = [(b.get("params") or 0) / 1e6] + [b["artifact_bytes"][k] / 2**20 for k in keys]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], va, 0.4, label=model)
    ax.bar([i + 0.2 for i in x], vb, 0.4, label=baseline)
    for i, (p, q) in enumerate(zip(va, vb)):
        ax.text(i + 0.2, q, f"{q / p:.1f}x" if p else "", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="millions / MiB", title=f"Size: {model} vs {baseline} (label: twin / NiN)")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out / "size_bars.png")


_PRECISION_MARKERS = {p.value: info.marker for p, info in PRECISIONS.items()}


def _label_log_axis(axis: Any, lo: float, hi: float) -> None:
    """Plain numbers on a log axis; the minor ticks labelled too when the range spans less than ~a decade."""
    import matplotlib.ticker

    axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    narrow = lo > 0 and hi / lo < 50
    axis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g") if narrow else matplotlib.ticker.NullFormatter())
    axis.set_tick_params(which="minor", labelsize=7)


def _pair_colours(results: list[dict[str, Any]], plt: Any) -> dict[tuple[str, str], Any]:
    """One colour per machine x model pair, the same in every plot."""
    pairs = sorted({(res["machine"], res["config"]["model"]) for res in results})
    return {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(pairs)}


def _pair_plot(
    results: list[dict[str, Any]], y_of: Any, ylabel: str, title: str, path: Path, ylog: bool = True, diff: bool = False
) -> Path | None:
    """Batch-1 rows, one panel per backend: one colour per machine x model pair, a marker per precision,
    NiN filled and its twin hollow, a line from NiN to twin labelled with the twin/NiN ratio of ``y_of``."""

    points = [(res, r) for res in results for r in _ok_rows(res) if r["batch"] == min(res["config"]["batches"]) and y_of(r)]
    if not points:
        return None
    plt = pyplot()
    backends = sorted({r["backend"] for _, r in points})
    pairs = sorted({(res["machine"], res["config"]["model"]) for res, _ in points})
    colours = _pair_colours(results, plt)
    fig, axes = plt.subplots(1, len(backends), figsize=(max(4.6 * len(backends), 8.0), 4.6), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        for res in results:
            colour, nin = colours.get((res["machine"], res["config"]["model"])), res["config"]["model"]
            index = {(r["model"], r["precision"]): r for rr, r in points if rr is res and r["backend"] == backend}
            for prec, marker in _PRECISION_MARKERS.items():
                a, b = index.get((nin, prec)), index.get((res["config"]["baseline"], prec))
                for r, filled in ((a, True), (b, False)):
                    if r is not None:
                        ax.scatter(r["latency_ms"]["median"], y_of(r), marker=marker, s=55, color=colour if filled else "none",
                                   edgecolors=colour, linewidths=1.5)  # fmt: skip
                if a is not None and b is not None:
                    xa, ya, xb, yb = a["latency_ms"]["median"], y_of(a), b["latency_ms"]["median"], y_of(b)
                    ax.plot([xa, xb], [ya, yb], color=colour, lw=0.8, alpha=0.6)
                    label = f"{yb - ya:+.1f}" if diff else f"{yb / ya:.1f}x"
                    ax.annotate(label, ((xa * xb) ** 0.5, (ya + yb) / 2 if diff else (ya * yb) ** 0.5), fontsize=7, color=colour)
        ax.set(xscale="log", yscale="log" if ylog else "linear", xlabel="median latency, batch 1 (ms)", title=backend)
        _label_log_axis(ax.xaxis, *ax.get_xlim())
        if ylog:
            _label_log_axis(ax.yaxis, *ax.get_ylim())
        ax.grid(True, which="both", alpha=0.25)
    axes[0][0].set_ylabel(ylabel)
    handles = [plt.Line2D([], [], color=colours[p], lw=3, label=f"{p[1]} pair ({p[0]})") for p in pairs]
    handles += [plt.Line2D([], [], ls="", marker=m, color="grey", label=prec) for prec, m in _PRECISION_MARKERS.items()]
    handles += [
        plt.Line2D([], [], ls="", marker="o", color="grey", label="NiN (filled)"),
        plt.Line2D([], [], ls="", marker="o", mfc="none", color="grey", label="FC twin (hollow)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=7, frameon=False)
    fig.suptitle(title + (" (labels: twin - NiN)" if diff else " (labels: twin / NiN)"), fontsize=10)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return save_figure(fig, path)


def _memory_mib(r: dict[str, Any]) -> float:
    """GPU memory for a CUDA row where one was recorded (NVML's per-process figure first), else peak RSS."""
    m = r.get("memory") or {}
    if r.get("device") == "cuda":
        for key in ("nvml_process_bytes", "gpu_peak_allocated_bytes", "engine_device_memory_bytes"):
            if m.get(key):
                return m[key] / 2**20
    return m.get("peak_rss_bytes", 0) / 2**20


def _memory_vs_latency(results: list[dict[str, Any]], out: Path) -> Path | None:
    return _pair_plot(
        results,
        _memory_mib,
        "memory (MiB)",
        "Memory vs latency: GPU memory on CUDA rows, peak RSS of the runner's process elsewhere",
        out / "memory_vs_latency.png",
    )


def _mj_per_image(r: dict[str, Any]) -> float | None:
    return (r.get("energy") or {}).get("mj_per_image")


def _energy_vs_latency(results: list[dict[str, Any]], out: Path) -> Path | None:
    return _pair_plot(results, _mj_per_image, "energy per image, gross (mJ)", "Energy vs latency", out / "energy_vs_latency.png")


def _energy(res: dict[str, Any]) -> list[str]:
    """Energy per image, NiN and twin side by side, where a power source was sampled; else why not."""
    model, baseline = res["config"]["model"], res["config"]["baseline"]
    rows = [e for e in pair_ratios(res) if _mj_per_image(e["nin"]) and _mj_per_image(e["twin"])]
    if not rows:
        reasons = {why for r in _ok_rows(res) if (why := (r.get("energy") or {}).get("reason")) is not None}
        return ["### Energy", "", "Not measured: " + ("; ".join(sorted(reasons)) or "no power source was sampled") + ".", ""]
    src = rows[0]["nin"]["energy"]["source"]
    lines = [
        "### Energy",
        "",
        f"Source: {src}. Energy per image is the energy drawn over the timed loop (warm-up excluded) divided by the "
        f"images inferred in it, so it follows wall-time throughput. {_idle_note(res)}",
        "",
        f"| backend | precision | batch | mJ/image {model} | {baseline} | ratio | net mJ/image {model} | {baseline} | "
        f"images/J {model} | {baseline} | mean W {model} | {baseline} | idle W |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in rows:
        a, b = e["nin"]["energy"], e["twin"]["energy"]
        lines.append(
            f"| {e['backend']} | {e['precision']} | {e['batch']} | {_fmt(a['mj_per_image'])} | {_fmt(b['mj_per_image'])} | "
            f"{_fmt(_ratio(b['mj_per_image'], a['mj_per_image']), 'ratio')} | {_fmt(a['mj_per_image_net'])} | "
            f"{_fmt(b['mj_per_image_net'])} | {_fmt(a['images_per_joule'])} | {_fmt(b['images_per_joule'])} | "
            f"{_fmt(a['mean_watts'])} | {_fmt(b['mean_watts'])} | {_fmt(a['idle_watts'])} |"
        )
    return lines + [""]


def _idle_note(res: dict[str, Any]) -> str:
    idle = [v for v in (res.get("idle_power") or {}).values() if v.get("watts") is not None]
    if not idle:
        return (
            "Idle power was measured before each row; net subtracts it."
            if not res.get("idle_power")
            else "No idle power: no net figure."
        )
    parts = [
        f"{v['watts']:.2f} W over {v['window_s']:g} s after {v['settle_s']:g} s quiet"
        + (f", a sample every {v['interval_s']:g} s" if v.get("interval_s") else ", energy counter")
        for v in idle
    ]
    return "Idle power, measured once before any work: " + "; ".join(parts) + ". Net subtracts it."


def _accuracy_vs_latency(results: list[dict[str, Any]], out: Path) -> Path | None:
    """Rows measured with labelled reference data (trained weights: random ones score chance)."""

    def acc(r: dict[str, Any]) -> float | None:
        a = (r.get("quality") or {}).get("accuracy")
        return None if a is None else 100 * a

    return _pair_plot(
        results, acc, "top-1 accuracy on held-out images (%)", "Accuracy vs latency", out / "accuracy_vs_latency.png", False, True
    )


_PLOT_NAMES = ("latency_vs_batch", "size_bars", "memory_vs_latency", "energy_vs_latency", "accuracy_vs_latency")


def _plots(results: list[dict[str, Any]], out: Path) -> list[Path]:
    made = [
        _latency_vs_batch(results, out),
        _size_bars(results[0], out),
        _memory_vs_latency(results, out),
        _energy_vs_latency(results, out),
        _accuracy_vs_latency(results, out),
    ]
    return [p for p in made if p is not None]


def _pair_section(res: dict[str, Any], h: dict[str, Any]) -> list[str]:
    """One machine's NiN vs twin: settings, headline, models, side-by-side rows, device memory, gaps."""
    cfg = res["config"]
    t = cfg["timing"]
    return [
        f"## {res['machine']}: {cfg['model']} vs {cfg['baseline']}",
        "",
        f"Backends {', '.join(cfg['backends'])}; precisions {', '.join(cfg['precisions'])}; batches "
        f"{', '.join(map(str, cfg['batches']))}; threads {cfg['threads'] or 'default'}; warm-up {t['warmup_ms']:g} ms, "
        f"at least {t['min_iters']} iterations and {t['min_ms']:g} ms per row.",
        "",
        f"**Headline:** the twin has {_fmt(h['params_ratio'], 'ratio')} the parameters, "
        f"{_fmt(h['fp32_weight_ratio'], 'ratio')} the FP32 weight bytes and {_fmt(h['macs_ratio'], 'ratio')} "
        f"the MACs of {cfg['model']}.",
        "",
        *["### Model and artifacts", "", *_models_table(res), ""],
        *["### Side by side (measured rows)", "", *_side_by_side(res), ""],
        *_device_memory(res),
        *_gpu_split(res),
        *_energy(res),
        *["### Not measured", "", *_not_measured(res), ""],
    ]


def render_report(
    paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, accuracy: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Write report.md, results.csv and PNG plots into ``out_dir``; return their paths and the headline.
    ``accuracy`` (model -> artifact -> evaluation, from the pipeline) adds a table of accuracy per artifact."""
    paths = list(paths)
    results = load_results(paths)
    out = ensure_dir(out_dir)
    names = ["report.md", "results.csv", "headline.json", *(f"{n}.png" for n in _PLOT_NAMES)]
    check_outputs([out / n for n in names], paths)
    md: list[str] = [
        "# nin-export benchmark: NiN vs its FC-headed twin",
        "",
        "Ratios are twin / NiN: above 1 the FC-headed twin is larger, slower or hungrier. Latencies are medians of "
        "trtexec-style runs (warm-up by time, then at least N iterations and T ms), each table on one clock (host, or "
        "GPU compute between CUDA events); images/s is over the timed loop's wall time on every row; peak RSS is that "
        "of a fresh process holding one runner. The " + WEIGHT_BYTES_RULE + ".",
        "",
        "## Machines",
        "",
        *_env_table(results, out),
        "",
    ]
    heads = [headline(res) for res in results]
    for res, h in zip(results, heads):
        md += _pair_section(res, h)
    if accuracy:
        md += [
            "## Accuracy of every artifact",
            "",
            "Top-1 and top-5 on the held-out part of the data's fixed split (the same images for every artifact).",
            "",
            *_accuracy_table(accuracy),
            "",
        ]
    plots = _plots(results, out)
    md += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    _write_text(out / "report.md", "\n".join(md))
    _csv(results, out / "results.csv")
    _write_text(out / "headline.json", json.dumps(heads, indent=2) + "\n")
    return {"markdown": out / "report.md", "csv": out / "results.csv", "plots": plots, "headline": heads}
