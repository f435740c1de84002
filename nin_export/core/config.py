"""Typed settings files: a JSON or TOML file becomes a (nested) dataclass, every value checked
against the field's type, with one clear line for the first that does not fit."""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import FileFormatError

__all__ = ["load_settings", "from_dict"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # a settings class is a dataclass


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FileFormatError(f"{where} is {value!r}, expected a list")
    return value


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp``, or FileFormatError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except FileFormatError:
                continue
        raise FileFormatError(f"{where} is {value!r}, expected {_describe(tp)}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a type hint: a dataclass type, never an instance
        return from_dict(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise FileFormatError(f"{where} is {value!r}, expected one of {', '.join(str(m.value) for m in tp)}") from None
    if origin in (tuple, collections.abc.Sequence):  # a list in the file; a tuple in the settings
        (item, *_) = typing.get_args(tp) or (Any,)
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(_as_list(value, where)))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(_as_list(value, where))]
    if origin is dict:
        if not isinstance(value, dict):
            raise FileFormatError(f"{where} is {value!r}, expected a table of values")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise FileFormatError(f"{where} is {value!r}, expected a finite number")
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise FileFormatError(f"{where} is {value!r}, expected {_describe(tp)}")
    return value


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and ill-typed values are refused."""
    if not isinstance(data, dict):
        raise FileFormatError(f"{where} is {data!r}, expected a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FileFormatError(f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}" if where != "config" else k) for k, v in data.items()})


def load_settings(cls: type[T], path: str | os.PathLike) -> T:
    """A JSON or TOML file of ``cls``'s fields (nested sections as TOML tables)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise FileFormatError(f"cannot read config '{p}': {getattr(e, 'strerror', None) or e}") from None
    kind = {".toml": "TOML", ".json": "JSON"}.get(p.suffix.lower())  # the suffix in any case: .TOML is TOML
    if kind is None:
        raise FileFormatError(f"config '{p}': name it .toml or .json, so its format is known")
    try:
        if kind == "TOML":
            import tomllib  # Python 3.11+

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise FileFormatError("TOML configs need Python 3.11+; write the config as JSON") from None
    except ValueError as e:
        raise FileFormatError(f"config '{p}' is not valid {kind}: {e}") from None
    try:
        return from_dict(cls, data)
    except FileFormatError as e:
        raise FileFormatError(f"config '{p}': {e}") from None
