"""TensorRT engines: one code path for TensorRT 10.x (Jetson), 11.x (desktop) and TensorRT-RTX.

Nothing here imports TensorRT at module level; ``load_trt`` does, and says what to install when it
is missing. ``convert.engine_from_onnx`` (quantizing an FP32 graph first where asked) is not
re-exported here, so that importing the builder never pulls in the quantizer.
"""

from ._api import TrtFlavour, TrtModule, load_trt
from .builder import BuildOptions, BuildResult, Profile, build_engine
from .runner import TrtRunner
from .sidecar import EngineInfo, check_compatible, read_engine_info, read_sidecar, sidecar_path

__all__ = [
    "TrtFlavour",
    "TrtModule",
    "load_trt",
    "BuildOptions",
    "BuildResult",
    "Profile",
    "build_engine",
    "read_sidecar",
    "EngineInfo",
    "read_engine_info",
    "sidecar_path",
    "check_compatible",
    "TrtRunner",
]
