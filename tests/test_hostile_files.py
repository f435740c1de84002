"""Nothing of the user's is touched: files compared as files, foreign and damaged files left alone,
intermediates under names of their own, clean ends under real signals, data validated at the door, no
silent no-ops, bounded resources, loaders that check meaning. The real CLI in a subprocess, as in
test_hostile.py: a refusal is exit 1, one 'error:' line, no traceback, every file as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .test_hostile import CLI, HAVE_RTX, assert_refused, run_cli, snapshot, ws  # noqa: F401  (ws: the shared workspace)


@pytest.fixture(scope="module")
def files(ws):  # noqa: F811
    """The workspace plus the files these cases need."""
    (ws / "links").mkdir(exist_ok=True)
    link = ws / "links" / "m.sim.onnx"
    if not link.exists():
        link.symlink_to(ws / "nin-cifar10.sim.onnx")
    (ws / "webapp").mkdir(exist_ok=True)
    (ws / "webapp" / "manifest.json").write_text(json.dumps({"name": "my-web-app", "version": "1.0", "icons": []}))
    (ws / "damaged").mkdir(exist_ok=True)
    shutil.copy(ws / "nin-cifar10.sim.onnx", ws / "damaged" / "nin-cifar10.sim.onnx")
    good = (ws / "manifest.json").read_text()
    (ws / "damaged" / "manifest.json").write_text(good.rstrip().rstrip("}") + ",}\n")  # a hand edit's trailing comma
    rng = np.random.default_rng(0)
    np.save(ws / "int32-big.npy", rng.integers(0, 100_000, (40, 3, 32, 32)).astype(np.int32))
    np.save(ws / "bool.npy", np.ones((40, 3, 32, 32), bool))
    np.save(ws / "complex.npy", np.ones((40, 3, 32, 32), np.complex64))
    x = rng.integers(0, 255, (40, 3, 32, 32)).astype(np.uint8)
    np.savez(ws / "neg-labels.npz", x=x, y=np.full(40, -1))
    np.savez(ws / "float-labels.npz", x=x, y=np.full(40, 0.5))
    np.savez(ws / "onehot-labels.npz", x=x, y=np.eye(10)[np.arange(40) % 10])
    np.savez(ws / "short-labels.npz", x=x, y=np.arange(10))
    _metadata_variants(ws)
    _pets(ws)
    (ws / "cfg.yaml").write_text("model: nin-cifar10\n")
    (ws / "zero-eval.toml").write_text("eval_limit = 0\n")
    (ws / "p2" / "nin-cifar10").mkdir(parents=True, exist_ok=True)
    shutil.copy(ws / "seed.pt", ws / "p2" / "nin-cifar10" / "nin-cifar10.pt")  # the user's file where training would write
    (ws / "foreign-ckpt.toml").write_text('out_dir = "p2"\n')
    _results_variants(ws)
    return ws


def _metadata_variants(root: Path) -> None:
    import onnx

    from nin_export.core.onnx_utils import read_metadata, set_metadata

    for name, change in (
        ("five-classes", {"classes": [str(i) for i in range(5)]}),
        ("two-means", {"mean": [0.5, 0.5], "std": [0.2, 0.2]}),
        ("tiny-std", {"std": [1e-30, 1e-30, 1e-30]}),
    ):
        m = onnx.load(str(root / "nin-cifar10.sim.onnx"))
        set_metadata(m, {**read_metadata(m), "num_classes": 10, **change})
        onnx.save(m, str(root / f"{name}.onnx"))


def _pets(root: Path) -> None:
    """A checkpoint trained on ten named classes, and image folders of two classes it never saw."""
    import torch

    from nin_export.models import create_model

    sd = create_model("nin-cifar10").state_dict()
    classes = ["airplane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    torch.save({"state_dict": sd, "meta": {"model": "nin-cifar10", "num_classes": 10, "classes": classes}}, root / "named.pt")
    for cls in ("ant", "bee"):
        (root / "pets" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            Image.new("RGB", (32, 32), (i * 40, 10, 10)).save(root / "pets" / cls / f"{i}.png")


def _results_variants(root: Path) -> None:
    """A results.json a stopped bench wrote (one model, one row), and copies that pass the schema but lie."""
    env = {
        "cpu": "x",
        "cpu_cores": 2,
        "versions": {"python": "3", "onnxruntime": "1", "torch": "2"},
        "tensorrt": {},
        "gpu": None,
        "jetson": None,
    }
    cfg = {"model": "nin-cifar10", "baseline": "fc-cifar10", "backends": ["onnxruntime"], "precisions": ["fp32"]}
    cfg.update(batches=[1], threads=None, timing={"warmup_ms": 1, "min_iters": 1, "min_ms": 1})
    model = {"params": 966986, "macs": 1, "input_shape": [3, 32, 32], "weight_bytes": {"fp32": 4, "fp16": 2, "int8": 1}}
    model.update(artifact_bytes={}, head="gap", role="model")
    lat = {"batch": 1, "iterations": 3, "min": 1.0, "mean": 1.0, "median": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0}
    lat.update(qps=1000.0, images_per_s=1000.0)
    row = {"model": "nin-cifar10", "role": "model", "backend": "onnxruntime", "device": "cpu", "precision": "fp32", "batch": 1}
    row.update(status="ok", reason=None, params=966986, macs_per_image=1, weight_bytes=4, artifact=None, latency_ms=lat)
    row.update(memory={"peak_rss_bytes": 100, "rss_before_load_bytes": 50}, quality=None, threads=None)
    doc = {"schema": "nin-export/bench/1", "created": "now", "environment": env, "config": cfg}
    doc.update(models={"nin-cifar10": model}, rows=[row], complete=False)
    (root / "stopped.json").write_text(json.dumps(doc))
    (root / "norows.json").write_text(json.dumps(dict(doc, rows=[])))
    for name, edit in (
        ("string-median", lambda d: d["rows"][0]["latency_ms"].update(median="fast")),
        ("null-rss", lambda d: d["rows"][0]["memory"].update(peak_rss_bytes=None)),
        ("no-batches", lambda d: d["config"].update(batches=[])),
        ("nan-median", lambda d: d["rows"][0]["latency_ms"].update(median=float("nan"))),
        ("zero-params", lambda d: d["models"]["nin-cifar10"].update(params=0)),
    ):
        d = json.loads(json.dumps(doc))
        edit(d)
        (root / f"{name}.json").write_text(json.dumps(d))


CASES = [
    # 1. files compared as files: through a symlink, the recorded parent is still an input
    (["quantize", "links/m.sim.onnx", "--fp16", "-o", "nin-cifar10.onnx"], "input of this command"),
    (["quantize", "links/m.sim.onnx", "--fp16", "-o", "links/../nin-cifar10.onnx"], "input of this command"),
    (["quantize", "links/m.sim.onnx", "--fp16", "-o", "links/m.sim.onnx"], "input of this command"),
    # 2. manifests nin-export did not write, or that are damaged, are left alone
    (["onnx", "-o", "webapp"], "not written by nin-export"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "-o", "webapp/m.fp16.onnx"], "not written by nin-export"),
    (["quantize", "damaged/nin-cifar10.sim.onnx", "--fp16"], "damaged"),
    (["onnx", "-o", "damaged"], "damaged"),
    # 5. data validated at the door
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "int32-big.npy"], "no pixel values"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "bool.npy"], "bool"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "complex.npy"], "complex64"),
    (["eval", "nin-cifar10.sim.onnx", "--data", "neg-labels.npz"], "start at 0"),
    (["eval", "nin-cifar10.sim.onnx", "--data", "float-labels.npz"], "not class indices"),
    (["eval", "nin-cifar10.sim.onnx", "--data", "onehot-labels.npz"], "one class index per image"),
    (["eval", "nin-cifar10.sim.onnx", "--data", "short-labels.npz"], "one label per image"),
    (["eval", "named.pt", "--data", "pets"], "not trained on (ant, bee)"),
    (["eval", "five-classes.onnx"], "5 class names for 10 classes"),
    (["eval", "two-means.onnx"], "2 means for 3 input channels"),
    (["quantize", "tiny-std.onnx", "--fp16"], "a std of 1e-30"),
    # 7. no silent no-ops: duplicates and contradictions are refused
    (["bench", "--batch", "1,8,1", "-o", "b"], "1 given twice"),
    (["bench", "--precisions", "fp32,fp32", "-o", "b"], "given twice"),
    (["bench", "--backends", "ort,onnxruntime", "-o", "b"], "given twice"),
    (["bench", "--backends", "torch,torch", "-o", "b"], "given twice"),
    (["pipeline", "--config", "zero-eval.toml", "-o", "p"], "eval_limit"),
    (["pipeline", "--config", "cfg.yaml", "-o", "p"], "name it .toml or .json"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "--calib-method", "entropy"], "--calib-method does nothing with --fp16"),
    (["quantize", "nin-cifar10.sim.onnx", "--fp16", "--calib-count", "50", "--quantize-head"], "do nothing with --fp16"),
    (["quantize", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--no-keep-io-types"], "does nothing with --int8"),
    (["trt", "nin-cifar10.sim.onnx", "--calib-data", "digits"], "without --fp16 or --int8"),
    (["trt", "nin-cifar10.sim.onnx", "--fp16", "--calib-count", "50"], "--calib-count does nothing with --fp16"),
    (["trt", "nin-cifar10.int8.onnx", "--int8", "--calib-data", "digits"], "already INT8"),
    (["pipeline", "--config", "foreign-ckpt.toml"], "does not fit nin-cifar10"),
    # 8. bounded resources: refused before the work, with the estimate
    (["onnx", "--batch", "100000", "-o", "out"], "GiB"),
    (["onnx", "--input-size", "4096", "-o", "out"], "GiB"),
    (["train", "--model", "nin-imagenet", "--batch-size", "4096", "-o", "t.pt"], "--batch-size"),
    # 9. loaders check meaning, not only the schema
    (["report", "string-median.json", "-o", "r"], "positive, finite latencies"),
    (["report", "null-rss.json", "-o", "r"], "peak RSS"),
    (["report", "no-batches.json", "-o", "r"], "empty batch list"),
    (["report", "nan-median.json", "-o", "r"], "NaN"),
    (["report", "zero-params.json", "-o", "r"], "parameters"),
]

TRT_CASES = [
    (["trt", "nin-cifar10.sim.onnx", "--batch", "1:1:2147483647", "--backend", "tensorrt-rtx", "-o", "e.engine"], "GiB by itself"),
    (["bench", "--engine", "m.engine", "--engine", "m.engine", "--backends", "trt", "-o", "b"], "two FP32 engines"),
    (["bench", "--model", "nin-imagenet", "--engine", "m.engine", "--backends", "trt", "-o", "b"], "built from nin-cifar10"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(map(str, c[0]))[:60] for c in CASES])
def test_refused_and_untouched(files, args, needle):
    before = snapshot(files)
    assert_refused(run_cli(args, files), files, before, needle)


@pytest.mark.skipif(not HAVE_RTX, reason="tensorrt_rtx not installed (pip install 'nin-export[rtx]')")
@pytest.mark.parametrize(("args", "needle"), TRT_CASES, ids=[" ".join(map(str, c[0]))[:60] for c in TRT_CASES])
def test_refused_and_untouched_engines(files, args, needle):
    before = snapshot(files)
    assert_refused(run_cli(args, files), files, before, needle)


def test_enough_new_cases():
    assert len(CASES) + len(TRT_CASES) >= 35  # with the behaviour tests below: 40 and more


# --- what works now, and what is left alone ---------------------------------------------------------


def test_a_long_output_name_gets_a_temporary_name_that_fits(files, tmp_path):
    name = "n" * 240 + ".onnx"  # 245 characters: the temporary name must still fit in 255 bytes
    res = run_cli(["quantize", files / "nin-cifar10.sim.onnx", "--fp16", "-o", tmp_path / name], tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / name).is_file() and not [p for p in tmp_path.iterdir() if ".nin-" in p.name]


def test_the_sweep_leaves_user_files_and_live_temporaries_alone(tmp_path):
    import fcntl

    from nin_export.core._io import RUN_TOKEN

    out = tmp_path / "out"
    out.mkdir()
    user = out / ".notes.nin-1-draft"  # a user's hidden file that looks like ours
    user.write_text("mine")
    token = "0123456789ab" if RUN_TOKEN != "0123456789ab" else "ba9876543210"
    live = out / f".x.onnx.nin-999999-{token}-abcdefgh.onnx.tmp"  # another container's run: PID unknown here, lock held
    live.write_text("being written")
    old = time.time() - 3600
    os.utime(user, (old, old))
    os.utime(live, (old, old))
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        res = run_cli(["onnx", "--model", "nin-cifar10", "-o", out], tmp_path)
    finally:
        os.close(fd)
    assert res.returncode == 0, res.stderr
    assert user.read_text() == "mine" and live.read_text() == "being written"


@pytest.mark.skipif(not HAVE_RTX, reason="tensorrt_rtx not installed (pip install 'nin-export[rtx]')")
def test_trt_never_replaces_the_users_own_int8_graph(files, tmp_path):
    for f in ("nin-cifar10.onnx", "nin-cifar10.sim.onnx", "nin-cifar10.int8.onnx", "manifest.json"):
        shutil.copy(files / f, tmp_path / f)
    mine = tmp_path / "nin-cifar10.int8.onnx"  # made with other options (calib-count 16) than trt's below
    before = mine.read_bytes()
    args = ["trt", "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--calib-count", "24", "--backend", "tensorrt-rtx"]
    res = run_cli([*args, "--target", "SM86", "--batch", "1:1:2"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert mine.read_bytes() == before, "the user's INT8 graph is left as it was"
    assert (tmp_path / "nin-cifar10.int8.trt-input.onnx").is_file() and "trt-input" in res.stderr + res.stdout
    assert (tmp_path / "nin-cifar10.int8.rtx.engine").is_file()


def test_fixed_batch_export_works_in_quantize_and_eval(tmp_path):
    assert run_cli(["onnx", "--batch", "1", "--input-size", "16", "-o", "out"], tmp_path).returncode == 0
    src = tmp_path / "out" / "nin-cifar10.sim.onnx"
    res = run_cli(["quantize", src, "--fp16", "--eval-count", "40"], tmp_path)
    assert res.returncode == 0, res.stderr
    res = run_cli(["eval", tmp_path / "out" / "nin-cifar10.fp16.onnx", "--limit", "37"], tmp_path)
    assert res.returncode == 0 and "top-1" in res.stdout, res.stderr
    for method in ("minmax", "entropy"):  # calibration too is fed one image at a time
        args = ["quantize", src, "--int8", "--calib-data", "digits", "--calib-count", "17", "--eval-count", "20"]
        res = run_cli([*args, "--calib-method", method, "--no-calib-cache", "-o", tmp_path / f"{method}.int8.onnx"], tmp_path)
        assert res.returncode == 0, res.stderr


def test_integer_pixels_are_scaled_and_said_so(files, tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (40, 3, 32, 32))
    np.save(tmp_path / "int64.npy", x.astype(np.int64))
    np.save(tmp_path / "uint8.npy", x.astype(np.uint8))
    outs = []
    for name in ("int64", "uint8"):
        res = run_cli(
            [*["quantize", files / "nin-cifar10.sim.onnx", "--int8", "--calib-data", tmp_path / f"{name}.npy"]]
            + ["--calib-count", "24", "--eval-count", "16", "--no-calib-cache", "-o", tmp_path / f"{name}.int8.onnx"],
            tmp_path,
        )
        assert res.returncode == 0, res.stderr
        outs.append(res.stderr)
    assert "int64 values taken as 8-bit pixels" in outs[0]
    import onnx
    from onnx import numpy_helper

    a, b = (onnx.load(str(tmp_path / f"{n}.int8.onnx")).graph.initializer for n in ("int64", "uint8"))
    assert all(np.array_equal(numpy_helper.to_array(i), numpy_helper.to_array(j)) for i, j in zip(a, b)), "the same pixels"


def test_report_renders_what_a_stopped_bench_kept(files, tmp_path):
    res = run_cli(["report", files / "stopped.json", "-o", tmp_path / "r"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "r" / "report.md").is_file()
    res = run_cli(["report", files / "norows.json", "-o", tmp_path / "r2"], tmp_path)
    assert res.returncode == 0 and "No row was measured" in (tmp_path / "r2" / "report.md").read_text()


def test_config_suffix_in_any_case_and_bare_command(files, tmp_path):
    (tmp_path / "p.TOML").write_text('[train]\nepochs = "ten"\n')
    res = run_cli(["pipeline", "--config", "p.TOML", "-o", "p"], tmp_path)
    assert res.returncode == 1 and "train.epochs" in res.stderr, res.stderr  # parsed as TOML, then checked
    res = run_cli([], tmp_path)
    assert res.returncode == 0 and "Usage: nin-export" in res.stdout and "error" not in res.stderr


def test_threads_are_capped_at_the_cpu_count():
    from nin_export.core.parse import cap_threads

    cpus = os.cpu_count() or 1
    assert cap_threads(100_000) == (cpus, f"--threads 100000 is more than this machine's {cpus} CPUs: using {cpus}")
    assert cap_threads(1) == (1, None) and cap_threads(None) == (None, None)


def test_out_of_memory_is_one_line_naming_the_option():
    from nin_export.cli import _one_line

    line = _one_line(RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory"), "onnx")
    assert line.startswith("out of memory") and "--batch or --input-size" in line
    assert "--batch-size" in _one_line(MemoryError(), "train")


# --- signals: real signals to real child processes ----------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _wait(cond, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_export_leaves_no_debris(tmp_path, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*CLI, "onnx", "--model", "fc-cifar10", "-o", str(out)], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    assert _wait(lambda: bool(list(out.glob(".*nin-*"))), 120), "it never started writing"
    t0 = time.time()
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert time.time() - t0 < 5, "ended within 5 seconds"
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig), proc.stderr.read()
    assert not list(out.glob(".*")) and not list(out.glob("*.onnx")), list(out.iterdir())


def _bench(tmp_path: Path) -> subprocess.Popen:
    args = ["bench", "--model", "nin-cifar10", "--baseline", "nin-cifar10", "--backends", "ort", "--precisions", "fp32"]
    args += ["--batch", "1", "--min-ms", "60000", "--data", "none", "--power", "none", "-o", str(tmp_path / "b")]
    return subprocess.Popen([*CLI, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_bench_children_end_with_their_parent(tmp_path, sig):
    """The worker (and multiprocessing's resource tracker) end within 5 s: SIGTERM ends the parent's run
    cleanly, SIGKILL leaves the parent-death signal to end the worker."""
    proc = _bench(tmp_path)
    assert _wait(lambda: len(_children(proc.pid)) >= 2, 180), "no worker started"
    time.sleep(1.0)
    kids = _children(proc.pid)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _wait(lambda: all(_gone(k) for k in kids), 5), [k for k in kids if not _gone(k)]


def test_sigterm_to_quantize_ends_modelopts_child(files, tmp_path):
    pytest.importorskip("modelopt", reason="nvidia-modelopt not installed (pip install 'nin-export[modelopt]')")
    args = ["quantize", files / "nin-cifar10.sim.onnx", "--int8", "--calib-data", "digits", "--quantizer", "modelopt"]
    proc = subprocess.Popen([*CLI, *map(str, args), "-o", str(tmp_path / "m.int8.onnx")], cwd=tmp_path, stderr=subprocess.PIPE)
    assert _wait(lambda: len(_children(proc.pid)) >= 2, 180), "ModelOpt's child never started"
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read()
    assert _wait(lambda: all(_gone(k) for k in kids), 5), [k for k in kids if not _gone(k)]
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())
