"""Real TensorRT-RTX engine builds (ahead of time, no GPU needed); runtime tests need a GPU."""

import json

import onnx
import pytest
from onnx import TensorProto, helper

from nin_export.core.enums import Precision
from nin_export.core.errors import BackendUnavailableError, NinExportError, OnnxFileError
from nin_export.export.exporter import export_model
from nin_export.models import create_model
from nin_export.quantize.ptq import QuantizeOptions, quantize
from nin_export.trt import BuildOptions, TrtFlavour, build_engine, load_trt, read_sidecar
from nin_export.trt.builder import ParseError
from nin_export.trt.convert import engine_from_onnx
from nin_export.trt.sidecar import current_gpu

from .conftest import assert_one_line_error

try:
    import tensorrt_rtx  # noqa: F401

    HAVE_RTX = True
except ImportError:
    HAVE_RTX = False

needs_rtx = pytest.mark.skipif(not HAVE_RTX, reason="tensorrt_rtx not installed (pip install 'nin-export[rtx]')")
needs_gpu = pytest.mark.skipif(current_gpu() is None, reason="no CUDA GPU here: engines only run on an NVIDIA GPU")


def _rtx_target_missing() -> str | None:
    return load_trt(TrtFlavour.TENSORRT_RTX).target_missing(current_gpu()) if HAVE_RTX else None


needs_rtx_target = pytest.mark.skipif(_rtx_target_missing() is not None, reason=f"{_rtx_target_missing()}")
RTX = BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, targets=("SM86",), batch=(1, 4, 8))


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """FP32, FP16 and INT8 graphs of nin-cifar10 and its FC twin (1024-wide head: weights dominate its size)."""
    out = tmp_path_factory.mktemp("trt")
    g = {}
    for name, kw in (("nin-cifar10", {}), ("fc-cifar10", {"fc_width": 1024})):
        fp32 = export_model(create_model(name, **kw), out / name).final_path
        g[(name, Precision.FP32)] = fp32
        for prec in (Precision.FP16, Precision.INT8):
            q = quantize(fp32, QuantizeOptions(prec, calib_data="digits", calib_count=32, eval_count=16, cache_dir=None))
            g[(name, prec)] = q.path
    return g


@needs_rtx
@pytest.mark.parametrize("name", ["nin-cifar10", "fc-cifar10"])
def test_rtx_builds_every_precision(graphs, tmp_path, name, record_property):
    sizes = {}
    for prec in Precision:
        res = build_engine(graphs[(name, prec)], RTX, output=tmp_path / f"{name}.{prec}.engine")
        side = read_sidecar(res.engine)
        assert side["flavour"] == "tensorrt-rtx" and side["trt_version"] == tensorrt_rtx.__version__
        assert side["precision"] == prec.value and side["strongly_typed"] and side["targets"] == ["8.6"]
        assert side["profiles"] == [{"input": {"min": [1, 3, 32, 32], "opt": [4, 3, 32, 32], "max": [8, 3, 32, 32]}}]
        assert [(t["name"], t["mode"], t["dtype"]) for t in side["io"]] == [
            ("input", "input", "float"),
            ("logits", "output", "float"),
        ]
        assert side["source_onnx"]["file"] == graphs[(name, prec)].name and len(side["source_onnx"]["sha256"]) == 64
        assert side["bytes"] == res.engine.stat().st_size and side["build_seconds"] >= 0
        assert side["model"] == name
        sizes[prec.value] = side["bytes"]
    record_property("engine_bytes", json.dumps(sizes))
    print(f"{name} TensorRT-RTX SM86 engine bytes: {sizes}")
    assert sizes["fp16"] < sizes["fp32"] and sizes["int8"] < sizes["fp32"]
    if name.startswith("fc"):  # 13.6M weights: the plan size follows bytes per weight
        assert sizes["int8"] < sizes["fp16"] < 0.6 * sizes["fp32"]


@needs_rtx
def test_fp16_and_int8_from_an_fp32_graph(graphs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the INT8 conversion writes its calibration cache to ./calibration
    src = graphs[("nin-cifar10", Precision.FP32)]
    res = engine_from_onnx(src, Precision.FP16, RTX, output=tmp_path / "a.engine")
    assert res.info["precision"] == "fp16" and any("converted the graph" in s for s in res.steps)
    res = engine_from_onnx(
        src, Precision.INT8, RTX, QuantizeOptions(Precision.INT8, calib_data="digits", calib_count=20), output=tmp_path / "b.engine"
    )
    assert res.info["precision"] == "int8"
    with pytest.raises(NinExportError, match="already an INT8 graph"):
        engine_from_onnx(graphs[("nin-cifar10", Precision.INT8)], Precision.FP16, RTX)


@needs_rtx
def test_profiles_and_bad_profiles(graphs, tmp_path):
    src = graphs[("nin-cifar10", Precision.FP32)]
    res = build_engine(
        src,
        BuildOptions(
            flavour=TrtFlavour.TENSORRT_RTX,
            targets=("SM89",),
            min_shape=(2, 3, 32, 32),
            opt_shape=(2, 3, 32, 32),
            max_shape=(16, 3, 32, 32),
        ),
        output=tmp_path / "p.engine",
    )
    assert res.info["profiles"][0]["input"]["max"] == [16, 3, 32, 32]
    with pytest.raises(NinExportError, match="unsupported profile"):
        build_engine(src, BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, batch=(8, 4, 2)), output=tmp_path / "x.engine")
    with pytest.raises(NinExportError, match="is fixed at 32"):
        build_engine(
            src,
            BuildOptions(
                flavour=TrtFlavour.TENSORRT_RTX, min_shape=(1, 3, 16, 16), opt_shape=(1, 3, 32, 32), max_shape=(1, 3, 32, 32)
            ),
            output=tmp_path / "x.engine",
        )
    with pytest.raises(NinExportError, match="Hopper"):
        build_engine(src, BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, targets=("SM90",)), output=tmp_path / "x.engine")
    assert not (tmp_path / "x.engine").exists()


@needs_rtx
def test_parser_errors_are_listed_node_by_node(tmp_path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("NoSuchOp", ["input"], ["y"], name="mystery_node", domain="com.example")
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, tmp_path / "bad.onnx")
    with pytest.raises(ParseError, match="mystery_node") as e:
        build_engine(
            tmp_path / "bad.onnx",
            BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, min_shape=(1, 4), opt_shape=(1, 4), max_shape=(1, 4)),
        )
    assert "refused bad.onnx" in str(e.value)


def test_corrupt_onnx_and_missing_tensorrt(tmp_path):
    (tmp_path / "c.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(OnnxFileError, match="not a readable ONNX"):
        build_engine(tmp_path / "c.onnx", BuildOptions(flavour=TrtFlavour.TENSORRT_RTX))
    try:
        import tensorrt  # noqa: F401

        pytest.skip("full TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match="pip install tensorrt"):
        load_trt(TrtFlavour.TENSORRT)


@needs_rtx
def test_cli_trt_and_inspect(cli_run, graphs, tmp_path):
    src = graphs[("nin-cifar10", Precision.FP16)]
    code, out, err = cli_run(
        "trt", src, "--backend", "tensorrt-rtx", "--target", "SM86", "--batch", "1:2:4", "-o", tmp_path / "m.engine"
    )
    assert code == 0, err
    out = " ".join(out.split())  # rich wraps long lines
    assert "built" in out and "fp16 via graph" in out and "max 4x3x32x32" in out
    assert json.loads((tmp_path / "m.engine.json").read_text())["precision"] == "fp16"
    code, out, err = cli_run("inspect", tmp_path / "m.engine")
    assert code == 0 and "tensorrt-rtx" in out and "profile input" in out
    assert_one_line_error(*cli_run("trt", src, "--batch", "4:2:1", "--backend", "tensorrt-rtx")[::2], "unsupported profile")
    assert_one_line_error(*cli_run("trt", src, "--int8", "--backend", "tensorrt-rtx")[::2], "already an FP16 graph")
    assert_one_line_error(*cli_run("trt", tmp_path / "none.onnx")[::2], "not found")
    (tmp_path / "nosidecar.engine").write_bytes(b"plan")  # a plain plan, as trtexec writes: a warning, not a refusal
    code, out, err = cli_run("inspect", tmp_path / "nosidecar.engine")
    assert code == 0 and "plain plan" in out and "not valid here (malformed engine)" in out
    assert err.count("\n") == 1 and err.startswith("warning:") and "sidecar" in err
    (tmp_path / "m.engine").write_bytes((tmp_path / "m.engine").read_bytes() + b"x")  # no longer what the sidecar says
    assert_one_line_error(*cli_run("inspect", tmp_path / "m.engine")[::2], "not the engine its sidecar describes")


@needs_rtx
def test_engine_refused_without_gpu_or_on_mismatch(graphs, tmp_path):
    from nin_export.trt import TrtRunner, check_compatible
    from nin_export.trt.sidecar import EngineMismatchError

    res = build_engine(graphs[("nin-cifar10", Precision.FP32)], RTX, output=tmp_path / "e.engine")
    side = read_sidecar(res.engine)
    trtm = load_trt(TrtFlavour.TENSORRT_RTX)
    with pytest.raises(EngineMismatchError, match="exact version"):
        check_compatible(dict(side, trt_version="0.0.1"), trtm, {"name": "x", "compute_capability": "8.6"})
    with pytest.raises(EngineMismatchError, match="Hopper"):
        check_compatible(side, trtm, {"name": "NVIDIA H100", "compute_capability": "9.0"})
    check_compatible(side, trtm, {"name": "RTX 3090", "compute_capability": "8.6"})  # a target: accepted
    if current_gpu() is None:
        with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
            TrtRunner(res.engine).activate()


@needs_rtx
@needs_gpu
@needs_rtx_target
def test_engine_runs_and_matches_onnxruntime(graphs, tmp_path):
    from nin_export.trt.runner import verify_engine

    for prec in Precision:
        src = graphs[("nin-cifar10", prec)]
        res = build_engine(
            src,
            BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, targets=("CURRENT",), batch=(1, 4, 8)),
            output=tmp_path / f"{prec}.engine",
        )
        agreement = verify_engine(res.engine, src, batches=(1, 3, 8))
        assert agreement.passed, agreement.describe()


def test_trt_without_a_path_takes_the_newest_fp32_onnx(cli_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(*cli_run("trt", "--fp16")[::2], "no out/manifest.json")
    export_model(create_model("nin-cifar10"), tmp_path / "out")
    if not HAVE_RTX:
        pytest.skip("tensorrt_rtx not installed (pip install 'nin-export[rtx]'): the build needs it")
    code, out, err = cli_run("trt", "--fp16", "--backend", "tensorrt-rtx", "--target", "SM86", "--batch", "1:1:2")
    assert code == 0, err
    assert "using out/nin-cifar10.sim.onnx (the newest FP32 ONNX in out/manifest.json)" in " ".join(out.split())
    assert (tmp_path / "out" / "nin-cifar10.fp16.rtx.engine").is_file()
