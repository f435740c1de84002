import torch

from nin_export.models import create_model

from .conftest import assert_one_line_error


def test_help_has_examples(cli_run):
    for cmd in ("", "models", "summary", "onnx", "inspect"):
        code, out, _ = cli_run(*([cmd] if cmd else []), "--help")
        assert code == 0 and "Example" in out


def test_models_lists_every_model_with_counts(cli_run):
    code, out, _ = cli_run("models")
    assert code == 0
    for name, params in (
        ("nin-cifar10", "966,986"),
        ("nin-imagenet", "7,595,176"),
        ("nin-seed", "2,015,398"),
        ("alexnet", "61,100,840"),
        ("fc-cifar10", ""),
        ("fc-imagenet", ""),
        ("fc-seed", ""),
    ):
        assert name in out and params in out


def test_summary_totals(cli_run):
    code, out, _ = cli_run("summary", "nin-cifar10", "--num-classes", "100")
    assert code == 0 and "984,356" in out and "fp16" in out and "int8" in out


def test_onnx_then_inspect(cli_run, tmp_path):
    code, out, err = cli_run("onnx", "--model", "nin-cifar10", "-o", tmp_path)
    assert code == 0, err
    assert "verified nin-cifar10.onnx" in out and "verified nin-cifar10.sim.onnx" in out and "after onnxsim" in out
    assert (tmp_path / "manifest.json").is_file()
    code, out, _ = cli_run("inspect", tmp_path / "nin-cifar10.sim.onnx")
    assert code == 0 and "[batch, 3, 32, 32]" in out and "nin-cifar10" in out and "Conv x9" in out


def test_bad_inputs_are_one_line(cli_run, tmp_path):
    assert_one_line_error(*cli_run("onnx", "--model", "nin-cifar", "-o", tmp_path)[::2], "did you mean 'nin-cifar10'")
    assert_one_line_error(
        *cli_run("onnx", "--model", "nin-imagenet", "--input-size", "32", "-o", tmp_path)[::2], "smallest it takes is 39x39"
    )
    assert_one_line_error(*cli_run("onnx", "--weights", tmp_path / "missing.pt", "-o", tmp_path)[::2], "not found")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    assert_one_line_error(*cli_run("onnx", "--weights", tmp_path / "corrupt.pt", "-o", tmp_path)[::2], "not a readable")
    torch.save(create_model("nin-seed").state_dict(), tmp_path / "seed.pt")
    assert_one_line_error(*cli_run("onnx", "--weights", tmp_path / "seed.pt", "-o", tmp_path)[::2], "do not fit nin-cifar10")
    (tmp_path / "x.onnx").write_bytes(b"corrupt onnx bytes")
    assert_one_line_error(*cli_run("inspect", tmp_path / "x.onnx")[::2], "not a readable ONNX model")
    assert_one_line_error(*cli_run("inspect", tmp_path / "nope.onnx")[::2], "not found")
    (tmp_path / "afile").write_text("")
    assert_one_line_error(*cli_run("onnx", "-o", tmp_path / "afile" / "out")[::2], "cannot write")
    assert_one_line_error(*cli_run("onnx", "--batch", "zero", "-o", tmp_path)[::2], "--batch")
    assert_one_line_error(*cli_run("onnx", "--model", "alexnet", "--dynamic-hw", "-o", tmp_path)[::2], "fully connected head")
    assert_one_line_error(*cli_run("onnx", "--input-size", "axb", "-o", tmp_path)[::2], "bad input size")
    assert_one_line_error(*cli_run("onnx", "--num-classes", "0", "-o", tmp_path)[::2], "num-classes")
    assert not list(tmp_path.glob("*.onnx.*")), "half-written files left behind"


def test_option_groups_parse_into_the_library_dataclasses():
    from nin_export.cli.options import BUILD, CONVERT, TIMING
    from nin_export.cli.trt import PRECISION, trt_cmd
    from nin_export.core.defaults import DEFAULT_CACHE_DIR
    from nin_export.core.enums import CalibMethod, Precision
    from nin_export.runners.timing import TimingOptions
    from nin_export.trt import BuildOptions, TrtFlavour

    args = ["m.onnx", "--int8", "--calib-count", "50", "--calib-method", "entropy", "--batch", "1:2:4", "--target", "SM86"]
    with trt_cmd.make_context("trt", args + ["--backend", "tensorrt-rtx"]) as ctx:
        kw = dict(ctx.params)
        assert PRECISION.parse(kw) is Precision.INT8
        build = BUILD.parse(kw)
        q = CONVERT.parse(kw, Precision.INT8)
        assert set(kw) == {"onnx_path", "output"}  # every group took its own
    assert build == BuildOptions(flavour=TrtFlavour.TENSORRT_RTX, batch=(1, 2, 4), targets=("SM86",))
    assert (q.calib_count, q.calib_method, q.cache_dir) == (50, CalibMethod.ENTROPY, DEFAULT_CACHE_DIR)
    assert [o.attrs["default"] for o in TIMING.options] == list(vars(TimingOptions()).values())


def test_engine_info_round_trips_a_sidecar():
    import copy

    from nin_export.core._io import check_schema
    from nin_export.core.enums import Precision
    from nin_export.trt import EngineInfo, TrtFlavour

    side = {
        "schema": "nin-export/engine/1",
        "engine": "m.engine",
        "bytes": 10,
        "sha256": "0" * 64,
        "flavour": "tensorrt-rtx",
        "trt_version": "1.2",
        "gpu": None,
        "targets": ["SM86"],
        "precision": "fp16",
        "precision_path": "graph (strongly typed network)",
        "strongly_typed": True,
        "profiles": [{"input": {"min": [1, 3, 32, 32], "opt": [2, 3, 32, 32], "max": [4, 3, 32, 32]}}],
        "io": [
            {"name": "input", "mode": "input", "dtype": "float", "shape": [-1, 3, 32, 32]},
            {"name": "logits", "mode": "output", "dtype": "float", "shape": [-1, 10]},
        ],
        "source_onnx": {"file": "m.onnx", "sha256": "1" * 64, "bytes": 5},
        "model": "nin-cifar10",
        "model_metadata": {},
        "build_seconds": 0.5,
        "created": "2026-12-01T00:00:00+00:00",
        "later_key": 1,  # a key this version does not know rides along
    }
    check_schema(side, "engine-sidecar", "test sidecar", "")
    info = EngineInfo.from_dict(copy.deepcopy(side))
    assert (info.flavour, info.precision, info.profile["input"]["max"]) == (TrtFlavour.TENSORRT_RTX, Precision.FP16, [4, 3, 32, 32])
    assert info.to_dict() == side and info.workspace_mib is None
    full = dict(side, workspace_mib=1024, producer="nin-export 0", builder_warnings=[], stream_capture_ready=True)
    assert EngineInfo.from_dict(full).to_dict() == full
