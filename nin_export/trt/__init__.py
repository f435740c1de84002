"""TensorRT engines: one code path for TensorRT 10.x (Jetson), 11.x (desktop) and TensorRT-RTX.

Nothing here imports TensorRT at module level; ``load_backend`` does, and says what to install
when it is missing.
"""

from ._api import Backend, TrtBackend, load_backend
from .builder import BuildOptions, BuildResult, Profile, build_engine, parse_batch_profile, parse_shape
from .sidecar import read_sidecar, sidecar_path, check_compatible
from .runner import TrtRunner

__all__ = [
    "Backend",
    "TrtBackend",
    "load_backend",
    "BuildOptions",
    "BuildResult",
    "Profile",
    "build_engine",
    "parse_batch_profile",
    "parse_shape",
    "read_sidecar",
    "sidecar_path",
    "check_compatible",
    "TrtRunner",
]
