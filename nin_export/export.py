"""PyTorch -> ONNX -> simplified ONNX, each verified against PyTorch with onnxruntime."""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import onnx
import torch
from torch import nn

from . import __version__
from ._io import atomic_path, ensure_dir, sha256_file
from .data import Preprocess
from .errors import InputSizeError, NinExportError, OnnxFileError, VerificationError
from .manifest import record_artifact
from .onnx_utils import count_nodes, load_onnx, set_metadata
from .runners import OrtRunner, TorchRunner
from .summary import summarize
from .verify import FP32_TOLERANCE, Agreement, Tolerance, compare, random_inputs

__all__ = ["ExportOptions", "ExportResult", "export_model", "model_metadata", "verify_onnx", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME, OUTPUT_NAME = "input", "logits"
DEFAULT_OPSET = 17
Progress = Callable[[str], None]


@dataclass
class ExportOptions:
    opset: int = DEFAULT_OPSET
    batch: int | None = None  # None: dynamic batch
    dynamic_hw: bool = False  # NiN only: dynamic height and width too
    simplify: bool = True
    tolerance: Tolerance = FP32_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"opset": self.opset, "batch": self.batch or "dynamic", "dynamic_hw": self.dynamic_hw, "simplify": self.simplify}


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


def model_metadata(model: nn.Module, name: str, weights: str | os.PathLike | None, batch: int | None, dynamic_hw: bool) -> dict[str, Any]:
    """What a consumer of the ONNX needs: model, classes, input shape and layout, normalization, size."""
    spec = model.spec
    cfg = model.config
    h, w = cfg["input_size"]
    summ = summarize(model, (cfg["in_channels"], h, w))
    pre = Preprocess.for_spec(spec, cfg["in_channels"], (h, w))
    meta: dict[str, Any] = {
        "model": name,
        "num_classes": cfg["num_classes"],
        "in_channels": cfg["in_channels"],
        "input_size": [h, w],
        "input_shape": [batch or "batch", cfg["in_channels"], "height" if dynamic_hw else h, "width" if dynamic_hw else w],
        "layout": "NCHW",
        "color": "RGB" if cfg["in_channels"] == 3 else ("gray" if cfg["in_channels"] == 1 else f"{cfg['in_channels']}ch"),
        "pixel_range": "[0, 1] before normalization",
        "mean": list(pre.mean),
        "std": list(pre.std),
        "crop_pct": pre.crop_pct,
        "head": spec.head,
        "params": summ.params,
        "macs": summ.macs,
        "weights": Path(weights).name if weights else "random-init",
        "producer_tool": f"nin-export {__version__}",
    }
    if weights:
        meta["weights_sha256"] = sha256_file(weights)
    ck = getattr(model, "checkpoint_meta", {}) or {}
    for key in ("classes", "accuracy", "dataset"):
        if key in ck:
            meta[key] = ck[key]
    return meta


def _check_shape_options(model: nn.Module, name: str, opts: ExportOptions) -> None:
    if opts.batch is not None and opts.batch < 1:
        raise InputSizeError(f"--batch must be a positive number or 'dynamic', got {opts.batch}")
    if opts.dynamic_hw and not model.spec.size_agnostic:
        raise InputSizeError(
            f"{name} has a fully connected head, so its input size is fixed at build time: drop --dynamic-hw, "
            f"or pick another size with --input-size"
        )
    if not 7 <= opts.opset <= onnx.defs.onnx_opset_version():
        raise NinExportError(f"--opset {opts.opset} is out of range: choose 11..{onnx.defs.onnx_opset_version()} (default {DEFAULT_OPSET})")


def _torch_export(model: nn.Module, dest: Path, shape: tuple[int, ...], opts: ExportOptions) -> None:
    axes: dict[str, dict[int, str]] = {}
    if opts.batch is None:
        axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if opts.dynamic_hw:
        axes.setdefault(INPUT_NAME, {}).update({2: "height", 3: "width"})
    kwargs: dict[str, Any] = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opts.opset,
                                  dynamic_axes=axes or None, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: the same path on torch 2.3 (JetPack) and today
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(*shape),), os.fspath(dest), **kwargs)


def verification_shapes(model: nn.Module, opts: ExportOptions) -> list[tuple[int, ...]]:
    """Several inputs: two batch sizes when the batch is dynamic, another size when H/W are."""
    c = model.config["in_channels"]
    h, w = model.config["input_size"]
    batches = [opts.batch] * 3 if opts.batch else [1, 3, 2]
    shapes = [(b, c, h, w) for b in batches]
    if opts.dynamic_hw:
        shapes.append((2, c, h + 8, w + 16))
    return shapes


def verify_onnx(model: nn.Module, onnx_path: str | os.PathLike, shapes: list[tuple[int, ...]], tol: Tolerance = FP32_TOLERANCE,
                seed: int = 0) -> Agreement:
    """Run PyTorch and onnxruntime on the same random inputs and compare."""
    xs = random_inputs(shapes, seed)
    with TorchRunner(model) as ref, OrtRunner(onnx_path) as ort_run:
        refs = [ref.infer({INPUT_NAME: x})[OUTPUT_NAME] for x in xs]
        outs = [ort_run.infer({INPUT_NAME: x})[OUTPUT_NAME] for x in xs]
    return compare(refs, outs, tol)


def _save_checked(proto: onnx.ModelProto, dest: Path, model: nn.Module, shapes, tol: Tolerance, what: str) -> Agreement:
    """Write ``proto`` to ``dest`` only once the checker and the PyTorch comparison pass."""
    with atomic_path(dest, suffix=".onnx") as tmp:
        onnx.save(proto, os.fspath(tmp))
        load_onnx(tmp, check=True)
        agreement = verify_onnx(model, tmp, shapes, tol)
        if not agreement.passed:
            raise VerificationError(f"{what} disagrees with PyTorch: {agreement.describe()} (tolerance: {tol.describe()}); nothing written")
    return agreement


def export_model(model: nn.Module, out_dir: str | os.PathLike, name: str | None = None, *, weights: str | os.PathLike | None = None,
                 options: ExportOptions | None = None, progress: Progress | None = None) -> ExportResult:
    """Export ``model`` (built by ``create_model``/``build_model``) to ``out_dir/<name>.onnx`` and
    ``<name>.sim.onnx``; verify both against PyTorch; embed metadata; record both in the manifest."""
    opts = options or ExportOptions()
    say = progress or (lambda _msg: None)
    name = name or model.spec.name
    _check_shape_options(model, name, opts)
    out = ensure_dir(out_dir)
    model = model.eval()
    shapes = verification_shapes(model, opts)
    meta = model_metadata(model, model.spec.name, weights, opts.batch, opts.dynamic_hw)
    c = model.config["in_channels"]
    h, w = model.config["input_size"]

    onnx_path = out / f"{name}.onnx"
    say(f"exporting {name} to ONNX (opset {opts.opset})")
    with atomic_path(onnx_path, suffix=".onnx") as raw:
        _torch_export(model, raw, (opts.batch or 1, c, h, w), opts)
        proto = onnx.load(os.fspath(raw))
    set_metadata(proto, meta)
    say("verifying ONNX against PyTorch")
    agree = _save_checked(proto, onnx_path, model, shapes, opts.tolerance, onnx_path.name)
    nodes = count_nodes(proto)
    result = ExportResult(onnx_path, None, nodes, None, {onnx_path.name: agree})
    options = dict(opts.to_dict(), model=model.spec.name, weights=meta["weights"], input_size=[h, w],
                   num_classes=meta["num_classes"], in_channels=c)
    record_artifact(onnx_path, kind="onnx", parent=weights, precision="fp32", options=options,
                    verification=agree.to_dict(), extra={"nodes": nodes, "params": meta["params"], "macs": meta["macs"]})
    if not opts.simplify:
        return result

    import onnxsim

    say("simplifying with onnxsim")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(proto)
    except Exception as e:  # onnxsim raises plain RuntimeErrors from its C++ core
        raise OnnxFileError(f"onnxsim could not simplify {onnx_path.name}: {str(e).strip().splitlines()[0][:200]}; "
                            f"use --no-simplify") from None
    if not ok:
        raise VerificationError(f"onnxsim's own check of {onnx_path.name} failed; use --no-simplify")
    set_metadata(simplified, meta)
    sim_path = out / f"{name}.sim.onnx"
    say("verifying simplified ONNX against PyTorch")
    sim_agree = _save_checked(simplified, sim_path, model, shapes, opts.tolerance, sim_path.name)
    result.sim_path, result.sim_nodes = sim_path, count_nodes(simplified)
    result.verification[sim_path.name] = sim_agree
    record_artifact(sim_path, kind="onnx-simplified", parent=onnx_path, precision="fp32", options=options,
                    verification=sim_agree.to_dict(),
                    extra={"nodes": result.sim_nodes, "nodes_before": nodes, "params": meta["params"], "macs": meta["macs"]})
    return result
