"""Precision flags, calibration and INT8 options (into QuantizeOptions), and the TensorRT build options
(into BuildOptions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ...core.defaults import (
    DEFAULT_AGREEMENT_FLOOR,
    DEFAULT_BATCH_PROFILE,
    DEFAULT_CACHE_DIR,
    DEFAULT_CALIB_COUNT,
    DEFAULT_EVAL_COUNT,
    DEFAULT_RTX_TARGETS,
    MIN_CALIB_IMAGES,
)
from ...core.enums import CalibMethod, Int8Target, Precision, Quantizer
from ...core.errors import NinExportError
from ...core.precision import PRECISIONS
from ...trt import BuildOptions, TrtFlavour
from ._base import Group, opt

if TYPE_CHECKING:
    from ...quantize.ptq import QuantizeOptions


# --- precision, calibration, INT8 ----------------------------------------------------------------


class PrecisionArgs(Group):
    """--fp32/--fp16/--int8 flags (each command words them its own way): at most one, parsed to a Precision."""

    def parse(self, kw: dict[str, Any]) -> Precision | None:
        on = self.take(kw)
        chosen = [p for p in Precision if on.get(p.value)]
        if len(chosen) > 1:
            raise NinExportError(f"choose one precision: {' and '.join('--' + p.value for p in chosen)} were both given")
        return chosen[0] if chosen else None


def precision_flags(**helps: str) -> PrecisionArgs:
    """The flags (from the precision table) of the precisions in ``helps`` (fp32=..., fp16=..., int8=...), each
    with this command's help."""
    rows = [info for p, info in PRECISIONS.items() if p.value in helps]
    return PrecisionArgs(*(opt(info.flag, is_flag=True, help=helps[info.name]) for info in rows))


class QuantizeArgs(Group):
    """Calibration and INT8 options (those a command has), parsed into a QuantizeOptions."""

    def parse(self, kw: dict[str, Any], precision: Precision) -> QuantizeOptions:
        from ...quantize.ptq import quantize_options

        return quantize_options(precision, **self.take(kw))


CALIB = QuantizeArgs(
    opt(
        "--calib-data",
        default=None,
        metavar="SRC",
        help="Images: a directory (recursive), a .npy/.npz in model layout, or 'digits' (built in). "
        "FP16 uses it for the held-out check only (default digits).",
    ),
    opt(
        "--calib-method",
        type=click.Choice([m.value for m in CalibMethod]),
        default=CalibMethod.MINMAX.value,
        show_default=True,
        help="Range calibration: minmax (the observed range), entropy (TensorRT's: the least-KL threshold of |x|, "
        "2048 bins, 128 levels) or percentile (99.999th percentile of |x|).",
    ),
    opt(
        "--calib-count",
        type=int,
        default=DEFAULT_CALIB_COUNT,
        show_default=True,
        help=f"Calibration images (at least {MIN_CALIB_IMAGES}; at most what the data's calibration split has).",
    ),
    opt(
        "--eval-count", type=int, default=DEFAULT_EVAL_COUNT, show_default=True, help="Held-out images for the check against FP32."
    ),
    opt("--calib-cache", default=None, metavar="DIR", help=f"Calibration cache directory (default ./{DEFAULT_CACHE_DIR})."),
    opt("--no-calib-cache", is_flag=True, default=False, help="Neither read nor write a calibration cache."),
    opt("--quantize-head", is_flag=True, default=False, help="INT8: also quantize global average pooling and what follows."),
)

# The INT8 controls that 'quantize' and 'trt --int8' add to the calibration options.
INT8 = QuantizeArgs(
    opt(
        "--agreement-floor",
        type=float,
        default=DEFAULT_AGREEMENT_FLOOR,
        show_default=True,
        help="INT8 with trained weights: the least top-1 agreement with FP32 on held-out images that passes.",
    ),
    opt(
        "--exclude",
        multiple=True,
        metavar="NODE_OR_PATTERN",
        help="INT8: keep this Conv/Gemm node in float (a name or a glob such as 'node_conv2d_*'; repeatable). "
        "'nin-export sensitivity' lists the nodes.",
    ),
    opt(
        "--min-agreement",
        type=float,
        default=None,
        metavar="P",
        help="INT8: keep the most sensitive layers in float, one at a time, until top-1 agreement with FP32 "
        "reaches P (e.g. 0.99) on one half of the held-out images; the other half, unseen, gives the figures.",
    ),
    opt(
        "--float-dtype",
        type=click.Choice([Precision.FP16.value, Precision.FP32.value]),
        default=None,
        help="INT8: the precision of the layers left in float (the head, --exclude, --min-agreement); inputs and "
        "outputs stay float32 (default fp16 for --int8-target tensorrt, fp32 for ort-cpu).",
    ),
    opt(
        "--quantizer",
        type=click.Choice([q.value for q in Quantizer]),
        default=Quantizer.ORT.value,
        show_default=True,
        help="INT8: onnxruntime's quantizer (built in) or NVIDIA ModelOpt's ONNX PTQ (pip install 'nin-export[modelopt]').",
    ),
)

KEEP_IO_TYPES = opt(
    "--keep-io-types/--no-keep-io-types", default=True, show_default=True, help="FP16: keep float32 inputs/outputs."
)
INT8_TARGET = opt(
    "--int8-target",
    type=click.Choice([t.value for t in Int8Target]),
    default=Int8Target.TENSORRT.value,
    show_default=True,
    help="INT8: tensorrt (int8 Q/DQ on Conv/Gemm inputs, every TensorRT) or ort-cpu (onnxruntime's fastest CPU layout: "
    "uint8 activations, every op it quantizes; TensorRT refuses it).",
)
SYNTHETIC = opt("--synthetic", is_flag=True, default=False, help="Calibrate on random noise (accuracy figures become meaningless).")

# 'quantize': FP16's and INT8's own options, calibration, INT8 controls; 'trt --fp16/--int8': calibration and INT8.
QUANTIZE = QuantizeArgs(KEEP_IO_TYPES, INT8_TARGET, *CALIB.options, *INT8.options, SYNTHETIC)
CONVERT = QuantizeArgs(*CALIB.options, *INT8.options)

# What each mode uses: an option given on the command line that the mode does not use is refused, not ignored
INT8_ONLY = (*(n for n in CALIB.names if n not in ("calib_data", "eval_count")), *INT8.names, INT8_TARGET.name)
FP16_ONLY = (KEEP_IO_TYPES.name,)
CONVERSION = (*CALIB.names, *INT8.names, INT8_TARGET.name, *FP16_ONLY)


# --- TensorRT build -------------------------------------------------------------------------------


class BuildArgs(Group):
    def parse(self, kw: dict[str, Any]) -> BuildOptions:
        from ...core.parse import parse_batch_profile, parse_shape

        v = self.take(kw)
        shapes = {k: parse_shape(v[k]) if v[k] else None for k in ("min_shape", "opt_shape", "max_shape")}
        return BuildOptions(
            flavour=TrtFlavour(v["backend"]),
            batch=parse_batch_profile(v["batch"]) if v["batch"] else None,
            workspace_mib=v["workspace"],
            timing_cache=v["timing_cache"],
            targets=v["targets"],
            builder_fp16=v["builder_fp16"],
            **shapes,
        )


_B = BuildOptions()
BUILD = BuildArgs(
    opt(
        "--builder-fp16",
        is_flag=True,
        default=_B.builder_fp16,
        help="TensorRT 10 only: FP16 through BuilderFlag.FP16 on the FP32 graph instead of an FP16 graph.",
    ),
    opt(
        "--batch",
        default=None,
        metavar="MIN:OPT:MAX",
        help=f"Batch profile for a dynamic batch (default {':'.join(map(str, DEFAULT_BATCH_PROFILE))}).",
    ),
    opt("--min-shape", default=None, metavar="NxCxHxW", help="Profile minimum shape (with --opt-shape, --max-shape)."),
    opt("--opt-shape", default=None, metavar="NxCxHxW", help="Profile optimum shape."),
    opt("--max-shape", default=None, metavar="NxCxHxW", help="Profile maximum shape."),
    opt("--workspace", type=int, default=_B.workspace_mib, show_default=True, metavar="MiB", help="Workspace memory pool limit."),
    opt(
        "--timing-cache",
        default=None,
        type=click.Path(dir_okay=False),
        help="Timing cache file, read and updated (TensorRT 10/11).",
    ),
    opt(
        "--backend",
        type=click.Choice([b.value for b in TrtFlavour]),
        default=_B.flavour.value,
        show_default=True,
        help="Which TensorRT: auto prefers full TensorRT, then TensorRT-RTX.",
    ),
    opt(
        "--target",
        "targets",
        multiple=True,
        metavar="SMxx",
        help="TensorRT-RTX ahead-of-time target, repeatable: SM75 SM80 SM86 SM89 SM120 SM121 or CURRENT "
        f"(default: CURRENT with a GPU, else {' '.join(DEFAULT_RTX_TARGETS)}).",
    ),
)
