"""ONNX -> engine at a chosen precision: the one place where precision is settled.

The graph is read once. An FP32 graph asked for at FP16 or INT8 is first converted by
``quantize`` (with the caller's whole set of quantize options: calibration data, method, count,
held-out count, cache), checked and recorded like 'nin-export quantize'; a graph already at the
precision is built as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..core._io import check_outputs, sha256_file
from ..core.enums import Precision
from ..core.errors import NinExportError, OutputPathError
from ..core.manifest import MANIFEST_NAME, check_manifest, lineage, read_manifest, record_artifact
from ..core.onnx_utils import graph_precision, load_onnx
from ..quantize.ptq import QuantizeOptions, default_output, quantize
from ._api import load_trt
from .builder import BuildOptions, BuildResult, build_engine, default_engine_path
from .sidecar import sidecar_path

__all__ = ["engine_from_onnx", "conversion_needed"]


def conversion_needed(graph: Precision, wanted: Precision | None, builder_fp16: bool) -> Precision | None:
    """The precision the graph must be converted to first (None: build it as it is); refuses, in one
    line, a request the graph cannot meet."""
    if builder_fp16:
        if wanted not in (None, Precision.FP16):
            raise NinExportError(f"--builder-fp16 builds FP16; it cannot be combined with --{wanted.value}")
        if graph is not Precision.FP32:
            raise NinExportError(f"--builder-fp16 applies to an FP32 graph; this one is already {graph.value.upper()}")
        return None
    if wanted is None or wanted is graph:
        return None
    if graph is not Precision.FP32:
        raise NinExportError(
            f"the ONNX is already an {graph.value.upper()} graph: build --{wanted.value} from the FP32 ONNX "
            f"(precision lives in the graph), or drop the flag to build it as {graph.value.upper()}"
        )
    return None if wanted is Precision.FP32 else wanted


def _intermediate(src: Path, precision: Precision, qopts: QuantizeOptions) -> tuple[Path, bool, str | None]:
    """Where the converted graph goes: (path, reuse it as it is, a note). The usual name (X.int8.onnx) is
    taken only when it is free, or reused when its manifest records the same options from the same parent and
    the file is unchanged; a user's own graph there (another quantizer, a mixed-precision one) is never
    replaced: the engine's graph then gets a name of its own, X.int8.trt-input.onnx."""
    usual = default_output(src, precision)
    if not usual.exists():
        return usual, False, None
    arts = read_manifest(usual.parent)["artifacts"]
    entry = arts.get(usual.name) or {}
    same = entry.get("parent") == src.name and entry.get("options") == qopts.to_dict()
    if same and entry.get("sha256") == sha256_file(usual):
        return usual, True, None
    own = usual.with_name(usual.name[: -len(".onnx")] + ".trt-input.onnx")
    mine = (arts.get(own.name) or {}).get("parent") == src.name
    if own.exists() and not mine:
        raise OutputPathError(
            f"'{usual.name}' holds another graph (other options, or not made by nin-export) and '{own.name}' exists too, "
            f"not made from {src.name}: nin-export replaces neither; move one aside"
        )
    return (
        own,
        False,
        f"'{usual.name}' holds a graph made with other options (or not by nin-export): left as it is; "
        + (f"the engine is built from '{own.name}'"),
    )


def engine_from_onnx(
    onnx_path: str | os.PathLike,
    precision: Precision | None,
    options: BuildOptions,
    quantize_options: QuantizeOptions | None = None,
    output: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build an engine at ``precision`` (None: the graph's own) from ``onnx_path``. The result's notes and
    steps say what was converted on the way."""
    say = progress or (lambda _m: None)
    src = Path(onnx_path)
    model = load_onnx(src)
    graph = graph_precision(model)
    convert_to = conversion_needed(graph, precision, options.builder_fp16)
    trtm = load_trt(options.flavour)  # a missing TensorRT fails here, before any conversion
    qopts = quantize_options or QuantizeOptions(convert_to or graph)
    if convert_to is not None:
        qopts.precision = convert_to
    # Every file this command writes, checked before any work: never an input, its ancestors, or each other.
    graph_out, reuse, note = _intermediate(src, convert_to, qopts) if convert_to is not None else (src, False, None)
    built = Precision.FP16 if options.builder_fp16 else (convert_to or graph)
    named = default_output(src, convert_to) if convert_to is not None else src  # the engine's name, whatever the graph's
    engine = Path(output) if output else default_engine_path(named, built, trtm)
    writes = [engine, sidecar_path(engine), engine.parent / MANIFEST_NAME]
    check_manifest(engine.parent)
    keep = [named] if named is not src and named.exists() else []  # a graph already at the usual name is never an output
    check_outputs(([graph_out] if convert_to is not None and not reuse else []) + writes, lineage(src) + keep)
    notes: list[str] = [note] if note else []
    steps: list[str] = []
    if reuse and convert_to is not None:  # reuse: only of a converted graph
        steps.append(f"{graph_out.name} is already the {convert_to.value} graph of {src.name} with these options: built from it")
        src, model = graph_out, load_onnx(graph_out)
    elif convert_to is not None:
        q = quantize(src, qopts, output=graph_out, progress=say, model=model)
        a = q.agreement
        notes += q.notes
        steps.append(
            f"converted the graph first: {src.name} -> {q.path.name} (top-1 agreement {a.top1_agreement:.1%}, "
            f"cosine {a.cosine:.6f} on {a.n_samples} held-out images)"
        )
        if q.cache:
            steps.append(f"calibration cache: {q.cache}")
        src, model = q.path, q.graph
    res = build_engine(src, options, engine, progress=say, model=model)
    res.notes = notes + res.notes
    res.steps = steps + res.steps
    i = res.info
    record_artifact(
        res.engine,
        kind="engine",
        parent=src,
        precision=i["precision"],
        options={k: i[k] for k in ("flavour", "trt_version", "targets", "profiles", "workspace_mib", "precision_path")},
        extra={"sidecar": res.sidecar.name, "build_seconds": i["build_seconds"]},
    )
    return res
