"""A tiny real benchmark run (small models, few iterations): schema, rows, report files."""

import csv
import json
import os
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from nin_export.bench.power import PowerOptions
from nin_export.bench.report import pair_ratios, render_report
from nin_export.bench.run import BenchConfig, run_bench
from nin_export.core.enums import Precision
from nin_export.runners.timing import LatencyStats, TimingOptions, percentile

from .conftest import assert_one_line_error

try:
    import tensorrt_rtx  # noqa: F401

    HAVE_RTX = True
except ImportError:
    HAVE_RTX = False

TINY = TimingOptions(warmup_ms=10, min_iters=3, min_ms=20)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = BenchConfig(
        model="nin-cifar10",
        runtimes=["torch", "ort", "ort-cuda", "ort-trt", "trt"],
        precisions=[Precision.FP32, Precision.INT8],
        batches=[1, 2],
        timing=TINY,
        out_dir=str(out),
        eval_count=16,
        calib_count=16,
        model_kwargs={"fc-cifar10": {"fc_width": 64}},
    )
    seen = []
    res = run_bench(cfg, progress=lambda m, d, t: seen.append((m, d, t)))
    return res, seen, out


def test_percentile_is_trtexecs():
    import numpy as np

    a = np.arange(1, 101, dtype=float)
    assert percentile(a, 99) == 99.0 and percentile(a, 50) == 50.0
    assert percentile(a, 90) == 91.0  # (1 - 0.9) * 100 = 9.999... in floating point, as in trtexec's C++


def test_results_validate_against_schema(tiny_results):
    res, _, out = tiny_results
    data = json.loads((out / "results.json").read_text())
    schema = json.loads(resources.files("nin_export").joinpath("schemas/bench-result.schema.json").read_text())
    jsonschema.validate(data, schema)
    assert data["complete"] and data["config"]["baseline"] == "fc-cifar10"
    assert len(data["rows"]) == 2 * 5 * 2 * 2  # models x runtimes x precisions x batches


def test_rows_have_status_and_figures(tiny_results):
    res, seen, _ = tiny_results
    rows = res["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {(r["backend"], r["precision"]) for r in ok} >= {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    for r in ok:
        lat = r["latency_ms"]
        assert lat["iterations"] >= 3 and lat["min"] <= lat["median"] <= lat["max"]
        assert lat["images_per_s"] > 0 and r["memory"]["peak_rss_bytes"] > r["memory"]["rss_before_load_bytes"] > 0
        assert r["quality"]["samples"] == 16 and 0 <= r["quality"]["top1_agreement"] <= 1 and "accuracy" in r["quality"]
    torch_int8 = [r for r in rows if r["backend"] == "torch" and r["precision"] == "int8"]
    assert all(r["status"] == "skipped" and "INT8" in r["reason"] for r in torch_int8)
    assert all(r["status"] in ("ok", "skipped", "failed") and (r["status"] == "ok" or r["reason"]) for r in rows)
    assert res["models"]["nin-cifar10"]["params"] == 966_986
    assert any("onnxruntime" in m for m, _, _ in seen)


def test_uninstalled_backend_gives_skipped_rows(tiny_results):
    res, _, _ = tiny_results
    trt_rows = [r for r in res["rows"] if r["backend"] == "tensorrt"]
    assert trt_rows and all(r["status"] in ("skipped", "failed") and r["reason"] for r in trt_rows)
    try:
        import tensorrt_rtx  # noqa: F401
    except ImportError:
        assert all("TensorRT" in r["reason"] or "tensorrt" in r["reason"] for r in trt_rows)


def test_report_renders_markdown_csv_and_plots(tiny_results, tmp_path):
    res, _, out = tiny_results
    rep = render_report([out / "results.json", out / "results.json"], tmp_path / "report")  # two files merge
    md = rep["markdown"].read_text()
    assert "nin-cifar10 vs fc-cifar10" in md and "Side by side" in md and "Not measured" in md
    with open(rep["csv"]) as f:
        assert len(list(csv.DictReader(f))) == 2 * len(res["rows"])
    for p in rep["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    pairs = pair_ratios(json.loads((out / "results.json").read_text()) | {"machine": "m"})
    ratio = next(e for e in pairs if e["backend"] == "onnxruntime" and e["precision"] == "fp32" and e["batch"] == 1)
    assert ratio["latency_ratio"] == pytest.approx(ratio["twin"]["latency_ms"]["median"] / ratio["nin"]["latency_ms"]["median"])
    h = rep["headline"][0]
    assert h["params_ratio"] == pytest.approx(res["models"]["fc-cifar10"]["params"] / 966_986)


def test_cli_bench_and_report_errors(cli_run, tmp_path):
    assert_one_line_error(*cli_run("bench", "--backends", "tpu", "-o", tmp_path)[::2], "bad --backends")
    assert_one_line_error(*cli_run("bench", "--batch", "0", "-o", tmp_path)[::2], "positive")
    assert_one_line_error(*cli_run("bench", "--model", "alexnet", "-o", tmp_path)[::2], "no FC-headed twin")
    assert_one_line_error(*cli_run("report", tmp_path / "missing.json")[::2], "not found")
    (tmp_path / "x.json").write_text("{}")
    assert_one_line_error(*cli_run("report", tmp_path / "x.json")[::2], "not a nin-export benchmark result")


def test_latency_stats_fields():
    assert {"min", "mean", "median", "p90", "p95", "p99", "max", "qps", "images_per_s"} <= set(LatencyStats.__dataclass_fields__)


def test_onnxruntime_gpu_providers_are_rows_of_the_table(tiny_results):
    """Available where onnxruntime-gpu is installed; elsewhere skipped with the reason."""
    import onnxruntime as ort

    res, _, _ = tiny_results
    for name, provider in (("onnxruntime-cuda", "CUDAExecutionProvider"), ("onnxruntime-trt", "TensorrtExecutionProvider")):
        rows = [r for r in res["rows"] if r["backend"] == name]
        assert len(rows) == 2 * 2 * 2
        if provider not in ort.get_available_providers():
            assert all(r["status"] == "skipped" and provider in r["reason"] and "onnxruntime-gpu" in r["reason"] for r in rows)
        elif not res["environment"].get("gpu"):
            assert all(r["status"] == "skipped" and "GPU" in r["reason"] for r in rows)


@pytest.mark.skipif(not HAVE_RTX, reason="tensorrt_rtx not installed (pip install 'nin-export[rtx]')")
def test_a_plain_plan_without_sidecar_is_accepted(tmp_path):
    """trtexec's engines have no sidecar: bench takes them with a note, and TensorRT's own check decides."""
    from nin_export.bench.run import engine_precision
    from nin_export.export.exporter import export_model
    from nin_export.models import create_model
    from nin_export.trt import BuildOptions, TrtFlavour, build_engine

    onnx_path = export_model(create_model("nin-cifar10"), tmp_path).final_path
    res = build_engine(
        onnx_path,
        BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, targets=("SM86",), batch=(1, 1, 2)),
        output=tmp_path / "plain.fp32.plan",
    )
    res.sidecar.unlink()  # now it is a plain plan, as trtexec writes
    assert engine_precision(res.engine)[0] is Precision.FP32 and "no sidecar" in engine_precision(res.engine)[1]
    cfg = BenchConfig(
        model="nin-cifar10",
        runtimes=["trt"],
        precisions=[Precision.FP32],
        batches=[1],
        timing=TINY,
        out_dir=str(tmp_path / "b"),
        data=None,
        model_kwargs={"fc-cifar10": {"fc_width": 64}},
        artifacts={"nin-cifar10": {"engine-fp32": str(res.engine)}},
    )
    out = run_bench(cfg)
    row = next(r for r in out["rows"] if r["model"] == "nin-cifar10")
    assert out["models"]["nin-cifar10"]["engines"]["fp32"]["flavour"].startswith("unknown")
    assert row["artifact"]["bytes"] == res.engine.stat().st_size
    assert row["status"] in ("ok", "skipped") and (row["status"] == "ok" or "GPU" in row["reason"])


def test_energy_per_image_from_a_stand_in_tegrastats(tmp_path, monkeypatch):
    """The bench samples power through the tegrastats it finds on PATH (here one printing recorded JetPack 6
    lines, a real subprocess): idle once before any work, then over each timed loop; mJ/image over wall time,
    net and images/J."""
    fixtures = Path(__file__).parent / "fixtures" / "power"
    monkeypatch.setenv("PATH", f"{fixtures}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NIN_EXPORT_TEGRASTATS_LINES", str(fixtures / "tegrastats-jp6-orin-nano.txt"))
    cfg = BenchConfig(
        model="nin-cifar10",
        runtimes=["ort"],
        precisions=[Precision.FP32],
        batches=[1],
        timing=TimingOptions(warmup_ms=10, min_iters=3, min_ms=400),
        out_dir=str(tmp_path),
        data=None,
        model_kwargs={"fc-cifar10": {"fc_width": 64}},
        power=PowerOptions("tegrastats", idle_s=1.0, idle_settle_s=0.0),
    )
    res = run_bench(cfg)
    idle = res["idle_power"]["cpu"]
    assert 6.6 <= idle["watts"] <= 9.7 and idle["window_s"] >= 1.0 and idle["interval_s"] == 0.1 and idle["samples"] >= 2
    for r in res["rows"]:
        e = r["energy"]
        assert e["source"] == "tegrastats" and e["samples"] >= 1 and e["idle_watts"] == idle["watts"]
        assert 6.6 <= e["mean_watts"] <= 9.7  # the recorded VDD_IN values
        ips = r["latency_ms"]["images_per_s"]  # over the timed loop's wall time
        assert e["mj_per_image"] == pytest.approx(e["mean_watts"] / ips * 1000, rel=0.05)
        assert e["images_per_joule"] == pytest.approx(1000 / e["mj_per_image"])
        assert e["mj_per_image_net"] == pytest.approx((e["mean_watts"] - e["idle_watts"]) / ips * 1000, rel=0.05, abs=1e-3)
        assert r["memory"]["tegrastats_ram_used_mb_max"] in (779, 845)
    schema = json.loads(resources.files("nin_export").joinpath("schemas/bench-result.schema.json").read_text())
    jsonschema.validate(json.loads((tmp_path / "results.json").read_text()), schema)
    rep = render_report([tmp_path / "results.json"], tmp_path / "report")
    md = rep["markdown"].read_text()
    assert "### Energy" in md and "Source: tegrastats" in md
    assert (tmp_path / "report" / "energy_vs_latency.png").exists()


def test_rows_without_a_power_source_say_why(tiny_results):
    res, _, _ = tiny_results
    ok = [r for r in res["rows"] if r["status"] == "ok"]
    for r in ok:
        e = r["energy"]
        assert (e["source"] is None and e["reason"]) or e["mj_per_image"] > 0


def test_split_summary_and_gpu_split_table(tiny_results, tmp_path):
    from nin_export.runners.cuda_timing import split_summary

    s = split_summary([0.1, 0.2, 0.1], [1.0, 2.0, 3.0], [0.05, 0.05, 0.05], [0.3, 0.4, 0.3])
    assert s["iterations"] == 3 and s["compute_ms"]["median"] == 2.0 and s["enqueue_ms"]["max"] == 0.4
    assert s["host_latency_ms"]["median"] == pytest.approx(2.25) and s["warnings"]
    _, _, out = tiny_results
    doc = json.loads((out / "results.json").read_text())
    row = next(r for r in doc["rows"] if r["status"] == "ok")
    row["gpu_split"] = dict(s, cuda_graph=True)  # the shape a GPU runner's split() records
    row["latency_ms"] = dict(row["latency_ms"], clock="cuda-events", images_per_s=321.0, compute_images_per_s=500.0)
    row["multi_stream"] = {"streams": 2, "batch": 1, "rounds": 10, "images_per_s": 1234.0}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    md = render_report([tmp_path / "r.json"], tmp_path / "rep")["markdown"].read_text()
    assert "### GPU time split" in md
    assert "| yes | 0.3 | 0.1 | 2 | 0.05 | 2.25 | 321 | 500 | 1,234 (2) | GPU compute time is unstable" in md
    assert "GPU compute time between CUDA events" in md and "host clock" in md, "one table per clock"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU here: the GPU timing path needs one")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_torch_cuda_split_timing_on_one_stream(cuda_graph):
    import numpy as np
    import torch

    from nin_export.models import create_model
    from nin_export.runners.timing import measure
    from nin_export.runners.torch_runner import TorchRunner

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with TorchRunner(create_model("nin-cifar10"), device="cuda", cuda_graph=cuda_graph) as r:
        ref = r.infer({"input": x})["logits"]
        st = measure(r, {"input": x}, TimingOptions(warmup_ms=50, min_iters=20, min_ms=100))
        split = r.split()
        again = r.infer({"input": x})["logits"]
        tp = r.throughput({"input": x}, streams=2, seconds=0.3)
    assert np.allclose(ref, again, atol=1e-4), "graph replay gives the same outputs"
    assert split["iterations"] == st.iterations and split["cuda_graph"] is cuda_graph, split.get("cuda_graph_note")
    for k in ("h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms"):
        assert split[k]["median"] > 0
    assert st.clock == "cuda-events" and st.images_per_s <= st.compute_images_per_s * 1.01
    assert tp["streams"] == 2 and tp["images_per_s"] > 0
    assert torch.cuda.current_stream().query()


def test_onnxruntime_cpu_measures_int8_with_its_own_graph(tiny_results):
    """TensorRT's Q/DQ placement leaves onnxruntime's CPU convolutions in float; its row gets the ort-cpu graph."""
    res, _, _ = tiny_results
    rows = [r for r in res["rows"] if r["backend"] == "onnxruntime" and r["precision"] == "int8" and r["status"] == "ok"]
    assert rows and all(r["artifact"]["file"].endswith(".int8.ort-cpu.onnx") for r in rows)
    assert "onnx-int8-ort-cpu" in res["models"]["nin-cifar10"]["artifact_bytes"]
