"""PyTorch -> ONNX -> simplified ONNX, each verified against PyTorch with onnxruntime."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import onnx
import torch
from torch import nn

from .. import __version__
from ..core._io import atomic_path, check_outputs, ensure_dir, sha256_file, temp_dir
from ..core.defaults import DYNAMO_OPSET, TORCHSCRIPT_OPSET
from ..core.enums import Exporter
from ..core.errors import BackendUnavailableError, InputSizeError, NinExportError, OnnxFileError, VerificationError, first_line
from ..core.manifest import MANIFEST_NAME, check_manifest, record_artifact
from ..core.meta import ModelMeta
from ..core.onnx_utils import count_nodes, load_onnx, opset_of, set_metadata
from ..core.verify import FP32_TOLERANCE, Agreement, Tolerance, compare, random_inputs
from ..models import Classifier
from ..models.summary import check_memory, summarize
from ..runners.onnxrt import OrtRunner
from ..runners.torch_runner import TorchRunner

__all__ = [
    "Exporter",
    "ExportOptions",
    "ExportResult",
    "export_model",
    "model_metadata",
    "verify_onnx",
    "resolve_exporter",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "DEFAULT_OPSET",
    "DYNAMO_OPSET",
    "TORCHSCRIPT_OPSET",
    "MIN_OPSET",
]

INPUT_NAME, OUTPUT_NAME = "input", "logits"
DEFAULT_OPSET = None  # the chosen exporter's own: DYNAMO_OPSET or TORCHSCRIPT_OPSET
MIN_OPSET = 11  # the oldest opset the TorchScript exporter writes for these models
Progress = Callable[[str], None]


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def resolve_exporter(want: Exporter | str = Exporter.AUTO, opset: int | None = None) -> Exporter:
    """AUTO: the dynamo exporter on torch 2.6+ with onnxscript installed, unless an opset older than the
    one it writes natively is asked for; else TorchScript."""
    want = Exporter(want)
    has_dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters
    dynamo_ok = has_dynamo and _torch_version() >= (2, 6) and importlib.util.find_spec("onnxscript") is not None
    if want is Exporter.AUTO:
        return Exporter.DYNAMO if dynamo_ok and (opset is None or opset >= DYNAMO_OPSET) else Exporter.TORCHSCRIPT
    if want is Exporter.DYNAMO and not dynamo_ok:
        raise BackendUnavailableError(
            f"the dynamo exporter needs torch 2.6+ and onnxscript (torch {torch.__version__} here"
            f"{'' if importlib.util.find_spec('onnxscript') else ', no onnxscript'}): "
            f"pip install onnxscript, or use --exporter torchscript"
        )
    return want


@dataclass
class ExportOptions:
    opset: int | None = DEFAULT_OPSET  # None: the exporter's own (see effective_opset)
    batch: int | None = None  # None: dynamic batch
    dynamic_hw: bool = False  # NiN only: dynamic height and width too
    simplify: bool = True
    exporter: Exporter = Exporter.AUTO
    tolerance: Tolerance = FP32_TOLERANCE

    def resolved(self) -> tuple[Exporter, int]:
        """The exporter that will run, and the opset it writes."""
        exporter = resolve_exporter(self.exporter, self.opset)
        return exporter, self.opset or (DYNAMO_OPSET if exporter is Exporter.DYNAMO else TORCHSCRIPT_OPSET)

    def to_dict(self) -> dict[str, Any]:
        exporter, opset = self.resolved()
        return {
            "opset": opset,
            "batch": self.batch or "dynamic",
            "dynamic_hw": self.dynamic_hw,
            "simplify": self.simplify,
            "exporter": exporter.value,
        }


@dataclass
class ExportResult:
    onnx_path: Path
    sim_path: Path | None
    nodes: int
    sim_nodes: int | None
    verification: dict[str, Agreement] = field(default_factory=dict)

    @property
    def final_path(self) -> Path:
        return self.sim_path or self.onnx_path


def model_metadata(
    model: Classifier, name: str, weights: str | os.PathLike | None, batch: int | None, dynamic_hw: bool
) -> ModelMeta:
    """What a consumer of the ONNX needs: the model's record (classes, input shape, normalization, and what
    its checkpoint said: class names, dataset, accuracy), with its weights, size, layout and batch."""
    c, h, w = model.input_shape
    summ = summarize(model, (c, h, w))
    return replace(
        model.meta,
        model=name,
        weights=Path(weights).name if weights else "random-init",
        weights_sha256=sha256_file(weights) if weights else None,
        params=summ.params,
        macs=summ.macs,
        extra={
            "input_shape": [batch or "batch", c, "height" if dynamic_hw else h, "width" if dynamic_hw else w],
            "layout": "NCHW",
            "color": "RGB" if c == 3 else ("gray" if c == 1 else f"{c}ch"),
            "pixel_range": "[0, 1] before normalization",
            "producer_tool": f"nin-export {__version__}",
        },
    )


def _check_shape_options(model: Classifier, name: str, opts: ExportOptions) -> None:
    if opts.batch is not None and opts.batch < 1:
        raise InputSizeError(f"--batch must be a positive number or 'dynamic', got {opts.batch}")
    if opts.dynamic_hw and not model.spec.size_agnostic:
        raise InputSizeError(
            f"{name} has a fully connected head, so its input size is fixed at build time: drop --dynamic-hw, "
            f"or pick another size with --input-size"
        )
    if opts.opset is not None and not MIN_OPSET <= opts.opset <= onnx.defs.onnx_opset_version():
        raise NinExportError(
            f"--opset {opts.opset} is out of range: choose {MIN_OPSET}..{onnx.defs.onnx_opset_version()} "
            f"(default: {DYNAMO_OPSET} with the dynamo exporter, {TORCHSCRIPT_OPSET} with TorchScript)"
        )


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The exporters log their own fallbacks (with tracebacks); what matters is raised or checked here."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torch_export(
    model: nn.Module, dest: Path, shape: tuple[int, ...], opts: ExportOptions, exporter: Exporter, opset: int
) -> onnx.ModelProto:
    """Export ``model`` to ``dest`` and return the graph, refused if it is not at ``opset``."""
    axes: dict[str, dict[int, str]] = {}
    if opts.batch is None:
        axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if opts.dynamic_hw:
        axes.setdefault(INPUT_NAME, {}).update({2: "height", 3: "width"})
    kwargs: dict[str, Any] = dict(
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset, dynamic_axes=axes or None
    )
    if exporter is Exporter.DYNAMO:
        kwargs.update(dynamo=True, external_data=False, optimize=True, verbose=False)
    else:
        kwargs["do_constant_folding"] = True
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            kwargs["dynamo"] = False
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_loggers("onnxscript", "torch.onnx", "torch.export"):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(*shape),), os.fspath(dest), **kwargs)
    except NinExportError:
        raise
    except Exception as e:  # torch.export / onnxscript raise their own types
        other = "torchscript" if exporter is Exporter.DYNAMO else "dynamo"
        raise OnnxFileError(
            f"the {exporter.value} exporter failed at opset {opset}: {first_line(e, 200)}; "
            f"try --exporter {other} or another --opset"
        ) from None
    proto = onnx.load(os.fspath(dest))
    written = opset_of(proto)
    if written != opset:  # the dynamo exporter keeps its own opset when its version converter fails
        raise OnnxFileError(
            f"the {exporter.value} exporter wrote opset {written}, not the {opset} asked for: "
            f"use --opset {written}, or --exporter torchscript for opset {opset}"
        )
    return proto


def verification_shapes(model: Classifier, opts: ExportOptions) -> list[tuple[int, int, int, int]]:
    """Several inputs: two batch sizes when the batch is dynamic, another size when H/W are."""
    c, h, w = model.input_shape
    batches = [opts.batch] * 3 if opts.batch else [1, 3, 2]
    shapes = [(b, c, h, w) for b in batches]
    if opts.dynamic_hw:
        shapes.append((2, c, h + 8, w + 16))
    return shapes


def verify_onnx(
    model: nn.Module,
    onnx_path: str | os.PathLike,
    shapes: Sequence[tuple[int, ...]],
    tol: Tolerance = FP32_TOLERANCE,
    seed: int = 0,
) -> Agreement:
    """Run PyTorch and onnxruntime on the same random inputs and compare."""
    xs = random_inputs(shapes, seed)
    with TorchRunner(model) as ref, OrtRunner(onnx_path) as ort_run:
        refs = [ref.infer({INPUT_NAME: x})[OUTPUT_NAME] for x in xs]
        outs = [ort_run.infer({INPUT_NAME: x})[OUTPUT_NAME] for x in xs]
    return compare(refs, outs, tol)


def _save_checked(
    proto: onnx.ModelProto, dest: Path, model: nn.Module, shapes: Sequence[tuple[int, ...]], tol: Tolerance, what: str
) -> Agreement:
    """Write ``proto`` to ``dest`` only once the checker and the PyTorch comparison pass."""
    with atomic_path(dest, suffix=".onnx") as tmp:
        onnx.save(proto, os.fspath(tmp))
        load_onnx(tmp, check=True)
        agreement = verify_onnx(model, tmp, shapes, tol)
        if not agreement.passed:
            raise VerificationError(
                f"{what} disagrees with PyTorch: {agreement.describe()} (tolerance: {tol.describe()}); nothing written"
            )
    return agreement


def _simplify(proto: onnx.ModelProto, meta: dict[str, Any], what: str) -> onnx.ModelProto:
    import onnxsim  # lazy: its C++ core loads only when a graph is simplified

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(proto)
    except Exception as e:  # onnxsim raises plain RuntimeErrors from its C++ core
        raise OnnxFileError(f"onnxsim could not simplify {what}: {first_line(e, 200)}; use --no-simplify") from None
    if not ok:
        raise VerificationError(f"onnxsim's own check of {what} failed; use --no-simplify")
    set_metadata(simplified, meta)
    return simplified


def export_model(
    model: Classifier,
    out_dir: str | os.PathLike,
    name: str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    options: ExportOptions | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``model`` (built by ``create_model``/``build_model``) to ``out_dir/<name>.onnx`` and
    ``<name>.sim.onnx``; verify both against PyTorch; embed metadata; record both in the manifest."""
    opts = options or ExportOptions()
    say = progress or (lambda _msg: None)
    name = name or model.spec.name
    _check_shape_options(model, name, opts)
    out = ensure_dir(out_dir)
    model = model.eval()
    shapes = verification_shapes(model, opts)
    _, c, h, w = shapes[0]
    check_memory(model, (c, h, w), max(s[0] for s in shapes), "--batch (or --input-size)")
    meta = model_metadata(model, model.spec.name, weights, opts.batch, opts.dynamic_hw).to_dict()
    exporter, opset = opts.resolved()
    onnx_path, sim_path = out / f"{name}.onnx", out / f"{name}.sim.onnx"
    check_outputs([onnx_path, *([sim_path] if opts.simplify else []), out / MANIFEST_NAME], [weights] if weights else [])
    check_manifest(out)
    say(f"exporting {name} to ONNX (opset {opset}, {exporter.value} exporter)")
    with temp_dir(out, "export") as tmp:
        raw = Path(tmp) / "raw.onnx"  # never renamed onto onnx_path: only the checked proto is written there
        proto = _torch_export(model, raw, (opts.batch or 1, c, h, w), opts, exporter, opset)
    set_metadata(proto, meta)
    simplified = None
    if opts.simplify:  # before anything is written: a failure here leaves the previous files as they were
        say("simplifying with onnxsim")
        simplified = _simplify(proto, meta, onnx_path.name)
    return _write_both(proto, simplified, model, weights, onnx_path, sim_path, shapes, opts, meta, say)


def _write_both(
    proto: onnx.ModelProto,
    simplified: onnx.ModelProto | None,
    model: Classifier,
    weights: str | os.PathLike | None,
    onnx_path: Path,
    sim_path: Path,
    shapes: Sequence[tuple[int, ...]],
    opts: ExportOptions,
    meta: dict[str, Any],
    say: Progress,
) -> ExportResult:
    """Write the raw and the simplified graph, each only once it agrees with PyTorch; record both."""
    say("verifying ONNX against PyTorch")
    agree = _save_checked(proto, onnx_path, model, shapes, opts.tolerance, onnx_path.name)
    result = ExportResult(onnx_path, None, count_nodes(proto), None, {onnx_path.name: agree})
    keys = ("weights", "input_size", "num_classes", "in_channels")
    options = {**opts.to_dict(), "model": model.spec.name, **{k: meta[k] for k in keys}}
    extra = {"params": meta["params"], "macs": meta["macs"]}
    record_artifact(
        onnx_path,
        kind="onnx",
        parent=weights,
        precision="fp32",
        options=options,
        verification=agree.to_dict(),
        extra={"nodes": result.nodes, **extra},
    )
    if simplified is None:
        return result
    say("verifying simplified ONNX against PyTorch")
    sim_agree = _save_checked(simplified, sim_path, model, shapes, opts.tolerance, sim_path.name)
    result.sim_path, result.sim_nodes = sim_path, count_nodes(simplified)
    result.verification[sim_path.name] = sim_agree
    record_artifact(
        sim_path,
        kind="onnx-simplified",
        parent=onnx_path,
        precision="fp32",
        options=options,
        verification=sim_agree.to_dict(),
        extra={"nodes": result.sim_nodes, "nodes_before": result.nodes, **extra},
    )
    return result
