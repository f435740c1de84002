"""The manifest beside the artifacts: what each file is, where it came from, how it was checked."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from ._io import sha256_file, write_json

__all__ = ["MANIFEST_NAME", "tool_versions", "record_artifact", "read_manifest", "lineage"]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def tool_versions(*extra: str) -> dict[str, str]:
    names = ("nin-export", "torch", "onnx", "onnxruntime", "onnxsim", "numpy", *extra)
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("artifacts"), dict):
                return data
        except (OSError, json.JSONDecodeError):
            pass  # a broken manifest is rebuilt, never trusted
    return {"version": MANIFEST_VERSION, "artifacts": {}}


def record_artifact(
    path: str | os.PathLike,
    *,
    kind: str,
    parent: str | os.PathLike | None,
    precision: str,
    options: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add or replace the entry for ``path`` in the manifest of its directory (atomically)."""
    path = Path(path)
    entry: dict[str, Any] = {
        "file": path.name,
        "kind": kind,
        "parent": Path(parent).name if parent else None,
        "precision": precision,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tools": tool_versions(),
        "options": options or {},
        "verification": verification,
    }
    if extra:
        entry.update(extra)
    data = read_manifest(path.parent)
    data["artifacts"][path.name] = entry
    write_json(path.parent / MANIFEST_NAME, data)
    return entry


def lineage(path: str | os.PathLike) -> list[Path]:
    """``path`` and the artifacts it was made from, as its directory's manifest records them (parent,
    grandparent, ...): the files a command reading ``path`` must never overwrite."""
    path = Path(path)
    arts = read_manifest(path.parent)["artifacts"]
    out, name = [path], path.name
    while name in arts and arts[name].get("parent") and len(out) < 32:
        name = arts[name]["parent"]
        out.append(path.parent / name)
    return out
