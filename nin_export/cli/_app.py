"""The CLI's frame: the error boundary (one 'error:' line, exit status 1, no traceback), the consoles,
progress lines and bars. Nothing here imports torch."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..core._proc import Terminated, handle_termination, signal_name
from ..core.errors import NinExportError, first_line

__all__ = ["console", "err_console", "DEBUG_ENV", "debug", "one_line", "Cli", "progress", "warn", "progress_bar", "bar_task"]

# Piped output (CI logs, files) gets a wide fixed width so figures are never cut.
console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 132)
err_console = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 132)


DEBUG_ENV = "NIN_EXPORT_DEBUG"


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


# What to lower, per command, when memory runs out
_OOM_OPTION = {
    "onnx": "--batch or --input-size",
    "train": "--batch-size or --input-size",
    "bench": "--batch",
    "quantize": "--calib-count or --eval-count",
    "sensitivity": "--calib-count or --eval-count",
    "trt": "--batch (the profile's maximum) or --workspace",
    "eval": "--limit",
    "pipeline": "the [train] batch_size or the [bench] batches",
}
_OOM_SIGNS = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc", "failed to allocate")


def _out_of_memory(e: BaseException, command: str | None) -> str | None:
    """One line for running out of memory anywhere (torch, onnxruntime, numpy, TensorRT), naming what to lower."""
    text = str(e).lower()
    if not isinstance(e, MemoryError) and not any(sign in text for sign in _OOM_SIGNS):
        return None
    what = _OOM_OPTION.get(command or "", "the batch size or input size")
    return f"out of memory ({type(e).__name__}: {first_line(e, 120)}): lower {what}"


def one_line(e: BaseException, command: str | None = None) -> str:
    """What the user reads: the message of our own errors, the cause of a system error, the type and
    first line of anything else (with the way to see the traceback)."""
    if isinstance(e, NinExportError):
        return str(e)
    if (oom := _out_of_memory(e, command)) is not None:
        return oom
    if isinstance(e, click.ClickException):
        return f"{e.format_message()} (see --help)"
    if isinstance(e, OSError) and e.strerror:
        where = f" '{e.filename}'" if e.filename else ""
        return f"{e.strerror}{where}: free space or choose another path" if e.errno in (28, 27) else f"{e.strerror}{where}"
    return f"unexpected {type(e).__name__}: {first_line(e)} (rerun with --debug for the traceback, and report it)"


class Cli(click.Group):
    """The one boundary: any exception, usage errors included, becomes one ``error:`` line on stderr and
    exit status 1 (Ctrl-C: 130). ``--debug`` or NIN_EXPORT_DEBUG=1 prints the traceback first."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--debug" in argv[:1]:  # a global switch, before the command
            os.environ[DEBUG_ENV] = "1"
            argv = argv[1:]
        if not argv:  # bare 'nin-export': the help, as 'nin-export --help' prints it
            argv = ["--help"]
        if not debug():  # libraries' own warnings are not the user's business; --debug shows them
            warnings.simplefilter("ignore")
        handle_termination()  # SIGTERM and SIGHUP end a command as Ctrl-C does: temporary files and children cleaned up
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.Abort, KeyboardInterrupt) as e:  # click turns KeyboardInterrupt (and Terminated) into Abort
            sig = e if isinstance(e, Terminated) else e.__cause__ or e.__context__
            if isinstance(sig, Terminated):
                err_console.print(f"interrupted by {signal_name(sig.signum)}: temporary files removed, nothing half-written kept")
                sys.exit(128 + sig.signum)
            err_console.print("interrupted")
            sys.exit(130)
        except Exception as e:  # noqa: BLE001  (the boundary: nothing escapes as a traceback)
            if debug():
                import traceback

                traceback.print_exc()
            lines = one_line(e, argv[0] if argv else None).splitlines() or [type(e).__name__]
            err_console.print(f"[bold red]error:[/] {escape(' '.join(line.strip() for line in lines))}", soft_wrap=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def progress(msg: str) -> None:
    err_console.print(f"[dim]-[/] {escape(msg)}")


def warn(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)


def progress_bar() -> Progress:
    """A progress bar on a terminal; off a terminal (logs, CI) the per-epoch and per-row lines suffice."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def bar_task(b: Progress, description: str) -> Any:
    """A task on the bar ``b`` and the (message, done, total) callback the library's long runs report to."""
    task = b.add_task(description, total=None)
    return lambda m, d, t: b.update(task, description=escape(m), completed=d, total=t)
