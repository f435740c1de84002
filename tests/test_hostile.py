"""Hostile input, tried as a user would: the real CLI in a process of its own, for every command (a child
of a fork server that has imported torch once, see _forkserver.py; a fresh interpreter where a test needs
one, or for every call with NIN_EXPORT_TEST_FRESH=1).

Every case must end with exit status 1, exactly one line on stderr that starts with 'error:', no
traceback, and every file that existed before byte-identical (sha256) afterwards, with no
temporary file left behind. A full disk and a kill -9 are tried too.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nin_export.core.enums import Precision
from nin_export.export.exporter import export_model
from nin_export.models import create_model
from nin_export.quantize.ptq import QuantizeOptions, quantize

from ._forkserver import run_forked

CLI = [sys.executable, "-c", "from nin_export.cli import main; main()"]

try:
    import tensorrt_rtx  # noqa: F401

    HAVE_RTX = True
except ImportError:
    HAVE_RTX = False


# every call in a fresh interpreter: where asked, or where there is no fork (Windows)
FRESH = os.environ.get("NIN_EXPORT_TEST_FRESH", "") not in ("", "0") or not hasattr(os, "fork")


def cli_env(env=None) -> dict[str, str]:
    return {**os.environ, "NIN_EXPORT_DEBUG": "", "OMP_NUM_THREADS": "2", **(env or {})}


def run_fresh(args, cwd, env=None, preexec_fn=None, timeout=300):
    """The CLI in a fresh interpreter."""
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=cli_env(env), timeout=timeout, preexec_fn=preexec_fn
    )


def run_cli(args, cwd, env=None, preexec_fn=None, timeout=300):
    """The CLI as a user runs it, in a process of its own: a child of the fork server (see _forkserver.py),
    or a fresh interpreter where the test sets a process limit or NIN_EXPORT_TEST_FRESH=1 is set."""
    if preexec_fn is None and not FRESH:
        return run_forked([str(a) for a in args], str(cwd), cli_env(env), timeout)
    return run_fresh(args, cwd, env, preexec_fn, timeout)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_refused(res, root: Path, before: dict[str, str], needle: str | None = None) -> None:
    out = res.stdout + res.stderr
    assert res.returncode == 1, f"exit {res.returncode}: {out[-2000:]}"
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr
    assert all(line.startswith(("warning:", "- ", "error:")) for line in lines), res.stderr
    assert "Traceback" not in out, out
    if needle:
        assert needle in errors[0], errors[0]
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"changed or removed: {changed}"
    assert not [k for k in after if k.endswith(".tmp") or ".nin-" in k], [k for k in after if ".nin-" in k]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace of good and bad files, made once."""
    root = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    model = create_model("nin-cifar10")
    torch.save({"state_dict": model.state_dict(), "meta": {"model": "nin-cifar10"}}, root / "ckpt.pt")
    torch.save(model.state_dict(), root / "plain.pt")
    shutil.copy(root / "ckpt.pt", root / "w.onnx")
    res = export_model(model, root, weights=root / "ckpt.pt")
    for prec in (Precision.FP16, Precision.INT8):
        quantize(res.sim_path, QuantizeOptions(prec, calib_data="digits", calib_count=16, eval_count=16, cache_dir=None))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    next(iter(sd.values()))[0] = float("nan")
    torch.save(sd, root / "nan.pt")
    torch.save(create_model("nin-seed").state_dict(), root / "seed.pt")
    torch.save({"state_dict": create_model("nin-seed").state_dict(), "meta": {"model": "nope-model"}}, root / "other.pt")
    (root / "evil.pt").write_bytes(_pickled_object())
    (root / "corrupt.pt").write_bytes(b"\x00garbage")
    (root / "corrupt.onnx").write_bytes(b"not an onnx file")
    (root / "empty.onnx").write_bytes(b"")
    (root / "afile").write_text("a file where a directory should be")
    (root / "somedir").mkdir()
    (root / "emptydir").mkdir()
    (root / "flat").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8)).save(root / "flat" / f"{i}.png")
    np.save(root / "wrongshape.npy", np.zeros((20, 3, 8, 8), np.float32))
    np.save(root / "nan.npy", np.full((40, 3, 32, 32), np.nan, np.float32))
    _lying_onnx(res.sim_path, root / "lying.onnx")
    (root / "notjson.json").write_text("{not json")
    (root / "broken.json").write_text(json.dumps({"schema": "nin-export/bench/1", "rows": 7}))
    (root / "bad.toml").write_text('[train]\nepochs = "ten"\n')
    (root / "unknown.toml").write_text("colour = 'blue'\n")
    (root / "state").mkdir()
    (root / "state" / "pipeline-state.json").write_text(json.dumps({"stages": {"x": {"key": 3}}}))
    (root / "notes.txt").write_text("text")
    if HAVE_RTX:
        _engines(root)
    return root


def _pickled_object() -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({"state_dict": {}, "payload": Path("/etc/passwd")}, buf)
    return buf.getvalue()


def _lying_onnx(src: Path, dest: Path) -> None:
    import onnx

    from nin_export.core.onnx_utils import set_metadata

    m = onnx.load(str(src))
    set_metadata(m, {"input_size": [64, 64]})  # the graph takes 32x32
    onnx.save(m, str(dest))


def _engines(root: Path) -> None:
    from nin_export.trt import BuildOptions, TrtFlavour, build_engine
    from nin_export.trt.sidecar import sidecar_path

    opts = BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, targets=("SM86",), batch=(1, 2, 4))
    for name in ("m", "tampered", "badside"):
        build_engine(root / "nin-cifar10.sim.onnx", opts, output=root / f"{name}.engine")
    with open(root / "tampered.engine", "ab") as f:
        f.write(b"x")
    side = json.loads(sidecar_path(root / "badside.engine").read_text())
    side["profiles"] = "wide"
    sidecar_path(root / "badside.engine").write_text(json.dumps(side))


CASES = [
    # usage errors: exit 1 and one line, like every other mistake
    (["bogus-command"], "No such command"),
    (["onnx", "--no-such-option"], "No such option"),
    (["quantize"], "Missing argument"),
    (["train", "--epochs", "abc"], "not a valid integer"),
    (["bench", "--min-iters", "x"], "not a valid integer"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-method", "magic"], "magic"),
    (["inspect", "somedir"], "directory"),
    # models and export
    (["onnx", "--model", "nope-model", "-o", "out"], "unknown model"),
    (["onnx", "--input-size", "2", "-o", "out"], "smallest it takes"),
    (["onnx", "--input-size", "axb", "-o", "out"], "bad input size"),
    (["onnx", "--input-size", "99999", "-o", "out"], "pixels a side"),
    (["onnx", "--in-channels", "0", "-o", "out"], "in-channels"),
    (["onnx", "--in-channels", "100000", "-o", "out"], "in-channels"),
    (["onnx", "--num-classes", "-3", "-o", "out"], "num-classes"),
    (["onnx", "--model", "fc-cifar10", "--fc-width", "0", "-o", "out"], "fc-width"),
    (["onnx", "--fc-width", "64", "-o", "out"], "fc-* twins only"),
    (["onnx", "--opset", "5", "-o", "out"], "out of range"),
    (["onnx", "--opset", "13", "--exporter", "dynamo", "-o", "out"], "wrote opset 18"),
    (["onnx", "--batch", "0", "-o", "out"], "--batch"),
    (["onnx", "--weights", "corrupt.pt", "-o", "out"], "not a readable"),
    (["onnx", "--weights", "missing.pt", "-o", "out"], "not found"),
    (["onnx", "--weights", "evil.pt", "-o", "out"], "pickled Python objects"),
    (["onnx", "--weights", "seed.pt", "-o", "out"], "do not fit nin-cifar10"),
    (["onnx", "--weights", "other.pt", "-o", "out"], "give weights saved for this model"),
    (["onnx", "--weights", "nan.pt", "-o", "out"], "NaN"),
    (["onnx", "--weights", "nin-cifar10.sim.onnx", "-o", "out"], "not a readable"),
    (["onnx", "-o", "afile/out"], "not a directory"),
    (["onnx", "--model", "alexnet", "--dynamic-hw", "-o", "out"], "fully connected head"),
    (["onnx", "--weights", "w.onnx", "--name", "w", "-o", "."], "input of this command"),  # a checkpoint named w.onnx
    # inspect
    (["inspect", "missing.onnx"], "not found"),
    (["inspect", "corrupt.onnx"], "not a readable ONNX"),
    (["inspect", "empty.onnx"], "ONNX"),
    (["inspect", "missing.engine"], "not found"),
    # quantize
    (["quantize", "nin-cifar10.sim.onnx"], "choose a precision"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "--int8"], "choose one precision"),
    (["quantize", "nin-cifar10.int8.onnx", "--int8", "--calib-data", "digits"], "already quantized"),
    (["quantize", "nin-cifar10.fp16.onnx", "--fp16"], "already float16"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--calib-count", "4"], "too few calibration"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--calib-count", "0"], "positive"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "-o", "nin-cifar10.sim.onnx"], "input of this command"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "-o", "nin-cifar10.onnx"], "input of this command"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "-o", "ckpt.pt"], "input of this command"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "-o", "manifest.json"], "also where this command writes"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "missing_dir"], "not found"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "emptydir"], "no images"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "wrongshape.npy"], "has shape"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "nan.npy"], "NaN"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "synthetic"], "--synthetic"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--calib-cache", "afile"], "calibration cache"),
    (
        ["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--calib-cache", "x", "--no-calib-cache"],
        "contradict",
    ),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--agreement-floor", "2"], "agreement-floor"),
    (["quantize", "lying.onnx", "--fp16"], "metadata says input"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8"], "needs calibration data"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--min-agreement", "1.5"], "--min-agreement"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--exclude", "[unclosed"], "matches none"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "--exclude", "node_conv2d"], "--exclude does nothing with --fp16"),
    (
        [
            "quantize",
            "nin-cifar10.sim.onnx",
            "--int8",
            "--calib-data",
            "digits",
            "--quantizer",
            "modelopt",
            "--calib-method",
            "percentile",
        ],
        "modelopt calibrates with",
    ),  # fmt: skip
    (
        [
            "quantize",
            "nin-cifar10.sim.onnx",
            "--int8",
            "--calib-data",
            "digits",
            "--quantizer",
            "modelopt",
            "--int8-target",
            "ort-cpu",
        ],
        "TensorRT graphs only",
    ),  # fmt: skip
    (["sensitivity", "missing.onnx", "--calib-data", "digits"], "not found"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--exclude", "*"], "nothing is left to quantize"),
    (["sensitivity", "nin-cifar10.sim.onnx", "--calib-data", "digits", "--calib-count", "3"], "too few calibration images"),
    (["bench", "--streams", "0", "-o", "b"], "--streams"),
    (["bench", "--idle-s", "-1", "-o", "b"], "idle power"),
    (["doctor", "-o", "somedir"], "directory"),
    # train
    (["train", "--lr", "inf", "-o", "t.pt"], "--lr"),
    (["train", "--lr", "nan", "-o", "t.pt"], "--lr"),
    (["train", "--dropout", "1.5", "-o", "t.pt"], "--dropout"),
    (["train", "--epochs", "0", "-o", "t.pt"], "positive"),
    (["train", "--threads", "0", "-o", "t.pt"], "--threads"),
    (["train", "--head-bias", "nan", "-o", "t.pt"], "--head-bias"),
    (["train", "-o", "afile/x.pt"], "not a directory"),
    (["train", "-o", "somedir"], "directory"),
    (["train", "--model", "fc-cifar10", "--head-bias", "1", "-o", "t.pt"], "FC head"),
    (["train", "--data", "missing_dir", "-o", "t.pt"], "not found"),
    (["train", "--data", "flat", "-o", "t.pt"], "no class labels"),
    (["train", "--device", "tpu", "-o", "t.pt"], "device"),
    (["train", "--data", "ckpt.pt", "-o", "ckpt.pt"], "input of this command"),
    (["train", "--patience", "-1", "-o", "t.pt"], "--patience"),
    # eval
    (["eval", "missing.pt"], "not found"),
    (["eval", "plain.pt"], "--model"),
    (["eval", "nin-cifar10.sim.onnx", "--limit", "0"], "--limit"),
    (["eval", "nin-cifar10.sim.onnx", "--runtime", "nope"], "unknown runtime"),
    (["eval", "nin-cifar10.sim.onnx", "--runtime", "torch"], "runs checkpoint files"),
    (["eval", "notes.txt"], "is not a checkpoint"),
    (["eval", "lying.onnx"], "metadata says input"),
    # bench and report
    (["bench", "--backends", "tpu", "-o", "b"], "bad --backends"),
    (["bench", "--batch", "0", "-o", "b"], "positive"),
    (["bench", "--model", "alexnet", "-o", "b"], "no FC-headed twin"),
    (["bench", "--threads", "0", "-o", "b"], "--threads"),
    (["bench", "--min-ms", "inf", "-o", "b"], "timing out of range"),
    (["bench", "--precisions", "fp64", "-o", "b"], "bad --precisions"),
    (["bench", "-o", "afile"], "file"),
    (["bench", "--engine", "missing.engine", "-o", "b"], "not found"),
    (["report", "missing.json"], "not found"),
    (["report", "broken.json", "-o", "r"], "wrong structure"),
    (["report", "notjson.json", "-o", "r"], "not valid JSON"),
    # pipeline
    (["pipeline", "--config", "bad.toml"], "train.epochs"),
    (["pipeline", "--config", "missing.toml"], "missing.toml"),
    (["pipeline", "--config", "unknown.toml"], "unknown keys colour"),
    (["pipeline", "-o", "state"], "pipeline state"),
    (["pipeline", "--model", "alexnet", "-o", "p"], "no FC-headed twin"),
    (["pipeline", "--weights", "missing.pt", "-o", "p"], "not found"),
    (["pipeline", "--epochs", "0", "-o", "p"], "positive"),
]

TRT_CASES = [
    (["trt", "nin-cifar10.sim.onnx", "--fp32", "-o", "nin-cifar10.sim.onnx", "--backend", "tensorrt-rtx"], "input of this command"),
    (
        ["trt", "nin-cifar10.sim.onnx", "--fp16", "-o", "nin-cifar10.fp16.onnx", "--backend", "tensorrt-rtx"],
        "input of this command",  # the FP16 graph already there is never overwritten
    ),
    (["trt", "nin-cifar10.sim.onnx", "--fp16", "-o", "nin-cifar10.onnx", "--backend", "tensorrt-rtx"], "input of this command"),
    (["trt", "nin-cifar10.sim.onnx", "--batch", "4:2:1", "--backend", "tensorrt-rtx", "-o", "e.engine"], "unsupported profile"),
    (["trt", "nin-cifar10.sim.onnx", "--workspace", "0", "--backend", "tensorrt-rtx", "-o", "e.engine"], "--workspace"),
    (["trt", "nin-cifar10.sim.onnx", "--workspace", "99999999999", "--backend", "tensorrt-rtx", "-o", "e.engine"], "--workspace"),
    (["trt", "nin-cifar10.sim.onnx", "--target", "SM90", "--backend", "tensorrt-rtx", "-o", "e.engine"], "Hopper"),
    (["trt", "nin-cifar10.int8.onnx", "--fp16", "--backend", "tensorrt-rtx"], "already an INT8 graph"),
    (["trt", "nin-cifar10.sim.onnx", "--min-shape", "1x3x32x32", "--backend", "tensorrt-rtx"], "go together"),
    (["trt", "nin-cifar10.sim.onnx", "--builder-fp16", "--backend", "tensorrt-rtx"], "strongly typed only"),
    (["trt", "nin-cifar10.sim.onnx", "--backend", "tensorrt"], "pip install tensorrt"),
    (["trt", "nin-cifar10.sim.onnx", "--int8", "--fp16"], "choose one precision"),
    (["trt", "nin-cifar10.sim.onnx", "--int8", "--backend", "tensorrt-rtx"], "needs calibration data"),
    (["trt", "missing.onnx"], "not found"),
    (["inspect", "tampered.engine"], "not the engine its sidecar describes"),
    (["inspect", "badside.engine"], "wrong structure at profiles"),
    (["eval", "m.engine"], "GPU"),
]


def _check(ws: Path, args, needle) -> None:
    before = snapshot(ws)
    assert_refused(run_cli(args, ws), ws, before, needle)


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(map(str, c[0]))[:60] for c in CASES])
def test_hostile_input(ws, args, needle):
    _check(ws, args, needle)


@pytest.mark.skipif(not HAVE_RTX, reason="tensorrt_rtx not installed (pip install 'nin-export[rtx]')")
@pytest.mark.parametrize(("args", "needle"), TRT_CASES, ids=[" ".join(map(str, c[0]))[:60] for c in TRT_CASES])
def test_hostile_input_engines(ws, args, needle):
    _check(ws, args, needle)


def test_enough_cases():
    assert len(CASES) + len(TRT_CASES) >= 60


def test_the_fork_server_answers_as_a_fresh_interpreter(ws):
    """The cases above run in the fork server's children: a usage error, a refusal that loads torch, a
    traceback and a success print the same, byte for byte, as in a fresh interpreter."""
    for args in (
        ["bogus-command"],
        ["onnx", "--weights", "nan.pt", "-o", "out"],
        ["--debug", "eval", "missing.pt"],
        ["inspect", "nin-cifar10.sim.onnx"],
    ):
        fresh = run_fresh(args, ws)
        forked = run_forked(args, str(ws), cli_env(), 300)
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr), args


def test_debug_shows_the_traceback(ws):
    """For a bug report: the traceback, then the same one error line."""
    for args, env in (
        (["--debug", "onnx", "--weights", "corrupt.pt", "-o", "out"], None),
        (["eval", "missing.pt"], {"NIN_EXPORT_DEBUG": "1"}),
    ):
        res = run_cli(args, ws, env=env)
        assert res.returncode == 1 and "Traceback" in res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("error:")


def test_markup_in_file_names_is_printed_literally(ws):
    for name in ("model[v2].onnx", "nope[/].onnx", ":smile:.onnx"):
        res = run_cli(["inspect", name], ws)
        assert res.returncode == 1 and name in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs where this machine lets us mount one (root); else RLIMIT_FSIZE, which fails writes
    past 2 MiB the same way (EFBIG instead of ENOSPC)."""
    d = tmp_path / "disk"
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True).returncode == 0
    if mounted:
        yield d, None
        subprocess.run(["umount", str(d)], capture_output=True)
        return

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    yield d, limit


def test_full_disk_gives_one_line_and_leaves_nothing(small_disk, ws):
    disk, preexec = small_disk
    (disk / "keep.txt").write_text("was here before")
    before = snapshot(disk)
    res = run_cli(["onnx", "-o", disk / "out"], ws, preexec_fn=preexec)  # a 3.7 MB ONNX on a 2 MiB disk
    assert res.returncode == 1 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("No space left" in errors[0] or "too large" in errors[0]), res.stderr
    assert not list((disk / "out").glob("*.onnx")) and not list((disk / "out").glob(".*")), list((disk / "out").iterdir())
    assert snapshot(disk) == before


def test_kill_9_leaves_no_half_file_and_the_next_run_sweeps(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*CLI, "onnx", "--model", "fc-cifar10", "-o", str(out)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".*nin-*")):  # wait until it is writing a temporary
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = list(out.glob(".*nin-*"))
    assert leftovers, "the run was killed before it wrote anything: nothing to sweep"
    assert not (out / "fc-cifar10.sim.onnx").exists()
    res = run_cli(["onnx", "--model", "nin-cifar10", "-o", out], tmp_path)
    assert res.returncode == 0, res.stderr
    assert not list(out.glob(".*nin-*")), list(out.iterdir())


def test_a_plain_state_dict_works_where_the_readme_says(ws):
    res = run_cli(["eval", "plain.pt", "--model", "nin-cifar10", "--limit", "16"], ws)
    assert res.returncode == 0 and "top-1" in res.stdout, res.stderr
