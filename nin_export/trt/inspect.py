"""What an engine is: its sidecar where there is one; its I/O and layers where it can be loaded. A plain
plan (trtexec's, no sidecar) is described by its size, its sha256 and TensorRT's own validity check."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core._io import sha256_file
from ..core.errors import NinExportError
from ._api import load_trt
from .runner import PLAIN_PLAN_NOTE, TrtRunner, engine_validity
from .sidecar import EngineInfo, read_engine_info, sidecar_path

__all__ = ["describe_engine", "describe_plain_plan"]


def describe_plain_plan(path: Path) -> dict[str, Any]:
    """Size, sha256 and what the installed TensorRT says of a plan that has no sidecar."""
    out: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_file(path), "note": PLAIN_PLAN_NOTE}
    try:
        trtm = load_trt()
    except NinExportError as e:
        out["validity"] = f"not checked: {e}"
        return out
    runtime = trtm.trt.Runtime(trtm.trt.Logger(trtm.trt.Logger.INTERNAL_ERROR))
    why = engine_validity(trtm, runtime, path.read_bytes())
    out["validity"] = f"{trtm.describe()}: " + ("valid here" if why is None else f"not valid here ({why})")
    return out


def _live(path: Path) -> dict[str, Any]:
    with TrtRunner(path) as r:
        engine, trt = r.engine, r.trt
        layers: list[str] = []
        try:
            insp = engine.create_engine_inspector()
            info = json.loads(insp.get_engine_information(trt.LayerInformationFormat.JSON))
            layers = [x if isinstance(x, str) else x.get("Name", str(x)) for x in info.get("Layers", [])]
        except Exception:  # noqa: BLE001  (layer detail needs ProfilingVerbosity.DETAILED)
            layers = []
        return {"device_memory_bytes": r.device_memory_bytes(), "num_layers": engine.num_layers, "layers": layers[:200]}


def describe_engine(path: str | os.PathLike) -> tuple[EngineInfo | None, dict[str, Any] | None, str]:
    """(the sidecar, or None for a plain plan; live info or None; why not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise NinExportError(f"engine '{path}' not found: build one with 'nin-export trt MODEL.onnx'")
    side = read_engine_info(path) if sidecar_path(path).exists() else None
    try:
        return side, _live(path), ""
    except NinExportError as e:
        return side, None, str(e)
