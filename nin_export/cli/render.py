"""Printing what the library returns: tables and one-line results, on the CLI's consoles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import JustifyMethod
from rich.markup import escape
from rich.table import Table

from ..core._format import fmt_bytes, fmt_int, fmt_macs
from ..trt import EngineInfo
from ._app import console, err_console, warn


def _table(title: str | None, columns: tuple[tuple[str, JustifyMethod], ...], **kw: Any) -> Table:
    table = Table(title=title, **kw)
    for col, just in columns:
        table.add_column(col, justify=just, no_wrap=True)
    return table


def _dims(shape: Any) -> str:
    return "x".join(map(str, shape))


def print_models(rows: list[tuple[str, Any, Any]]) -> None:
    """One row per (name, ModelSpec, Summary)."""
    right = ("classes", "params", "MACs", "fp32")
    table = _table(
        "nin-export models (defaults)",
        tuple((c, "right" if c in right else "left") for c in ("model", "head", "twin", "input", *right)),
    )
    for name, spec, s in rows:
        table.add_row(
            name,
            spec.head,
            spec.twin or "-",
            _dims((spec.in_channels, *spec.input_size)),
            str(spec.num_classes),
            fmt_int(s.params),
            fmt_macs(s.macs),
            fmt_bytes(s.params * 4),
        )
    console.print(table)
    console.print(
        "head gap: global average pooling, any input size from the smallest the trunk takes; "
        "head fc: fully connected, input size fixed when built (--input-size)."
    )


def print_summary(model: str, shape: tuple[int, int, int], s: Any, rule: str) -> None:
    cols: tuple[tuple[str, JustifyMethod], ...] = (
        ("layer", "left"),
        ("type", "left"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
    )
    table = Table(title=f"{model}: input {'x'.join(map(str, shape))}")
    for col, just in cols:
        table.add_column(col, justify=just)
    for layer in s.layers:
        table.add_row(
            layer.name,
            layer.type,
            _dims(layer.output_shape),
            fmt_int(layer.params) if layer.params else "",
            fmt_int(layer.macs) if layer.macs else "",
        )
    table.add_section()
    table.add_row("total", "", _dims(s.output_shape), fmt_int(s.params), fmt_int(s.macs))
    console.print(table)
    console.print(
        f"params {fmt_int(s.params)}, MACs {fmt_macs(s.macs)} per image; weights "
        + ", ".join(f"{p} {fmt_bytes(b)}" for p, b in s.weight_bytes().items())
    )
    console.print(f"({rule})")


def print_export(res: Any, tolerance: str, output_dir: str) -> None:
    for fname, agree in res.verification.items():
        console.print(f"[green]verified[/] {escape(fname)}: {agree.describe()}  (tolerance {tolerance})")
    if res.sim_path:
        console.print(f"nodes: {res.nodes} -> {res.sim_nodes} after onnxsim")
    console.print(
        escape(
            f"wrote {res.onnx_path}"
            + (f" and {res.sim_path}" if res.sim_path else "")
            + f"; manifest {Path(output_dir) / 'manifest.json'}"
        )
    )


def print_onnx(info: Any) -> None:
    console.print(escape(f"{info.path}") + f"  {fmt_bytes(info.bytes)}, opset {info.opset}, producer {escape(info.producer)}")
    for kind, items in (("input", info.inputs), ("output", info.outputs)):
        for io in items:
            console.print(escape(f"  {kind:6} {io['name']}: {io['dtype']} [{', '.join(map(str, io['shape']))}]"))
    declared = info.metadata.get("params")
    params = fmt_int(info.params)
    if isinstance(declared, int) and declared != info.params:
        params = f"{fmt_int(declared)} (model); {params} stored, identical initializers shared"
    console.print(f"  params {params}")
    console.print(
        escape(f"  {sum(info.op_histogram.values())} nodes: " + ", ".join(f"{op} x{n}" for op, n in info.op_histogram.items()))
    )
    if info.metadata:
        table = Table(title="metadata", show_header=False)
        table.add_column("key")
        table.add_column("value")
        for k, v in info.metadata.items():
            table.add_row(escape(k), escape(str(v)))
        console.print(table)


def print_plain_plan(path: str, plain: dict[str, Any]) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(plain['note'])}", soft_wrap=True)
    console.print(escape(f"{path}  {fmt_bytes(plain['bytes'])}, sha256 {plain['sha256'][:16]}..., plain plan (no sidecar)"))
    console.print(escape(f"  {plain['validity']}"))


def print_live(live: dict[str, Any] | None, why: str) -> None:
    if live is None:
        console.print(f"  [dim]engine not loaded: {escape(why)}[/]")
        return
    console.print(f"  device memory {fmt_bytes(live['device_memory_bytes'])}; {live['num_layers']} layers")
    for layer in live["layers"]:
        console.print(escape(f"    {layer}"))


def _targets(info: EngineInfo, built_here: bool) -> str:
    gpu = info.gpu or {}
    if info.targets:
        return ", ".join(info.targets)
    if built_here:
        return f"this GPU ({gpu.get('name')})"
    return f"{gpu.get('name')} (compute capability {gpu.get('compute_capability')})"


def print_sidecar(path: str, info: EngineInfo) -> None:
    console.print(
        escape(
            f"{path}  {fmt_bytes(info.bytes)}, {info.flavour.value} {info.trt_version}, {info.precision.value} "
            f"({info.precision_path})"
        )
    )
    console.print("  targets: " + _targets(info, built_here=False))
    for io in info.io:
        console.print(escape(f"  {io['mode']:6} {io['name']}: {io['dtype']} [{', '.join(map(str, io['shape']))}]"))
    print_profiles(info.profile)
    src = info.source_onnx
    console.print(
        escape(
            f"  from {src['file']} (sha256 {src['sha256'][:16]}...), built {info.created} in "
            f"{info.build_seconds} s by {info.producer or '?'}"
        )
    )


def print_profiles(profiles: dict[str, dict[str, list[int]]]) -> None:
    for name, p in profiles.items():
        console.print(escape(f"  profile {name}: min {_dims(p['min'])}, opt {_dims(p['opt'])}, max {_dims(p['max'])}"))


def print_build(res: Any) -> None:
    warn(res.notes)
    for step in res.steps:
        console.print(escape(step))
    i: EngineInfo = res.engine_info
    console.print(
        f"[green]built[/] {escape(str(res.engine))} ({fmt_bytes(i.bytes)}) with {i.flavour.value} {i.trt_version} in "
        f"{i.build_seconds:.1f} s: {i.precision.value} via {i.precision_path}"
    )
    console.print("  targets: " + _targets(i, built_here=True))
    print_profiles(i.profile)
    console.print(escape(f"  sidecar {res.sidecar}"))


def print_quantize(res: Any) -> None:
    warn(res.notes)
    a = res.agreement
    console.print(
        escape(
            f"checked {res.path.name} against {res.parent.name} on {a.n_samples} held-out images: "
            f"top-1 agreement {a.top1_agreement:.1%}, cosine {a.cosine:.6f}, max abs {a.max_abs:.3g}"
        )
    )
    if res.cache:
        console.print(escape(f"calibration cache: {res.cache}"))
    if res.float_layers:
        console.print(escape(f"kept in float: {', '.join(f['node'] for f in res.float_layers)}"))
    console.print(
        escape(
            f"wrote {res.path} ({fmt_bytes(res.path.stat().st_size)}, parent {fmt_bytes(res.parent.stat().st_size)}); "
            f"manifest {res.path.parent / 'manifest.json'}"
        )
    )


def print_sensitivity(s: Any, paths: list[Path]) -> None:
    full = s.full_int8
    console.print(escape(f"every layer in INT8: top-1 agreement {full['top1_agreement']:.1%}, SQNR {full['sqnr_db']:.1f} dB"))
    for i, r in enumerate(s.layers[:5], 1):
        console.print(escape(f"  {i}. {r.node} ({r.op_type}): agreement {r.top1_agreement:.1%}, SQNR {r.sqnr_db:.1f} dB"))
    console.print(escape("wrote " + ", ".join(str(p) for p in paths)))


def print_doctor(doc: dict[str, Any]) -> None:
    caps = doc["capabilities"]
    gpu = caps.get("gpu") or {}
    jetson = caps.get("jetson") or {}
    facts = Table(title="this machine", show_header=False, box=None)
    for k, v in (
        ("CPU", caps["cpu"]),
        ("GPU", f"{gpu.get('name')} (compute {gpu.get('compute_capability')}, driver {gpu.get('driver')})" if gpu else "none"),
        ("torch", f"{caps.get('torch')} (CUDA {caps.get('torch_cuda')}, sees a GPU: {caps.get('torch_sees_gpu')})"),
        ("onnxruntime", f"{caps['onnxruntime']}: {', '.join(caps['onnxruntime_providers'])}"),
        ("TensorRT", caps.get("tensorrt") or "not installed"),
        ("TensorRT-RTX", caps.get("tensorrt_rtx") or "not installed"),
        ("Jetson", f"{jetson.get('model')}, L4T {jetson.get('l4t')}, nvpmodel {jetson.get('nvpmodel')}" if jetson else "no"),
        ("jetson_clocks", str(jetson.get("jetson_clocks")) if jetson else "-"),
        ("DLA cores", str(caps.get("dla_cores")) if caps.get("dla_cores") is not None else "-"),
        *((f"power: {k}", v) for k, v in caps["power_sources"].items()),
    ):
        facts.add_row(escape(k), escape(str(v)))
    console.print(facts)
    table = Table(title="checks")
    for col in ("check", "status", "seconds", "detail"):
        table.add_column(col, overflow="fold")
    colour = {"passed": "green", "failed": "red", "skipped": "yellow"}
    for c in doc["checks"]:
        table.add_row(escape(c["name"]), f"[{colour[c['status']]}]{c['status']}[/]", f"{c['seconds']:.1f}", escape(c["detail"]))
    console.print(table)


def print_headlines(heads: list[dict[str, Any]], with_machine: bool = True) -> None:
    """The one headline line per model pair: twin / NiN ratios."""
    for h in heads:
        lat = ", ".join(f"{k} {v:.2f}x" for k, v in h["latency_ratio_batch1"].items() if v)
        who = f"{h['machine']}: " if with_machine else ""
        x = {k: f"{h[k]:.2f}x" if h[k] else "-" for k in ("params_ratio", "fp32_weight_ratio", "macs_ratio")}
        console.print(
            f"[bold]{escape(who)}{escape(h['baseline'])} / {escape(h['model'])}[/]: params {x['params_ratio']}, FP32 "
            f"weights {x['fp32_weight_ratio']}, MACs {x['macs_ratio']}; batch-1 median latency {lat or '-'}"
        )


def print_report(rep: dict[str, Any]) -> None:
    print_headlines(rep["headline"])
    console.print(escape(f"report {rep['markdown']}; CSV {rep['csv']}; plots {', '.join(p.name for p in rep['plots'])}"))


def print_trained(model: str, meta: dict[str, Any], dest: str) -> None:
    acc = meta["accuracy"]
    kept = f", weights of epoch {meta['kept_epoch']}" if meta["kept_epoch"] != len(meta["history"]) else ""
    console.print(
        escape(
            f"trained {model} on {meta['dataset']} ({meta['split']['train']} images, {len(meta['classes'])} classes) "
            f"in {meta['train_seconds']} s, {len(meta['history'])} epochs{kept}: validation top-1 "
            f"{acc['val_top1']:.1%}, test top-1 {acc['test_top1']:.1%}"
            + (f", top-5 {acc['test_top5']:.1%}" if acc["test_top5"] is not None else "")
        )
    )
    console.print(escape(f"wrote {dest}"))


def print_evaluation(r: Any) -> None:
    console.print(
        escape(
            f"{r.artifact} ({r.kind}, {r.runtime}): top-1 {r.top1:.2%}"
            + (f", top-5 {r.top5:.2%}" if r.top5 is not None else "")
            + f" on {r.samples} held-out images of {r.data}"
        )
    )
