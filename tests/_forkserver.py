"""A fork server for the CLI tests, in the manner of multiprocessing's "forkserver" start method.

Starting the CLI in a fresh interpreter costs ~4 s here, nearly all of it importing torch, onnx and
onnxruntime; the hostile suites start it ~180 times. This server imports those once, then forks one child
per call. Each child is a new process that runs the real ``nin_export.cli.main`` from a clean ``sys.argv``,
in the caller's working directory and environment, with stdin from /dev/null and stdout/stderr into files,
and exits as the interpreter would (atexit handlers run, buffers flushed) without tearing every module down.
The caller gets its exit status, negative for a signal, as ``subprocess`` reports it.

What a child shares with its siblings is only what the imports made; nin-export's per-process state (the
run token of temporary names, the run's start time) is renewed at fork by ``nin_export.core._io``. Tests
that need a process of their own (a kill -9, signals, a file-size limit) start a fresh interpreter, and
``NIN_EXPORT_TEST_FRESH=1`` sends every call to one.

Protocol: one JSON line per request on a Unix socket ({args, cwd, env, stdout, stderr, timeout}), one
JSON line back ({returncode, timed_out}).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

# What the commands import lazily, imported once here. Nothing that starts threads: a forked child has only
# the forking thread, and a library whose thread pool was made before the fork can hang or abort the child
# (onnxruntime's, and onnxsim's, which imports it). Those, and tensorrt_rtx, each child imports itself.
PRELOAD = (
    "torch",
    "torch._dynamo",  # what model building and export reach for (~1.4 s)
    "torch.fx.experimental.symbolic_shapes",
    "onnx",
    "PIL.Image",
    "nin_export.cli",
    "nin_export.models",
    "nin_export.export.exporter",
    "nin_export.quantize.ptq",
    "nin_export.evaluate",
    "nin_export.train",
    "nin_export.pipeline",
    "nin_export.bench.run",
)


# ----------------------------------------------------------------------------------------- the server side


def _child(req: dict[str, Any]) -> None:
    """Become the CLI run the request asks for, and exit as the interpreter does, less the teardown of
    every module (1.1 s here with torch loaded): atexit handlers, flushed buffers, the exit status."""
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["stdout"], os.O_WRONLY), (2, req["stderr"], os.O_WRONLY)):
        new = os.open(path, flags)
        os.dup2(new, fd)
        os.close(new)
    sys.argv = ["nin-export", *req["args"]]
    from nin_export.cli import main

    code: Any = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("text"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code & 0xFF)


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)), False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL, True
        time.sleep(0.01)


def serve(path: str) -> None:
    import numpy  # noqa: F401  (OpenBLAS's threads: it stops and restarts them around a fork)

    threads = len(os.listdir("/proc/self/task"))
    for name in PRELOAD:
        __import__(name)
    if len(os.listdir("/proc/self/task")) > threads:
        raise RuntimeError(f"a module in PRELOAD started a thread: {threads} threads became {len(os.listdir('/proc/self/task'))}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(5)
    parent = os.getppid()
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the test process is gone (killed, say): so is the server, and its folder
                shutil.rmtree(os.path.dirname(path), ignore_errors=True)
                return
            continue
        conn.settimeout(None)
        with conn, conn.makefile("rwb") as f:
            while line := f.readline():
                req = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    _child(req)
                code, timed_out = _wait(pid, req["timeout"])
                f.write(json.dumps({"returncode": code, "timed_out": timed_out}).encode() + b"\n")
                f.flush()


# ----------------------------------------------------------------------------------------- the client side


class _Client:
    def __init__(self, env: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nin-forkserver-"))
        if len(str(self.dir)) > 90:  # a Unix socket's path has at most 107 bytes
            self.dir.rmdir()
            self.dir = Path(tempfile.mkdtemp(prefix="nin-forkserver-", dir="/tmp"))
        sock = str(self.dir / "s")
        with open(self.dir / "server.log", "wb") as log:  # what the server says, if it fails to start
            self.proc = subprocess.Popen(
                [sys.executable, __file__, sock], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + 120
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:  # until it has imported everything and listens
            try:
                self.sock.connect(sock)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                    self.close()
                    raise RuntimeError(f"the CLI fork server did not start:\n{log}") from None
                time.sleep(0.05)
        self.f = self.sock.makefile("rwb")
        atexit.register(self.close)

    def run(self, args: list[str], cwd: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        out, err = self.dir / "stdout", self.dir / "stderr"
        out.write_bytes(b"")
        err.write_bytes(b"")
        req = {"args": args, "cwd": cwd, "env": env, "stdout": str(out), "stderr": str(err), "timeout": timeout}
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        reply = json.loads(self.f.readline())
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(["nin-export", *args], timeout, stdout, stderr)
        return subprocess.CompletedProcess(["nin-export", *args], reply["returncode"], stdout, stderr)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


_CLIENT: _Client | None = None


def run_forked(args: list[str], cwd: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child of this test process's fork server (started on first use, with ``env``)."""
    global _CLIENT
    if _CLIENT is None or _CLIENT.proc.poll() is not None:
        _CLIENT = _Client(env)
    return _CLIENT.run(args, cwd, env, timeout)


if __name__ == "__main__":
    serve(sys.argv[1])
