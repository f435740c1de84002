"""The openvino runtime row: real OpenVINO on small models (no timing asserts), and its skip when missing."""

import json
import sys
from importlib import resources

import jsonschema
import numpy as np
import pytest

from nin_export.bench.run import BenchConfig, run_bench
from nin_export.core.enums import Int8Target, Precision
from nin_export.core.errors import NinExportError
from nin_export.runners.onnxrt import OrtRunner
from nin_export.runners.timing import TimingOptions
from nin_export.runtimes import get_runtime

try:
    import openvino  # noqa: F401

    HAVE_OV = True
except ImportError:
    HAVE_OV = False

needs_ov = pytest.mark.skipif(not HAVE_OV, reason="OpenVINO is not installed: pip install '.[openvino]'")
TINY = TimingOptions(warmup_ms=10, min_iters=3, min_ms=20)


@pytest.fixture(scope="module")
def graphs(cifar_export, tmp_path_factory):
    """nin-cifar10's FP32 graph and INT8 Q/DQ graphs in both placements, on 16 calibration digits."""
    from nin_export.quantize.ptq import QuantizeOptions, quantize

    _, res = cifar_export
    out = tmp_path_factory.mktemp("ov")
    int8 = {
        t: quantize(
            res.final_path,
            QuantizeOptions(Precision.INT8, calib_data="digits", calib_count=16, eval_count=8, cache_dir=None, target=t),
            output=out / f"int8.{t.value}.onnx",
        ).path
        for t in Int8Target
    }
    return res.final_path, int8


def _both(path, x):
    from nin_export.runners.openvino import OvRunner

    with OrtRunner(path) as ort_r, OvRunner(path, threads=2) as ov_r:
        return ort_r.infer_batches(x, 4), ov_r.infer_batches(x, 4)


def _cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@needs_ov
def test_fp32_agrees_with_onnxruntime(graphs):
    x = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    ref, got = _both(graphs[0], x)
    assert got.shape == ref.shape == (6, 10)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max()))


@needs_ov
@pytest.mark.parametrize("target", list(Int8Target))
def test_int8_qdq_agrees_with_onnxruntime(graphs, target):
    """OpenVINO runs the Q/DQ graph in integer kernels; onnxruntime is the reference (its own kernels)."""
    x = np.random.default_rng(1).standard_normal((6, 3, 32, 32)).astype(np.float32)
    ref, got = _both(graphs[1][target], x)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert _cosine(ref, got) > 0.99


@needs_ov
def test_runner_reports_what_it_runs_with_and_profiles(graphs):
    from nin_export.runners.openvino import OvRunner, half_precision_hint

    assert half_precision_hint() in ("f16", "bf16", "f32")
    x = np.zeros((2, 3, 32, 32), np.float32)
    with OvRunner(graphs[1][Int8Target.TENSORRT], threads=1, profile=True) as r:
        r.infer({r.input_names[0]: x})
        s = r.settings()
        prof = r.layer_profile()
        ms = r.throughput({r.input_names[0]: x}, 2, seconds=0.1)
    assert s["inference_precision_hint"] == "f32" and s["num_streams"] == "1" and s["inference_num_threads"] == "1"
    assert prof and any("I8" in p["kernel"] or "i8" in p["kernel"] for p in prof)  # integer kernels ran
    assert ms["streams"] == 2 and ms["images_per_s"] > 0


@needs_ov
def test_bad_graph_is_one_onnx_error(tmp_path):
    from nin_export.runners.openvino import OvRunner

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx graph")
    with pytest.raises(NinExportError, match="OpenVINO cannot read"):
        OvRunner(bad).activate()


@needs_ov
def test_bench_row_is_measured_and_checked(tmp_path):
    cfg = BenchConfig(
        model="nin-cifar10",
        runtimes=["ov"],
        precisions=list(Precision),
        batches=[1, 2],
        timing=TINY,
        threads=1,
        out_dir=str(tmp_path),
        eval_count=16,
        calib_count=16,
        model_kwargs={"fc-cifar10": {"fc_width": 64}},
    )
    res = run_bench(cfg)
    data = json.loads((tmp_path / "results.json").read_text())
    schema = json.loads(resources.files("nin_export").joinpath("schemas/bench-result.schema.json").read_text())
    jsonschema.validate(data, schema)
    rows = res["rows"]
    assert len(rows) == 2 * 3 * 2 and {r["backend"] for r in rows} == {"openvino"}
    for r in rows:
        assert r["status"] == "ok", r["reason"]
        assert r["latency_ms"]["iterations"] >= 3 and r["memory"]["peak_rss_bytes"] > 0
        assert r["quality"]["samples"] == 16 and "accuracy" in r["quality"] and r["threads"] == 1
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    assert all(r["quality"]["top1_agreement"] == 1.0 for r in fp32)


def test_row_is_skipped_with_the_reason_when_openvino_is_missing(monkeypatch):
    """The row's real probe, with the openvino package made unimportable (sys.modules[name] = None)."""
    from nin_export.runners.openvino import openvino_missing

    monkeypatch.setitem(sys.modules, "openvino", None)
    why = openvino_missing()
    assert why is not None and "not installed" in why and "pip install" in why
    row = get_runtime("ov")
    assert row.name == "openvino" and row.unavailable() == why
    for prec in Precision:
        assert row.skip_reason(prec, have_gpu=False) == why


@needs_ov
def test_eval_runs_through_the_openvino_row(cli_run, graphs):
    code, out, err = cli_run("eval", graphs[1][Int8Target.ORT_CPU], "--runtime", "ov", "--data", "digits", "--limit", "16")
    assert code == 0, err
    assert "openvino" in out and "16 held-out images" in out
