"""Atomic file writes and hashing: nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import FileFormatError, OutputPathError, first_line

__all__ = ["atomic_path", "write_json", "sha256_file", "ensure_dir", "read_json", "check_schema"]


def ensure_dir(path: str | os.PathLike, what: str = "output directory", hint: str = "choose another with -o") -> Path:
    """Create ``path`` (and parents) and check it can be written, or raise OutputPathError naming
    ``what`` the directory is for and ``hint`` (what to do instead)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-"):
            pass
    except OSError as e:
        raise OutputPathError(f"cannot write to {what} '{p}': {e.strerror or e}; {hint}") from None
    return p


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=suffix + ".tmp")
    except OSError as e:
        raise OutputPathError(f"cannot write '{dest}': {e.strerror or e}; choose another path") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(dest: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return Path(dest)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike, what: str, hint: str, schema: str | None = None) -> Any:
    """Read a JSON file the tool wrote (``what`` names it in errors, ``hint`` says what to do); with
    ``schema``, check it against the shipped JSON schema ``nin_export/schemas/<schema>.schema.json``."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise FileFormatError(f"{what} '{p}' not found; {hint}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FileFormatError(f"cannot read {what} '{p}': {getattr(e, 'strerror', None) or first_line(e, 100)}; {hint}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{what} '{p}' is not valid JSON ({e.msg}, line {e.lineno}); {hint}") from None
    if schema is not None:
        check_schema(data, schema, f"{what} '{p}'", hint)
    return data


def _schema(name: str) -> dict[str, Any]:
    from importlib import resources

    return json.loads(resources.files("nin_export").joinpath(f"schemas/{name}.schema.json").read_text())


def check_schema(data: Any, schema: str, what: str, hint: str) -> None:
    """Raise FileFormatError, in one line naming the first offending field, unless ``data`` fits ``schema``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(schema))
    err = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if err is not None:
        where = "/".join(map(str, err.absolute_path)) or "the top level"
        raise FileFormatError(f"{what} has the wrong structure at {where}: {first_line(err, 150)}; {hint}")
