"""Which TensorRT is installed, and the few places where the flavours differ, named."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..core.enums import StrEnum
from ..core.errors import BackendUnavailableError, first_line

__all__ = ["TrtFlavour", "TrtModule", "load_trt", "INSTALL_HINT"]

INSTALL_HINT = {
    "tensorrt": "pip install tensorrt (TensorRT 10/11, needs an NVIDIA GPU to build); on Jetson use JetPack's "
    "python3-libnvinfer in a venv made with --system-site-packages",
    "tensorrt-rtx": "pip install 'nin-export[rtx]' (tensorrt-rtx-cu13: TensorRT-RTX, builds ahead of time without a GPU)",
}


class TrtFlavour(StrEnum):
    """Which TensorRT: full TensorRT (10.x on Jetson, 11.x on desktops) or TensorRT-RTX; AUTO prefers full TensorRT."""

    AUTO = "auto"
    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt-rtx"


@dataclass
class TrtModule:
    """An imported TensorRT module and which flavour it is."""

    trt: ModuleType
    flavour: TrtFlavour  # TENSORRT or TENSORRT_RTX

    @property
    def version(self) -> str:
        return str(self.trt.__version__)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def is_rtx(self) -> bool:
        return self.flavour is TrtFlavour.TENSORRT_RTX

    @property
    def always_strongly_typed(self) -> bool:
        """TensorRT 11 and TensorRT-RTX have only strongly typed networks."""
        return self.is_rtx or self.major >= 11

    @property
    def has_builder_fp16(self) -> bool:
        """BuilderFlag.FP16 exists (TensorRT 10.x) - removed in 11.x, absent from TensorRT-RTX."""
        return not self.always_strongly_typed and hasattr(self.trt.BuilderFlag, "FP16")

    @property
    def supports_aot_targets(self) -> bool:
        """Ahead-of-time compute-capability targets (TensorRT-RTX)."""
        return self.is_rtx and hasattr(self.trt, "ComputeCapability")

    def target_missing(self, gpu: dict[str, Any] | None) -> str | None:
        """Why this TensorRT cannot build for or run on ``gpu`` (None: it can, or there is no GPU to ask about).
        Only TensorRT-RTX has a fixed target list (no Hopper, SM90); TensorRT 10/11 build for the GPU at hand."""
        if gpu is None or not self.supports_aot_targets:
            return None
        cc = str(gpu["compute_capability"])
        if hasattr(self.trt.ComputeCapability, "SM" + cc.replace(".", "")):
            return None
        hopper = ": Hopper is not a TensorRT-RTX target" if cc.startswith("9.") else ""
        return f"{self.describe()} has no target for {gpu['name']} (compute capability {cc}){hopper}"

    def network_flags(self, strongly_typed: bool) -> int:
        if not strongly_typed:
            return 0
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None:
            raise BackendUnavailableError(
                f"TensorRT {self.version} has no strongly typed networks: TensorRT 10.0 or newer is needed"
            )
        return 1 << int(flag)

    def describe(self) -> str:
        return f"{'TensorRT-RTX' if self.is_rtx else 'TensorRT'} {self.version}"


def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
    except Exception as e:  # noqa: BLE001  (a broken install: missing CUDA libraries and the like)
        raise BackendUnavailableError(f"{module} is installed but cannot be imported ({first_line(e, 150)})") from None


def load_trt(flavour: TrtFlavour | str = TrtFlavour.AUTO) -> TrtModule:
    """Import TensorRT (``tensorrt``) or TensorRT-RTX (``tensorrt_rtx``). AUTO prefers full TensorRT."""
    want = TrtFlavour(flavour)
    order: list[tuple[str, TrtFlavour]] = []
    if want in (TrtFlavour.AUTO, TrtFlavour.TENSORRT):
        order.append(("tensorrt", TrtFlavour.TENSORRT))
    if want in (TrtFlavour.AUTO, TrtFlavour.TENSORRT_RTX):
        order.append(("tensorrt_rtx", TrtFlavour.TENSORRT_RTX))
    for module, kind in order:
        mod = _import(module)
        if mod is not None and hasattr(mod, "Builder"):  # PyPI's 'tensorrt' stub has no Builder
            return TrtModule(mod, kind)
    if want is TrtFlavour.AUTO:
        raise BackendUnavailableError(f"no TensorRT is installed: {INSTALL_HINT['tensorrt-rtx']}; or {INSTALL_HINT['tensorrt']}")
    raise BackendUnavailableError(f"{want.value} is not installed: {INSTALL_HINT[want.value]}")


def trt_dtype_name(dt: Any) -> str:
    return str(dt).split(".")[-1].lower()
