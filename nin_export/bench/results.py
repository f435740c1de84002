"""Benchmark results JSON: its schema name, a fresh document, and the one loader that validates it
against the shipped schema (``nin_export/schemas/bench-result.schema.json``)."""

from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any, Iterable

from ..core._io import check_schema, read_json
from ..core.envinfo import machine_name
from ..core.errors import FileFormatError, NinExportError

__all__ = ["RESULT_SCHEMA", "new_results", "load_results"]

RESULT_SCHEMA = "nin-export/bench/1"
_HINT = "give the results.json that 'nin-export bench' wrote"


def new_results(environment: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """An empty results document: rows are appended as they are measured."""
    return {
        "schema": RESULT_SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "config": config,
        "models": {},
        "rows": [],
        "complete": False,
    }


_LATENCY = ("min", "mean", "median", "p90", "p95", "p99", "max", "images_per_s")


def _bad_number(x: Any, positive: bool) -> bool:
    return isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or (x <= 0 if positive else x < 0)


def _non_finite(x: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinite number inside ``x``, or None."""
    if isinstance(x, float) and not math.isfinite(x):
        return path or "value"
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        if (where := _non_finite(v, f"{path}/{k}" if path else str(k))) is not None:
            return where
    return None


def _row_problem(r: dict[str, Any]) -> str | None:
    if r["status"] != "ok":
        return None
    lat, mem = r.get("latency_ms"), r.get("memory")
    if not isinstance(lat, dict) or any(_bad_number(lat.get(k), positive=True) for k in _LATENCY):
        return "a measured row needs positive, finite latencies and throughput"
    if not isinstance(mem, dict) or _bad_number(mem.get("peak_rss_bytes"), positive=False):
        return "a measured row needs its peak RSS in bytes"
    return None


def check_meaning(data: dict[str, Any], what: str) -> None:
    """What the schema cannot say: finite numbers everywhere, positive latencies and parameter counts, a
    non-empty batch list. One line naming the first offender."""
    if not data["config"].get("batches"):
        raise FileFormatError(f"{what} has an empty batch list in its config; {_HINT}")
    if (where := _non_finite(data)) is not None:
        raise FileFormatError(f"{what} has a NaN or infinite number at {where}; {_HINT}")
    for name, m in data["models"].items():
        if _bad_number(m.get("params"), positive=True):
            raise FileFormatError(f"{what}: model '{name}' has {m.get('params')!r} parameters, not a positive count; {_HINT}")
    for i, r in enumerate(data["rows"]):
        if (why := _row_problem(r)) is not None:
            raise FileFormatError(f"{what}: row {i} ({r['model']}, {r['backend']}, batch {r['batch']}): {why}; {_HINT}")


def load_results(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Read and validate results files; each gains ``machine`` (a short name) and ``source`` (its path)."""
    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise NinExportError(f"results file '{p}' not found: run 'nin-export bench' first")
        data = read_json(p, "results file", _HINT)
        if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
            schema = data.get("schema") if isinstance(data, dict) else None
            raise NinExportError(f"'{p}' is not a nin-export benchmark result (schema {schema!r}); {_HINT}")
        check_schema(data, "bench-result", f"results file '{p}'", _HINT)
        check_meaning(data, f"results file '{p}'")
        data["machine"] = machine_name(data["environment"])
        data["source"] = os.fspath(p)
        out.append(data)
    if not out:
        raise NinExportError("no results files given")
    return out
