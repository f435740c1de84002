"""Child processes that never outlive their parent, and signals that end a command cleanly.

- ``spawn_call(fn, arg)`` runs ``fn(arg)`` in a fresh spawned process (nothing inherited, so its peak RSS
  is its own) and returns the result. If the parent is interrupted (Ctrl-C, SIGTERM, SIGHUP) the child is
  terminated, then killed after a grace period; if the parent is killed outright, Linux's parent-death
  signal kills the child. With the child gone, multiprocessing's resource tracker sees its pipe close and
  ends too.
- ``handle_termination()`` turns SIGTERM and SIGHUP into ``Terminated`` (a KeyboardInterrupt), so that every
  ``finally`` runs: temporary files are removed and children ended, as for Ctrl-C.
"""

from __future__ import annotations

import multiprocessing as _mp
import os
import signal
import sys
from typing import Any, Callable

__all__ = ["spawn_call", "die_with_parent", "handle_termination", "Terminated", "GRACE_S", "signal_name"]

GRACE_S = 3.0  # a terminated child gets this long before it is killed
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _raise(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


def handle_termination() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread (where Python delivers signals)."""
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, _raise)


def die_with_parent() -> None:
    """In a child: ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG), and exit at
    once if the parent is already gone. Elsewhere nothing (the parent's own cleanup still ends children)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        os._exit(1)


def _child(fn: Callable[[Any], Any], arg: Any, conn: Any) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    try:
        conn.send(("ok", fn(arg)))
    except BaseException as e:  # noqa: BLE001  (sent back and raised in the parent)
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def spawn_call(fn: Callable[[Any], Any], arg: Any) -> Any:
    """``fn(arg)`` in a fresh spawned process that dies with this one; its result, or RuntimeError with the
    child's error (or how it died)."""
    ctx = _mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, arg, send), daemon=True)
    proc.start()
    send.close()
    try:
        try:
            status, value = recv.recv()
        except EOFError:
            proc.join(GRACE_S)
            raise RuntimeError(f"the worker process died (exit code {proc.exitcode})") from None
        if status == "error":
            raise RuntimeError(value)
        return value
    finally:
        recv.close()
        if proc.is_alive():
            proc.terminate()
            proc.join(GRACE_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
