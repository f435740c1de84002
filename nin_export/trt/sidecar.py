"""The JSON sidecar beside every engine: its one loader, and the checks made before an engine is loaded."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core._io import check_schema, read_json, sha256_file
from ..core.enums import Precision
from ..core.errors import BackendUnavailableError, NinExportError
from ..core.gpu import gpu_info
from ._api import TrtFlavour, TrtModule

__all__ = [
    "SIDECAR_SCHEMA",
    "sidecar_path",
    "read_sidecar",
    "EngineInfo",
    "read_engine_info",
    "check_compatible",
    "EngineMismatchError",
    "current_gpu",
    "check_engine_file",
]

SIDECAR_SCHEMA = "nin-export/engine/1"
_HINT = "rebuild the engine with 'nin-export trt'"


class EngineMismatchError(NinExportError):
    """An engine built for another TensorRT or another GPU."""


def sidecar_path(engine: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(engine)}.json")


def read_sidecar(engine: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """The sidecar of ``engine``, checked against the shipped schema, and (``verify``) the engine's size
    and sha256 against the sidecar's (one line on any fault)."""
    engine = Path(engine)
    if not engine.is_file():
        raise NinExportError(f"engine '{engine}' not found: build one with 'nin-export trt MODEL.onnx'")
    side = sidecar_path(engine)
    if not side.exists():
        raise NinExportError(
            f"'{side}' is missing: nin-export needs the sidecar written beside the engine to load it safely; "
            f"rebuild with 'nin-export trt'"
        )
    data = read_json(side, "engine sidecar", _HINT)
    if not isinstance(data, dict) or data.get("schema") != SIDECAR_SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise NinExportError(f"'{side}' is not a nin-export engine sidecar (schema {schema!r}); {_HINT}")
    check_schema(data, "engine-sidecar", f"engine sidecar '{side}'", _HINT)
    if verify:
        check_engine_file(engine, data)
    return data


# The keys the builder writes, in its order; the ones a sidecar may lack (older builds) are left out of
# to_dict when unset, and keys this version does not know ride along in ``extra``.
_KEYS = (
    "schema", "engine", "bytes", "sha256", "flavour", "trt_version", "gpu", "targets", "precision", "precision_path",
    "strongly_typed", "stream_capture_ready", "workspace_mib", "profiles", "io", "source_onnx", "model",
    "model_metadata", "build_seconds", "created", "producer", "builder_warnings",
)  # fmt: skip
_OMITTED_WHEN_UNSET = ("stream_capture_ready", "workspace_mib", "producer", "builder_warnings")


@dataclass
class EngineInfo:
    """An engine's sidecar (and a BuildResult's ``info``) as a typed record; ``to_dict`` gives the JSON
    written beside the engine (schema engine-sidecar.schema.json), ``from_dict`` reads it back."""

    engine: str  # the engine's file name
    bytes: int
    sha256: str
    flavour: TrtFlavour  # TENSORRT or TENSORRT_RTX
    trt_version: str
    gpu: dict[str, Any] | None  # {name, compute_capability} of the GPU the build ran on, if any
    targets: list[str]  # TensorRT-RTX ahead-of-time targets; empty: the build GPU
    precision: Precision
    precision_path: str  # how the precision got into the engine, in words
    strongly_typed: bool
    profiles: list[dict[str, dict[str, list[int]]]]  # per profile: input name -> {min, opt, max}
    io: list[dict[str, Any]]  # {name, mode (input/output), dtype, shape}
    source_onnx: dict[str, Any]  # {file, sha256, bytes}
    model_metadata: dict[str, Any]
    build_seconds: float
    created: str  # ISO 8601, UTC
    model: str | None = None
    stream_capture_ready: bool | None = None
    workspace_mib: int | None = None
    producer: str | None = None  # "nin-export <version>"
    builder_warnings: list[str] | None = None
    schema: str = SIDECAR_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @property
    def profile(self) -> dict[str, dict[str, list[int]]]:
        """The first (for nin-export's builds, the only) optimization profile."""
        return self.profiles[0]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in _KEYS:
            value = getattr(self, key)
            if value is None and key in _OMITTED_WHEN_UNSET:
                continue
            d[key] = value.value if isinstance(value, (TrtFlavour, Precision)) else value
        return dict(d, **self.extra)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "engine sidecar") -> EngineInfo:
        """From a sidecar's JSON (checked against the schema by ``read_sidecar``); one line on a fault."""
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        if missing := [k for k in required if k not in d]:
            raise NinExportError(f"{where} lacks {', '.join(missing)}: not a complete engine description; {_HINT}")
        try:
            known = dict({k: d[k] for k in _KEYS if k in d}, flavour=TrtFlavour(d["flavour"]), precision=Precision(d["precision"]))
        except ValueError as e:
            raise NinExportError(f"{where}: {e}; {_HINT}") from None
        return cls(**known, extra={k: v for k, v in d.items() if k not in _KEYS})


def read_engine_info(engine: str | os.PathLike, verify: bool = True) -> EngineInfo:
    """``read_sidecar`` as an EngineInfo."""
    return EngineInfo.from_dict(read_sidecar(engine, verify), f"engine sidecar '{sidecar_path(engine)}'")


def check_engine_file(engine: Path, side: dict[str, Any]) -> None:
    """Refuse an engine whose size or sha256 differ from its sidecar's."""
    if engine.stat().st_size != side["bytes"] or sha256_file(engine) != side["sha256"]:
        raise EngineMismatchError(
            f"'{engine}' is not the engine its sidecar describes (size or sha256 differ: changed, truncated or replaced); {_HINT}"
        )


def current_gpu() -> dict[str, Any] | None:
    """Name and compute capability of GPU 0 (see nin_export.gpu), or None."""
    info = gpu_info()
    return {"name": info["name"], "compute_capability": info["compute_capability"]} if info else None


def check_compatible(side: dict[str, Any], trt: TrtModule, gpu: dict[str, Any] | None) -> None:
    """Refuse, in one line, an engine that the installed TensorRT or this GPU cannot run."""
    rebuild = f"rebuild it here with 'nin-export trt {side.get('source_onnx', {}).get('file', 'MODEL.onnx')}'"
    if side.get("flavour") != trt.flavour.value:
        raise EngineMismatchError(
            f"engine was built with {side.get('flavour')} {side.get('trt_version')}, but {trt.describe()} "
            f"is what is installed here: {rebuild}"
        )
    if side.get("trt_version") != trt.version:
        raise EngineMismatchError(
            f"engine was built with {side.get('flavour')} {side.get('trt_version')}, this is "
            f"{trt.describe()}; TensorRT engines only load in the exact version that built them: {rebuild}"
        )
    if gpu is None:
        raise BackendUnavailableError("no CUDA GPU is visible here (or torch has no CUDA): engines run only on an NVIDIA GPU")
    cc = gpu["compute_capability"]
    if trt.is_rtx:
        targets = side.get("targets") or []
        if cc not in targets:
            extra = " (TensorRT-RTX has no Hopper target)" if cc.startswith("9.") else ""
            raise EngineMismatchError(
                f"engine targets compute capability {', '.join(targets) or 'none recorded'}, this GPU "
                f"({gpu['name']}) is {cc}{extra}: {rebuild} or with --target"
            )
    else:
        built = side.get("gpu") or {}
        if built.get("compute_capability") != cc or built.get("name") != gpu["name"]:
            raise EngineMismatchError(
                f"engine was built on {built.get('name')} (compute capability {built.get('compute_capability')}), "
                f"this GPU is {gpu['name']} ({cc}): {rebuild}"
            )
