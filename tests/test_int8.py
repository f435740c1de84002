"""INT8 placement (TensorRT's rules), the onnxruntime CPU target, ModelOpt, exclusions, --min-agreement and
per-layer sensitivity, on small NiNs with the real onnxruntime (and ModelOpt / TensorRT-RTX where installed)."""

import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from nin_export.enums import CalibMethod, Int8Target, Precision, Quantizer
from nin_export.errors import NinExportError, VerificationError
from nin_export.export import export_model
from nin_export.manifest import read_manifest
from nin_export.models import create_model
from nin_export.onnx_utils import read_metadata, set_metadata
from nin_export.quantize import QuantizeOptions, analyze, quantize
from nin_export.sensitivity import write_sensitivity

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
    with pytest.raises(NinExportError, match="modelopt calibrates with"):
        _q(graphs["nin-cifar10"], tmp_path, out="p.onnx", quantizer=Quantizer.MODELOPT, calib_method=CalibMethod.PERCENTILE)


def test_keep_float_until_gives_up_before_every_layer_is_float():
    """All layers in float would be the FP32 graph again: the search stops one short and says why."""
    from nin_export.sensitivity import LayerSensitivity, keep_float_until

    ranking = [LayerSensitivity(f"c{i}", "Conv", 10, 0.5, 10.0) for i in range(3)]
    ref = np.eye(4, dtype=np.float32)
    tried = []

    def excluding(kept):
        tried.append(list(kept))
        return onnx.ModelProto()

    with pytest.raises(VerificationError, match="all but one of 3 layers in float"):
        keep_float_until(0.99, ranking, excluding, lambda g: np.roll(ref, 1, axis=1), ref, lambda m: None)
    assert tried == [["c0"], ["c0", "c1"]]
