"""Atomic file writes and hashing: nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import FileFormatError, OutputPathError, first_line

try:
    import fcntl
except ImportError:  # not POSIX: no locks, the PID and age checks still stand
    fcntl = None  # type: ignore[assignment]  # the checker sees the POSIX module; elsewhere it is absent

__all__ = [
    "atomic_path",
    "write_json",
    "sha256_file",
    "ensure_dir",
    "read_json",
    "check_schema",
    "check_outputs",
    "sweep_stale_temps",
    "temp_prefix",
    "temp_dir",
]

_TMP_SUFFIX = ".tmp"


def ensure_dir(path: str | os.PathLike, what: str = "output directory", hint: str = "choose another with -o") -> Path:
    """Create ``path`` (and parents) and check it can be written, or raise OutputPathError naming
    ``what`` the directory is for and ``hint`` (what to do instead)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=temp_prefix("write-test")):
            pass
    except FileExistsError:  # mkdir(exist_ok=True) raises it only when the path is not a directory
        raise OutputPathError(f"cannot write to {what} '{p}': '{p}' is a file, not a directory; {hint}") from None
    except NotADirectoryError:
        raise OutputPathError(f"cannot write to {what} '{p}': part of that path is a file, not a directory; {hint}") from None
    except OSError as e:
        raise OutputPathError(f"cannot write to {what} '{p}': {e.strerror or e}; {hint}") from None
    return p


# Temporary names: ".<name>.nin-<pid>-<run token>-<8 random>[<suffix>.tmp]". The run token is new in every
# process (a forked child gets its own), so a sweep never takes a name another run (or a user) chose; the
# writer holds an flock on each temporary file and folder while it lives, so a sweep in another container
# (whose PIDs mean nothing here) leaves a live one alone.
RUN_TOKEN = secrets.token_hex(6)
RUN_STARTED = time.time()
_NAME_MAX = 255  # bytes, the usual limit of one path component
_TEMP_RE = re.compile(r"^\.(?P<name>.*)\.nin-(?P<pid>\d+)-(?P<token>[0-9a-f]{12})-(?P<rand>[a-z0-9_]{8})(?P<suffix>.*)$", re.S)


def temp_prefix(name: str, reserve: int = 0) -> str:
    """The start of a temporary name for ``name``: shortened so that the whole temporary name (with the 8
    random characters and ``reserve`` bytes of suffix) stays within one path component's 255 bytes."""
    fixed = f".nin-{os.getpid()}-{RUN_TOKEN}-"
    budget = _NAME_MAX - 1 - len(fixed) - 8 - reserve
    while len(os.fsencode(name)) > budget:
        name = name[:-1]
    return f".{name}{fixed}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hold(path: Path, fd: int | None = None) -> int | None:
    """An exclusive flock on ``path`` (a file or a folder), held while the returned descriptor is open."""
    if fcntl is None:
        return fd
    try:
        fd = os.open(path, os.O_RDONLY) if fd is None else fd
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # a file system without locks: the PID and age checks still stand
    return fd


def _held(path: Path) -> bool:
    """Whether some process holds ``path``'s flock (a live writer, possibly in another container)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return True  # unreadable: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _stale(p: Path) -> bool:
    """A temporary file or folder a killed nin-export run left: our exact name pattern, another run's token,
    older than this run, its process gone, and no lock on it."""
    m = _TEMP_RE.match(p.name)
    if m is None or m["token"] == RUN_TOKEN or p.is_symlink():
        return False
    suffix_ok = m["suffix"].endswith(_TMP_SUFFIX) if p.is_file() else (m["suffix"] == "" and p.is_dir())
    if not suffix_ok:
        return False
    try:
        if p.lstat().st_mtime >= RUN_STARTED:
            return False
    except OSError:
        return False
    return not _alive(int(m["pid"])) and not _held(p)


_SWEPT: set[str] = set()  # directories already swept by this process


def _new_run() -> None:
    """A forked child is a run of its own (multiprocessing's fork start method, a fork server): a new token,
    a new start time, and no folder swept yet."""
    global RUN_TOKEN, RUN_STARTED
    RUN_TOKEN, RUN_STARTED = secrets.token_hex(6), time.time()
    _SWEPT.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_run)


def sweep_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders that killed runs left in ``directory`` (once per directory
    and process: later leftovers are the next run's to sweep); return them."""
    removed: list[Path] = []
    d = Path(directory)
    key = os.path.realpath(d)
    if key in _SWEPT or not d.is_dir():
        return removed
    _SWEPT.add(key)
    for p in d.glob(".*.nin-*"):
        if not _stale(p):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def temp_dir(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A temporary folder in ``parent`` (swept first), locked while it lives, removed with its contents."""
    sweep_stale_temps(parent)
    d = Path(tempfile.mkdtemp(prefix=temp_prefix(name), dir=parent))
    fd = _hold(d)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def proc_kib_field(path: str, key: str) -> int | None:
    """A "Key:  1234 kB" line of a /proc file (meminfo, status) in bytes, or None where it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _same_file_key(p: Path) -> tuple:
    try:
        st = p.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(p))


def check_outputs(outputs: Sequence[str | os.PathLike], inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Before any work starts: every output is a writable file path, none is an input (or an input's
    ancestor, when the caller passes those as inputs too) under any name, and no two outputs of the
    run are the same file."""
    ins = {_same_file_key(Path(p)): Path(p) for p in inputs if p is not None and Path(p).exists()}
    seen: dict[tuple, Path] = {}
    for o in outputs:
        o = Path(o)
        if o.is_dir():
            raise OutputPathError(f"output '{o}' is a directory: give a file name")
        key = _same_file_key(o)
        if key in ins:
            same = "" if Path(ins[key]) == o else f" (the same file as '{ins[key]}')"
            raise OutputPathError(
                f"output '{o}' is an input of this command{same}: nin-export never overwrites its inputs; choose another output"
            )
        if key in seen:
            raise OutputPathError(f"output '{o}' is also where this command writes '{seen[key].name}': choose another output")
        seen[key] = o
        ensure_dir(o.parent, "output directory", "choose another output")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.
    Leftovers of killed runs beside ``dest`` are removed first."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(dest.parent)
        end = suffix + _TMP_SUFFIX
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=temp_prefix(dest.name, len(os.fsencode(end))), suffix=end)
    except OSError as e:
        raise OutputPathError(f"cannot write '{dest}': {e.strerror or e}; choose another path") from None
    _hold(Path(tmp), fd)  # held open and locked while the temporary file lives
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)
        os.close(fd)


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
