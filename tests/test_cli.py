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
