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
from .errors import NinExportError

__all__ = [
    "MANIFEST_NAME",
    "default_onnx",
    "tool_versions",
    "record_artifact",
    "read_manifest",
    "check_manifest",
    "lineage",
    "newest_fp32_onnx",
    "ManifestError",
]


class ManifestError(NinExportError):
    """A manifest.json that nin-export did not write, or one that is damaged: left alone, never reset."""


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


PRODUCER = "nin-export"


def _is_ours(data: Any) -> bool:
    """A manifest nin-export wrote: its producer mark, or (before the mark) version 1 with artifact records."""
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        return False
    if data.get("producer") == PRODUCER:
        return True
    records = data["artifacts"].values()
    return data.get("version") == MANIFEST_VERSION and all(isinstance(r, dict) and "sha256" in r and "kind" in r for r in records)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest in ``directory`` (an empty one where there is none). A manifest nin-export did not write,
    or one that is damaged, is refused with one line and left exactly as it is: never reset, never replaced."""
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        return {"producer": PRODUCER, "version": MANIFEST_VERSION, "artifacts": {}}
    keep = "nin-export leaves it as it is: move it aside or write elsewhere (-o)"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read the manifest '{path}' ({getattr(e, 'strerror', None) or e}); {keep}") from None
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"the manifest '{path}' is damaged (not valid JSON: {e.msg}, line {e.lineno}); {keep}, or repair it"
        ) from None
    if not _is_ours(data):
        raise ManifestError(f"'{path}' was not written by nin-export (it holds no artifact records); {keep}")
    return data


def check_manifest(directory: str | os.PathLike) -> None:
    """Before any work: the manifest a command will add to is nin-export's and whole (or not there yet)."""
    read_manifest(directory)


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
    data["producer"] = PRODUCER
    data["artifacts"][path.name] = entry
    write_json(path.parent / MANIFEST_NAME, data)
    return entry


def lineage(path: str | os.PathLike) -> list[Path]:
    """``path`` and the artifacts it was made from, as its directory's manifest records them (parent,
    grandparent, ...): the files a command reading ``path`` must never overwrite."""
    path = Path(os.path.realpath(path))  # through a symlink: the lineage is where the file really is
    arts = read_manifest(path.parent)["artifacts"]
    out, name = [path], path.name
    while name in arts and arts[name].get("parent") and len(out) < 32:
        name = arts[name]["parent"]
        out.append(path.parent / name)
    return out


def newest_fp32_onnx(directory: str | os.PathLike) -> Path | None:
    """The FP32 ONNX the manifest in ``directory`` records last (the simplified one where both were written
    in the same second) that is still there; None where it records none."""
    d = Path(directory)
    found = [
        (e.get("created", ""), e.get("kind") == "onnx-simplified", name)
        for name, e in read_manifest(d)["artifacts"].items()
        if e.get("precision") == "fp32" and e.get("kind") in ("onnx", "onnx-simplified") and (d / name).is_file()
    ]
    return d / max(found)[2] if found else None


def default_onnx(directory: str | os.PathLike) -> Path:
    """What 'trt' builds when given no path: the newest FP32 ONNX in ``directory``'s manifest (as just written
    by 'nin-export onnx'), or NinExportError saying there is none and what to do."""
    d = Path(directory)
    if not (d / MANIFEST_NAME).is_file():
        raise NinExportError(
            f"no MODEL.onnx given, and no {d / MANIFEST_NAME} to take the newest FP32 ONNX from: run 'nin-export onnx' "
            f"first, or give the path"
        )
    found = newest_fp32_onnx(d)
    if found is None:
        raise NinExportError(
            f"no MODEL.onnx given, and {d / MANIFEST_NAME} records no FP32 ONNX that is still there: give the path"
        )
    return found
