"""What an engine is: its sidecar always; its I/O and layers where it can be loaded."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import NinExportError
from .runner import TrtRunner
from .sidecar import read_sidecar

__all__ = ["describe_engine"]


def describe_engine(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """(sidecar, live info or None, why not loaded)."""
    side = read_sidecar(path)

    try:
        with TrtRunner(path) as r:
            engine = r.engine
            trt = r.trt
            layers: list[str] = []
            try:
                insp = engine.create_engine_inspector()
                info = json.loads(insp.get_engine_information(trt.LayerInformationFormat.JSON))
                for layer in info.get("Layers", []):
                    layers.append(layer if isinstance(layer, str) else layer.get("Name", str(layer)))
            except Exception:  # noqa: BLE001  (layer detail needs ProfilingVerbosity.DETAILED)
                layers = []
            live = {"device_memory_bytes": r.device_memory_bytes(), "num_layers": engine.num_layers, "layers": layers[:200]}
        return side, live, ""
    except NinExportError as e:
        return side, None, str(e)
