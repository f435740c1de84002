import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from nin_export.core.data import DataError
from nin_export.core.enums import CalibMethod, Precision
from nin_export.core.errors import OnnxFileError, OutputPathError
from nin_export.core.manifest import read_manifest
from nin_export.export.exporter import export_model
from nin_export.models import create_model
from nin_export.quantize.ptq import QuantizeOptions, quantize

from .conftest import assert_one_line_error


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small NiN and its FC twin (narrow head), exported once."""
    out = tmp_path_factory.mktemp("q")
    paths = {}
    for name, kw in (("nin-cifar10", {}), ("fc-cifar10", {"fc_width": 64})):
        paths[name] = export_model(create_model(name, **kw), out / name).final_path
    return paths


def _int8(path, tmp_path, **kw):
    opts = QuantizeOptions(
        Precision.INT8,
        calib_data=kw.pop("calib_data", "digits"),
        calib_count=kw.pop("calib_count", 64),
        eval_count=32,
        cache_dir=str(tmp_path / "cache"),
        **kw,
    )
    return quantize(path, opts, output=tmp_path / f"{path.stem}.int8.onnx")


def _initializers(model):
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


@pytest.mark.parametrize("name", ["nin-cifar10", "fc-cifar10"])
def test_fp16_graph_keeps_float32_io(exported, tmp_path, name):
    res = quantize(exported[name], QuantizeOptions(Precision.FP16, eval_count=32), output=tmp_path / "m.fp16.onnx")
    m = onnx.load(str(res.path))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [i for i in m.graph.initializer if len(i.dims) > 1]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    assert res.agreement.passed and res.agreement.cosine > 0.999
    res2 = quantize(exported[name], QuantizeOptions(Precision.FP16, keep_io_types=False, eval_count=8), output=tmp_path / "io.onnx")
    assert onnx.load(str(res2.path)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


@pytest.mark.parametrize("name", ["nin-cifar10", "fc-cifar10"])
def test_int8_qdq_structure_is_tensorrt_ready(exported, tmp_path, name):
    res = _int8(exported[name], tmp_path)
    m = onnx.load(str(res.path))
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 19  # float16 Q/DQ scales
    inits = _initializers(m)
    nodes = list(m.graph.node)
    qdq = [n for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:  # symmetric int8: every zero point is an int8 zero
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
        assert (inits[n.input[1]] > 0).all()
    producers = {o: n for n in nodes for o in n.output}
    for n in nodes:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        w_dq = producers[n.input[1]]
        assert w_dq.op_type == "DequantizeLinear"
        w, scale = inits[w_dq.input[0]], inits[w_dq.input[1]]
        assert w.dtype == np.int8
        out_axis = 0 if n.op_type == "Conv" else (0 if any(a.name == "transB" and a.i == 1 for a in n.attribute) else 1)
        assert scale.shape == (w.shape[out_axis],), "per-channel on the output-channel axis"
        axis = next((a.i for a in w_dq.attribute if a.name == "axis"), 1)
        assert axis == out_axis
        if len(n.input) > 2:  # bias stays float (float16, as what else stays float: --float-dtype's default)
            assert n.input[2] in inits and inits[n.input[2]].dtype == np.float16
        assert producers[n.input[0]].op_type == "DequantizeLinear"  # activations quantized too
    if name.startswith("nin"):
        gap = next(n for n in nodes if n.op_type in ("GlobalAveragePool", "ReduceMean"))  # TorchScript / dynamo
        assert res.excluded_nodes and gap.name in res.excluded_nodes
        consumers = [n for n in nodes if gap.output[0] in n.input]
        assert all(n.op_type not in ("QuantizeLinear",) for n in consumers), "GAP and what follows stay float"
    assert res.agreement.passed and res.calib_images == 64
    entry = read_manifest(res.path.parent)["artifacts"][res.path.name]
    assert entry["precision"] == "int8" and entry["verification"]["n_samples"] == 32
    assert entry["verification"]["data"] == "digits" and "top1_accuracy_parent" in entry["verification"]


def test_cache_reuse_and_invalidation(exported, tmp_path):
    first = _int8(exported["nin-cifar10"], tmp_path)
    assert first.cache.startswith("wrote")
    again = _int8(exported["nin-cifar10"], tmp_path)
    assert again.cache == "reused " + first.cache.split(" ", 1)[1]
    assert onnx.load(str(again.path)).SerializeToString() == onnx.load(str(first.path)).SerializeToString()
    other_count = _int8(exported["nin-cifar10"], tmp_path, calib_count=48)
    other_method = _int8(exported["nin-cifar10"], tmp_path, calib_method=CalibMethod.PERCENTILE)
    assert other_count.cache.startswith("wrote") and other_method.cache.startswith("wrote")
    caches = sorted((tmp_path / "cache").glob("*.json"))
    assert len(caches) == 3
    data = json.loads(caches[0].read_text())
    assert set(data["key_parts"]) >= {"model", "data", "inputs", "preprocess", "method", "count"} and data["ranges"]
    # a cache whose key does not match is not used, even under the expected name
    path = first.cache.split(" ", 1)[1]
    d = json.loads(open(path).read())
    d["key"] = "0" * 64
    open(path, "w").write(json.dumps(d))
    assert _int8(exported["nin-cifar10"], tmp_path).cache.startswith("wrote")


def test_image_folder_and_npy_sources(exported, tmp_path):
    img_dir = tmp_path / "imgs"
    (img_dir / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8), "L").save(img_dir / "sub" / f"{i}.png")
    (img_dir / "bad.jpg").write_bytes(b"nope")
    res = _int8(exported["nin-cifar10"], tmp_path, calib_data=str(img_dir))
    assert res.calib_images in (24, 25)  # 31 files, a fifth held out, one of them corrupt
    assert any("failed to decode" in n for n in res.notes) and any("to RGB" in n for n in res.notes)
    assert any("300 recommended" in n for n in res.notes)
    np.save(tmp_path / "x.npy", rng.standard_normal((40, 3, 32, 32)).astype(np.float32))
    assert _int8(exported["nin-cifar10"], tmp_path, calib_data=str(tmp_path / "x.npy")).calib_images == 32


def test_bad_inputs(exported, tmp_path):
    q = _int8(exported["nin-cifar10"], tmp_path)
    with pytest.raises(OnnxFileError, match="already quantized"):
        _int8(q.path, tmp_path)
    with pytest.raises(DataError, match="needs calibration data"):
        quantize(exported["nin-cifar10"], QuantizeOptions(Precision.INT8), output=tmp_path / "x.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        _int8(exported["nin-cifar10"], tmp_path, calib_data=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="too few calibration images: --calib-count 8 asks for 8; INT8 needs at least 16"):
        _int8(exported["nin-cifar10"], tmp_path, calib_count=8)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="calibration cache"):
        quantize(
            exported["nin-cifar10"],
            QuantizeOptions(Precision.INT8, calib_data="digits", calib_count=16, cache_dir=str(tmp_path / "file" / "cache")),
            output=tmp_path / "y.onnx",
        )
    assert not (tmp_path / "y.onnx").exists()


def test_synthetic_needs_flag_and_warns(exported, tmp_path):
    res = quantize(
        exported["nin-cifar10"],
        QuantizeOptions(Precision.INT8, allow_synthetic=True, calib_count=32, eval_count=16, cache_dir=None),
        output=tmp_path / "s.onnx",
    )
    assert any("synthetic" in n for n in res.notes)


def test_cli_quantize(cli_run, exported, tmp_path):
    args = [
        "quantize",
        exported["nin-cifar10"],
        "--int8",
        "--calib-data",
        "digits",
        "--calib-count",
        "32",
        "--eval-count",
        "16",
        "--calib-cache",
        tmp_path / "c",
        "-o",
        tmp_path / "m.int8.onnx",
    ]
    code, out, err = cli_run(*args)
    assert code == 0, err
    assert "checked m.int8.onnx" in out and "top-1 agreement" in out and "calibration cache: wrote" in out
    code, out, err = cli_run(*args)  # the same again: the cache is reused
    assert "calibration cache: reused" in out and "reusing calibration cache" in err
    assert_one_line_error(
        *cli_run("quantize", tmp_path / "m.int8.onnx", "--int8", "--calib-data", "digits")[::2], "already quantized"
    )
    assert_one_line_error(*cli_run("quantize", exported["nin-cifar10"], "--int8")[::2], "needs calibration data")
    assert_one_line_error(*cli_run("quantize", exported["nin-cifar10"])[::2], "--fp16 or --int8")


def test_cache_follows_the_graph_not_the_metadata(exported, tmp_path):
    first = _int8(exported["nin-cifar10"], tmp_path)
    m = onnx.load(str(exported["nin-cifar10"]))
    m.metadata_props.add(key="weights_sha256", value="another checkpoint file, same weights")
    (tmp_path / "meta").mkdir()
    relabelled = tmp_path / "meta" / "nin-cifar10.sim.onnx"
    onnx.save(m, str(relabelled))
    assert _int8(relabelled, tmp_path).cache == "reused " + first.cache.split(" ", 1)[1]
    w = m.graph.initializer[0]
    arr = numpy_helper.to_array(w).copy()
    arr.flat[0] += 1.0
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    onnx.save(m, str(relabelled))
    assert _int8(relabelled, tmp_path).cache.startswith("wrote")


@pytest.mark.parametrize("method", list(CalibMethod))
def test_every_calibration_method_at_a_count_not_a_multiple_of_the_batch(exported, tmp_path, method):
    """entropy and percentile used to fail on the ragged last batch (300 images in 16s leave 12)."""
    res = _int8(exported["nin-cifar10"], tmp_path, calib_count=37, calib_method=method)
    assert res.calib_images == 37 and res.agreement.passed


def test_calib_count_messages_name_the_option_and_the_count_used(cli_run, exported, tmp_path):
    """Too small a --calib-count is named as the cause; one above what the data has warns once, and the
    manifest records the count used."""
    src = exported["nin-cifar10"]
    code, _, err = cli_run("quantize", src, "--int8", "--calib-data", "digits", "--calib-count", "1", "-o", tmp_path / "a.onnx")
    assert_one_line_error(code, err, "--calib-count 1", "at least 16")
    assert "usable" not in err and not (tmp_path / "a.onnx").exists()
    args = ["--calib-count", "2000", "--eval-count", "16", "--no-calib-cache", "-o", tmp_path / "b.onnx"]
    code, _, err = cli_run("quantize", src, "--int8", "--calib-data", "digits", *args)
    assert code == 0, err
    assert err.count("--calib-count 2,000 is more than the 1,438 images") == 1, err
    options = read_manifest(tmp_path)["artifacts"]["b.onnx"]["options"]
    assert options["calib_count"] == 1438 and options["calib_count_requested"] == 2000


def test_entropy_changes_only_its_own_cache_key(exported):
    """The TensorRT entropy is a new method: its key says so; minmax keys (the shipped caches) are as before."""
    from nin_export.core.data import Preprocess
    from nin_export.quantize.calibrate import ENTROPY_ALGORITHM
    from nin_export.quantize.ptq import cache_key

    m = onnx.load(str(exported["nin-cifar10"]))
    pre = Preprocess((32, 32), 3, (0.5,) * 3, (0.5,) * 3)
    x = np.zeros((2, 3, 32, 32), np.float32)
    minmax = cache_key(m, x, pre, CalibMethod.MINMAX, "fp")
    assert set(minmax) == {"model", "data", "inputs", "preprocess", "method", "count", "key"}
    assert ENTROPY_ALGORITHM in cache_key(m, x, pre, CalibMethod.ENTROPY, "fp")["histogram"]
