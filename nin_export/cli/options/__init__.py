"""Option groups, declared once (as Polygraphy's tools/args): each group declares its click options, takes
their choices and defaults from the library, and parses what a command receives into the library's own
dataclass. A command applies a group as a decorator (its options appear in --help in the group's order)
and hands the group its keyword arguments: ``parse`` takes the group's own out of them.

Where two commands word the same option differently, ``but`` gives the one declaration with that
command's help text; names, types, choices and defaults stay the group's.
"""

from ._base import Group, Opt, given, opt, refuse_unused
from .convert import (
    BUILD,
    CALIB,
    CONVERSION,
    CONVERT,
    FP16_ONLY,
    INT8,
    INT8_ONLY,
    QUANTIZE,
    BuildArgs,
    PrecisionArgs,
    QuantizeArgs,
    precision_flags,
)
from .model import (
    BASELINE,
    BASELINE_WEIGHTS,
    DATA,
    EXPORT,
    MODEL,
    MODEL_SHAPE,
    OUTPUT_DIR,
    OUTPUT_FILE,
    THREADS,
    TRAIN,
    WEIGHTS,
    ExportArgs,
    ModelArgs,
    TrainArgs,
)
from .power import POWER, PowerArgs
from .timing import TIMING, TimingArgs

__all__ = [
    "Opt",
    "opt",
    "Group",
    "given",
    "refuse_unused",
    "MODEL",
    "WEIGHTS",
    "DATA",
    "BASELINE",
    "BASELINE_WEIGHTS",
    "THREADS",
    "OUTPUT_FILE",
    "OUTPUT_DIR",
    "ModelArgs",
    "MODEL_SHAPE",
    "ExportArgs",
    "EXPORT",
    "TrainArgs",
    "TRAIN",
    "PrecisionArgs",
    "precision_flags",
    "QuantizeArgs",
    "CALIB",
    "INT8",
    "QUANTIZE",
    "CONVERT",
    "INT8_ONLY",
    "FP16_ONLY",
    "CONVERSION",
    "BuildArgs",
    "BUILD",
    "TimingArgs",
    "TIMING",
    "PowerArgs",
    "POWER",
]
