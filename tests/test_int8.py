"""INT8 placement (TensorRT's rules), the onnxruntime CPU target, ModelOpt, exclusions, --min-agreement and
per-layer sensitivity, on small NiNs with the real onnxruntime (and ModelOpt / TensorRT-RTX where installed)."""

import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from nin_export.core.enums import CalibMethod, Int8Target, Precision, Quantizer
from nin_export.core.errors import NinExportError, VerificationError
from nin_export.core.manifest import read_manifest
from nin_export.core.onnx_utils import read_metadata, set_metadata
from nin_export.export.exporter import export_model
from nin_export.models import create_model
from nin_export.quantize.ptq import QuantizeOptions, analyze, quantize
from nin_export.quantize.sensitivity import write_sensitivity

from .conftest import assert_one_line_error

HAVE_MODELOPT = importlib.util.find_spec("modelopt") is not None
HAVE_RTX = importlib.util.find_spec("tensorrt_rtx") is not None


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """A seeded small NiN and its FC twin (narrow head), exported once."""
    out = tmp_path_factory.mktemp("int8")
    paths = {}
    for name, kw in (("nin-cifar10", {}), ("fc-cifar10", {"fc_width": 64})):
        torch.manual_seed(0)
        paths[name] = export_model(create_model(name, **kw), out / name).final_path
    return paths


def _opts(tmp_path, **kw):
    kw.setdefault("calib_count", 48)
    kw.setdefault("eval_count", 48)
    return QuantizeOptions(Precision.INT8, calib_data="digits", cache_dir=str(tmp_path / "cache"), **kw)


def _q(path, tmp_path, out="m.int8.onnx", **kw):
    return quantize(path, _opts(tmp_path, **kw), output=tmp_path / out)


def _conv_names(path):
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]


def _consumers(model):
    out = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


@pytest.mark.parametrize("name", ["nin-cifar10", "fc-cifar10"])
def test_qdq_only_on_the_inputs_of_conv_and_gemm(graphs, tmp_path, name):
    """TensorRT's rules: every DequantizeLinear feeds a Conv/Gemm; nothing quantizes a Conv's output or a ReLU's
    own input; every Conv/Gemm has both inputs quantized."""
    m = onnx.load(str(_q(graphs[name], tmp_path).path))
    cons, prod = _consumers(m), {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear":
            assert {c.op_type for c in cons[n.output[0]]} <= {"Conv", "Gemm"}, n.name
        if n.op_type == "QuantizeLinear" and n.input[0] in prod:
            assert prod[n.input[0]].op_type not in ("Conv", "Gemm"), "no Q/DQ on a Conv/Gemm output"
        if n.op_type in ("Conv", "Gemm"):
            assert prod[n.input[0]].op_type == prod[n.input[1]].op_type == "DequantizeLinear"
    q = sum(n.op_type == "QuantizeLinear" for n in m.graph.node)
    layers = sum(n.op_type in ("Conv", "Gemm") for n in m.graph.node)
    assert q <= layers, "one activation Q per quantized layer input at most"
    assert read_metadata(m)["int8_target"] == "tensorrt"


def test_ort_cpu_target_is_uint8_and_tensorrt_refuses_it(graphs, tmp_path):
    res = _q(graphs["nin-cifar10"], tmp_path, target=Int8Target.ORT_CPU)
    m = onnx.load(str(res.path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.dtype == np.uint8 for z in zps)
    entry = read_manifest(res.path.parent)["artifacts"][res.path.name]
    assert entry["options"]["target"] == "ort-cpu" and entry["options"]["activation"].startswith("uint8")
    if HAVE_RTX:
        from nin_export.trt import BuildOptions, TrtFlavour, build_engine

        with pytest.raises(NinExportError, match="onnxruntime CPU graph"):
            build_engine(res.path, BuildOptions(flavour=TrtFlavour.TENSORRT_RTX), output=tmp_path / "x.engine")
        assert not (tmp_path / "x.engine").exists()


def test_exclude_keeps_layers_in_float_and_the_manifest_says_so(graphs, tmp_path):
    convs = _conv_names(graphs["nin-cifar10"])
    glob = f"{convs[-1][:-1]}[{convs[-1][-1]}]"  # a pattern that matches the last conv alone
    res = _q(graphs["nin-cifar10"], tmp_path, exclude=[convs[0], convs[-2], glob])
    float_nodes = {f["node"] for f in res.float_layers}
    assert float_nodes == {convs[0], convs[-2], convs[-1]}
    m = onnx.load(str(res.path))
    prod = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type == "Conv":
            quantized = n.input[1] in prod and prod[n.input[1]].op_type == "DequantizeLinear"
            assert quantized == (n.name not in float_nodes), n.name
    entry = read_manifest(res.path.parent)["artifacts"][res.path.name]
    assert [f["node"] for f in entry["float_layers"]] == [f["node"] for f in res.float_layers]
    assert all(f["why"].startswith("--exclude") for f in entry["float_layers"])


def test_exclude_that_matches_nothing_is_refused_before_any_work(graphs, tmp_path, cli_run):
    code, _, err = cli_run(
        "quantize", graphs["nin-cifar10"], "--int8", "--calib-data", "digits", "--exclude", "nope*", "-o", tmp_path / "x.onnx"
    )
    assert_one_line_error(code, err, "nope*", _conv_names(graphs["nin-cifar10"])[0])
    assert not (tmp_path / "x.onnx").exists()


def _as_trained(src, tmp_path):
    """The same function with one activation outlier INT8 can't take, and metadata that says trained weights
    (so the agreement floor applies): the first conv's channel 0 gets a bias of 1e4, which the second conv
    ignores (zero weights), so FP32 is unchanged but a per-tensor int8 range over 0..1e4 rounds every
    ordinary activation of the second conv's input to 0."""
    m = onnx.load(str(src))
    inits = {i.name: i for i in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    w0 = numpy_helper.to_array(inits[convs[0].input[1]])
    b = numpy_helper.to_array(inits[convs[0].input[2]]).copy() if len(convs[0].input) > 2 else np.zeros(w0.shape[0], np.float32)
    b[0] = 1e4
    m.graph.initializer.append(numpy_helper.from_array(b, "outlier_bias"))
    del convs[0].input[2:]
    convs[0].input.append("outlier_bias")
    w = numpy_helper.to_array(inits[convs[1].input[1]]).copy()
    w[:, 0] = 0
    inits[convs[1].input[1]].CopyFrom(numpy_helper.from_array(w, convs[1].input[1]))
    set_metadata(m, {"weights": "trained.pt"})
    dst = tmp_path / "trained.onnx"
    onnx.save(m, str(dst))
    return dst


def test_agreement_gate_suggests_the_fallback_and_min_agreement_reaches_it(graphs, tmp_path):
    src = _as_trained(graphs["nin-cifar10"], tmp_path)
    base = _q(src, tmp_path, out="base.onnx", agreement_floor=0.0)
    target = 1.0
    assert base.agreement.top1_agreement < 0.9
    with pytest.raises(VerificationError, match="--min-agreement"):
        _q(src, tmp_path, out="gated.onnx", agreement_floor=target)
    assert not (tmp_path / "gated.onnx").exists()
    res = _q(src, tmp_path, out="mixed.onnx", agreement_floor=target, min_agreement=target)
    assert res.agreement.top1_agreement >= target and res.float_layers
    assert all(f["why"] == f"--min-agreement {target:g}" for f in res.float_layers)
    assert res.float_layers[0]["node"] == _conv_names(src)[1], "the layer fed by the outlier goes first"
    entry = read_manifest(res.path.parent)["artifacts"][res.path.name]
    assert entry["options"]["min_agreement"] == target and entry["float_layers"] == res.float_layers


def test_sensitivity_ranks_every_layer_and_writes_three_files(graphs, tmp_path):
    src = _as_trained(graphs["nin-cifar10"], tmp_path)
    s = analyze(src, _opts(tmp_path))
    convs = _conv_names(src)
    assert s.layers[0].node == convs[1] and s.layers[0].top1_agreement < 0.9 and s.full_int8["top1_agreement"] < 0.9
    assert sorted(r.node for r in s.layers) == sorted(convs)
    keys = [(r.top1_agreement, r.sqnr_db) for r in s.layers]
    assert keys == sorted(keys), "most sensitive first"
    assert all(r.params > 0 and np.isfinite(r.sqnr_db) for r in s.layers)
    paths = write_sensitivity(s, tmp_path / "sens")
    doc = json.loads(paths[0].read_text())
    assert doc["schema"] == "nin-export/sensitivity/1" and len(doc["layers"]) == len(convs)
    assert "| rank | layer |" in paths[1].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sensitivity_cli(graphs, tmp_path, cli_run):
    out = tmp_path / "s"
    args = ["sensitivity", graphs["fc-cifar10"], "--calib-data", "digits", "--calib-count", "32", "--eval-count", "32"]
    code, stdout, err = cli_run(*args, "-o", out, "--calib-cache", tmp_path / "c")
    assert code == 0, err
    assert "every layer in INT8" in stdout and (out / "sensitivity.png").exists()
    layers = json.loads((out / "sensitivity.json").read_text())["layers"]
    assert {r["op_type"] for r in layers} == {"Conv", "Gemm"}
    q = _q(graphs["fc-cifar10"], tmp_path, out="fc.int8.onnx")
    code, _, err = cli_run("sensitivity", q.path, "--calib-data", "digits", "-o", tmp_path / "s2")
    assert_one_line_error(code, err, "already quantized")
    assert not (tmp_path / "s2" / "sensitivity.json").exists()


@pytest.mark.skipif(not HAVE_MODELOPT, reason="NVIDIA ModelOpt not installed (pip install 'nin-export[modelopt]')")
def test_modelopt_quantizer(graphs, tmp_path):
    first, last = _conv_names(graphs["nin-cifar10"])[0], _conv_names(graphs["nin-cifar10"])[-1]
    res = _q(graphs["nin-cifar10"], tmp_path, quantizer=Quantizer.MODELOPT, exclude=[last])
    m = onnx.load(str(res.path))
    prod = {o: n for n in m.graph.node for o in n.output}
    convs = {n.name: n for n in m.graph.node if n.op_type == "Conv"}
    assert prod[convs[first].input[1]].op_type == "DequantizeLinear"
    assert convs[last].input[1] not in prod or prod[convs[last].input[1]].op_type != "DequantizeLinear"
    meta = read_metadata(m)
    assert meta["quantizer"] == "modelopt" and meta["model"] == "nin-cifar10"  # the parent's metadata carried over
    after_pool = _conv_names(graphs["nin-cifar10"])[3]  # ModelOpt puts a Q/DQ in front of the MaxPool before it
    res = _q(graphs["nin-cifar10"], tmp_path, out="pool.onnx", quantizer=Quantizer.MODELOPT, exclude=[after_pool])
    m = onnx.load(str(res.path))
    prod = {o: n for n in m.graph.node for o in n.output}
    pool = prod[next(n for n in m.graph.node if n.name == after_pool).input[0]]
    assert pool.op_type == "MaxPool" and prod[pool.input[0]].op_type == "Relu", "the excluded conv gets float input"
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float16 inside, float32 I/O
    assert onnx.TensorProto.FLOAT16 in {i.data_type for i in m.graph.initializer}
    with pytest.raises(NinExportError, match="modelopt calibrates with"):
        _q(graphs["nin-cifar10"], tmp_path, out="p.onnx", quantizer=Quantizer.MODELOPT, calib_method=CalibMethod.PERCENTILE)


def test_keep_float_until_gives_up_before_every_layer_is_float():
    """All layers in float would be the FP32 graph again: the search stops one short and says why."""
    from nin_export.quantize.sensitivity import LayerSensitivity, keep_float_until

    ranking = [LayerSensitivity(f"c{i}", "Conv", 10, 0.5, 10.0) for i in range(3)]
    ref = np.eye(4, dtype=np.float32)
    tried = []

    def excluding(kept):
        tried.append(list(kept))
        return onnx.ModelProto()

    with pytest.raises(VerificationError, match="all but one of 3 layers in float"):
        keep_float_until(0.99, ranking, excluding, lambda g: np.roll(ref, 1, axis=1), ref, lambda m: None)
    assert tried == [["c0"], ["c0", "c1"]]


# --- entropy as TensorRT computes it ------------------------------------------------------------------


def _paired_body_and_outlier():
    """2048 bins: a body over bins 0..255 whose counts change every second bin (1000 + 10k for bins 2k, 2k+1),
    and one outlier in the last bin."""
    h = np.zeros(2048)
    for k in range(128):
        h[2 * k] = h[2 * k + 1] = 1000 + 10 * k
    h[2047] = 1
    return h


def test_entropy_threshold_by_hand():
    """Candidates 257..2047 put the outlier into an empty last bin, where Q has no mass: KL is infinite. At
    2048 bins each of the 128 levels merges 16 unequal bins of the body (KL ~1e-4). At 256 the levels are the
    body's equal pairs, so Q is the body exactly and P differs only by the outlier added to its last bin:
    KL(256) = (B - c) / (B + 1) * ln(B / (B + 1)) + (c + 1) / (B + 1) * ln((c + 1) B / (c (B + 1))), with B
    the body's count and c = 2270 its last bin's. The outlier is clipped at the body's end."""
    from nin_export.quantize.calibrate import entropy_amax, kl_threshold_bin

    h = _paired_body_and_outlier()
    i, kl = kl_threshold_bin(h)
    body, c = h[:256].sum(), 1000 + 10 * 127
    by_hand = (body - c) / (body + 1) * np.log(body / (body + 1)) + (c + 1) / (body + 1) * np.log((c + 1) * body / (c * (body + 1)))
    assert i == 256
    assert kl[256 - 128] == pytest.approx(by_hand, rel=1e-6) and 0 < by_hand < 1e-9
    assert np.isinf(kl[257 - 128 : 2048 - 128]).all() and 1e-5 < kl[-1] < 1e-3
    assert entropy_amax(h, 8.0) == 8.0 * 256 / 2048


def _reference_kl_threshold(hist, nbins=128, start=128):
    """NVIDIA's algorithm as pytorch-quantization's _compute_amax_entropy writes it, loop for loop."""
    bins = np.array(hist, np.float64)
    bins[0] = bins[1]
    best, best_i = np.inf, None
    for i in range(start, len(bins) + 1):
        space = np.linspace(0, i, num=nbins + 1)
        digitized = np.digitize(range(i), space) - 1
        digitized[bins[:i] == 0] = -1
        counts = np.zeros(nbins)
        members = np.zeros(nbins)
        for idx, d in enumerate(digitized):
            if d != -1:
                counts[d] += bins[idx]
                members[d] += 1
        q = np.array([counts[d] / members[d] if d != -1 else 0.0 for d in digitized])
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        p, q = p / p.sum(), q / q.sum()
        kl = np.inf if np.any((p > 0) & (q == 0)) else float(np.sum(p[p > 0] * np.log(p[p > 0] / q[p > 0])))
        if kl <= best:  # the last minimum, as the reference takes it
            best, best_i = kl, i
    return best_i


def test_entropy_matches_the_reference_algorithm():
    from nin_export.quantize.calibrate import kl_threshold_bin

    rng = np.random.default_rng(0)
    for df in (2, 4, 8):
        data = np.abs(rng.standard_t(df, 50_000))
        hist, _ = np.histogram(data, bins=320, range=(0, data.max()))
        assert kl_threshold_bin(hist)[0] == _reference_kl_threshold(hist), df


def test_entropy_calibration_clips_on_abs_values():
    """Through a graph: the values of the hand-computed histogram, signs mixed and the outlier negative, give a
    range of +-(the body's end), as |x| and not a signed histogram decides. The network input itself keeps its
    observed range (the image's brightest pixels are signal)."""
    from onnx import helper

    from nin_export.core.enums import CalibMethod
    from nin_export.quantize.qdq import calibrate

    h, w = _paired_body_and_outlier(), 1.0 / 256
    vals = np.concatenate([np.full(int(c), (j + 0.5) * w) for j, c in enumerate(h[:256])] + [[-2048 * w]])
    vals[1::2] *= -1
    x = vals.astype(np.float32).reshape(1, -1)
    g = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["xi"]),
            helper.make_node("Relu", ["xi"], ["y"]),
            helper.make_node("Neg", ["y"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, x.shape[1]])],
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None, x.shape[1]])],
    )
    ranges = calibrate(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), x, CalibMethod.ENTROPY)
    lo, hi = ranges["xi"]
    assert lo == pytest.approx(-256 * w, rel=1e-6) and hi == pytest.approx(255.5 * w, rel=1e-6)  # hi: the largest seen
    assert ranges["x"] == (pytest.approx(-2048 * w), pytest.approx(255.5 * w))  # the input: as observed
    assert ranges["y"][0] == 0 and ranges["y"][1] <= 256 * w  # a ReLU's output keeps its lowest value, 0


# --- what stays in float ----------------------------------------------------------------------------


def test_float_dtype_fp16_keeps_float32_io_and_fp32_is_float32(graphs, tmp_path):
    src = graphs["nin-cifar10"]
    excluded = _conv_names(src)[3]
    res = _q(src, tmp_path, out="h.onnx", exclude=[excluded])
    m = onnx.load(str(res.path))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    kinds = {i.name: i.data_type for i in m.graph.initializer}
    assert onnx.TensorProto.FLOAT not in kinds.values(), "every float weight, bias and scale is float16"
    conv = next(n for n in m.graph.node if n.name == excluded)
    assert kinds[conv.input[1]] == onnx.TensorProto.FLOAT16, "the excluded conv's weights are float16, not int8"
    assert onnx.TensorProto.INT8 in kinds.values() and res.agreement.passed
    assert read_manifest(tmp_path)["artifacts"]["h.onnx"]["options"]["float_dtype"] == "fp16"
    m32 = onnx.load(str(_q(src, tmp_path, out="f.onnx", exclude=[excluded], float_dtype=Precision.FP32).path))
    assert onnx.TensorProto.FLOAT16 not in {i.data_type for i in m32.graph.initializer}
    ortcpu = _q(src, tmp_path, out="o.onnx", target=Int8Target.ORT_CPU)  # onnxruntime's CPU layout stays float32
    assert onnx.TensorProto.FLOAT16 not in {i.data_type for i in onnx.load(str(ortcpu.path)).graph.initializer}
    with pytest.raises(NinExportError, match="--float-dtype fp16 is for TensorRT graphs"):
        _q(src, tmp_path, out="x.onnx", target=Int8Target.ORT_CPU, float_dtype=Precision.FP16)
    with pytest.raises(NinExportError, match="--float-dtype applies to --int8 only"):
        quantize(src, QuantizeOptions(Precision.FP16, float_dtype=Precision.FP32), output=tmp_path / "y.onnx")


@pytest.mark.skipif(not HAVE_RTX, reason="TensorRT-RTX not installed")
def test_fp16_remainder_engine_is_no_larger_than_fp32_remainder(graphs, tmp_path):
    from nin_export.trt import BuildOptions, TrtFlavour, build_engine

    src = graphs["nin-cifar10"]
    convs = _conv_names(src)
    sizes = {}
    for dt in (Precision.FP16, Precision.FP32):
        res = _q(src, tmp_path, out=f"{dt}.onnx", exclude=convs[3:6], float_dtype=dt)
        eng = build_engine(res.path, BuildOptions(flavour=TrtFlavour.TENSORRT_RTX), output=tmp_path / f"{dt}.engine")
        sizes[dt] = eng.engine.stat().st_size
    assert sizes[Precision.FP16] < sizes[Precision.FP32]


# --- --min-agreement: chosen on one half, reported on the other --------------------------------------


def test_min_agreement_reports_on_the_half_it_never_saw(graphs, tmp_path):
    src = _as_trained(graphs["nin-cifar10"], tmp_path)
    res = _q(src, tmp_path, out="mixed.onnx", agreement_floor=0.5, min_agreement=0.9, eval_count=49)
    entry = read_manifest(tmp_path)["artifacts"]["mixed.onnx"]
    ver = entry["verification"]
    assert ver["selection"]["images"] == 24 and ver["n_samples"] == res.agreement.n_samples == 25
    assert ver["selection"]["top1_agreement"] >= 0.9 and "never saw" in ver["selection"]["note"]
    assert {"top1_accuracy", "top1_accuracy_parent"} <= set(ver) and ver["selection"]["top1_accuracy"] is not None
    with pytest.raises(NinExportError, match="--eval-count must be at least 2"):
        _q(src, tmp_path, out="one.onnx", min_agreement=0.9, eval_count=1)


def test_gate_message_gives_the_floor_as_given_and_only_the_bounds_that_apply(graphs, tmp_path, cli_run):
    src = _as_trained(graphs["nin-cifar10"], tmp_path)
    args = ["--calib-count", "32", "--eval-count", "32", "--no-calib-cache", "--agreement-floor", "0.999"]
    code, _, err = cli_run("quantize", src, "--int8", "--calib-data", "digits", *args, "-o", tmp_path / "g.onnx")
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after the progress lines
    assert code == 1 and len(errors) == 1 and "Traceback" not in err
    assert "(needs top-1 agreement >= 99.9%, cosine >= 0.95)" in errors[0] and "--min-agreement 0.999" in errors[0]
    assert "<= inf" not in err and "max|diff|" not in err and ">= 100%" not in err
