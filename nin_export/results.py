"""Benchmark results JSON: its schema name, a fresh document, and the one loader that validates it
against the shipped schema (``nin_export/schemas/bench-result.schema.json``)."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable

from ._io import check_schema, read_json
from .envinfo import machine_name
from .errors import NinExportError

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
        data["machine"] = machine_name(data["environment"])
        data["source"] = os.fspath(p)
        out.append(data)
    if not out:
        raise NinExportError("no results files given")
    return out
