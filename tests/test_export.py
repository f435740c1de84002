import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nin_export.core.errors import InputSizeError, NinExportError, OnnxFileError, OutputPathError
from nin_export.core.manifest import read_manifest
from nin_export.core.onnx_utils import describe_onnx, read_metadata
from nin_export.export.exporter import DYNAMO_OPSET, TORCHSCRIPT_OPSET, Exporter, ExportOptions, export_model, resolve_exporter
from nin_export.models import create_model

# Every model, at small inputs where the model allows (FC twins with a narrow head to stay fast).
CASES = [
    ("nin-cifar10", {}),
    ("fc-cifar10", {"fc_width": 64}),
    ("nin-imagenet", {"input_size": 64, "num_classes": 100}),
    ("fc-imagenet", {"input_size": 64, "num_classes": 100, "fc_width": 64}),
    ("nin-seed", {"input_size": 96}),
    ("fc-seed", {"input_size": 96, "fc_width": 64}),
    ("alexnet", {"input_size": 64, "num_classes": 10}),
]


def ort_run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("exporter", [Exporter.DYNAMO, Exporter.TORCHSCRIPT])
@pytest.mark.parametrize(("name", "kw"), CASES, ids=[c[0] for c in CASES])
def test_export_simplify_verify_every_model(tmp_path, name, kw, exporter):
    """Both exporters, verified against PyTorch the same way."""
    model = create_model(name, **kw).eval()
    res = export_model(model, tmp_path, options=ExportOptions(exporter=exporter))
    opset = DYNAMO_OPSET if exporter is Exporter.DYNAMO else TORCHSCRIPT_OPSET
    assert describe_onnx(res.sim_path).opset == opset
    assert read_manifest(tmp_path)["artifacts"][res.onnx_path.name]["options"]["exporter"] == exporter.value
    assert res.onnx_path.is_file() and res.sim_path.is_file()
    assert res.sim_nodes <= res.nodes
    assert all(a.passed and a.top1_agreement == 1.0 for a in res.verification.values())
    # independent check at batch sizes other than the export's dummy batch (1)
    c, h, w = model.input_shape
    for b in (4, 7):
        x = np.random.default_rng(b).standard_normal((b, c, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        for path in (res.onnx_path, res.sim_path):
            np.testing.assert_allclose(ort_run(path, x), ref, rtol=1e-3, atol=1e-4)
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"


def test_metadata_round_trip(cifar_export):
    model, res = cifar_export
    for path in (res.onnx_path, res.sim_path):
        meta = read_metadata(onnx.load(str(path)))
        assert meta["model"] == "nin-cifar10"
        assert meta["num_classes"] == 10 and meta["in_channels"] == 3
        assert meta["input_shape"] == ["batch", 3, 32, 32]
        assert meta["layout"] == "NCHW"
        assert meta["mean"] == [0.4914, 0.4822, 0.4465]
        assert meta["params"] == 966_986
        assert meta["producer_tool"].startswith("nin-export")
    info = describe_onnx(res.sim_path)
    assert info.opset == (DYNAMO_OPSET if resolve_exporter() is Exporter.DYNAMO else TORCHSCRIPT_OPSET)
    assert info.inputs[0]["shape"] == ["batch", 3, 32, 32]
    assert info.op_histogram["Conv"] == 9 and not info.quantized


def test_exporter_choice_and_opsets(tmp_path):
    assert resolve_exporter(Exporter.AUTO) is Exporter.DYNAMO  # torch 2.13 with onnxscript, as in CI
    assert resolve_exporter(Exporter.AUTO, opset=13) is Exporter.TORCHSCRIPT  # older than dynamo's own opset
    res = export_model(create_model("nin-cifar10"), tmp_path, options=ExportOptions(opset=13))
    assert describe_onnx(res.sim_path).opset == 13
    with pytest.raises(OnnxFileError, match="wrote opset 18, not the 13"):
        export_model(create_model("nin-cifar10"), tmp_path / "d", options=ExportOptions(opset=13, exporter=Exporter.DYNAMO))
    with pytest.raises(NinExportError, match="out of range"):
        export_model(create_model("nin-cifar10"), tmp_path, options=ExportOptions(opset=5))


def test_manifest_records_both_with_verification(cifar_export):
    _, res = cifar_export
    arts = read_manifest(res.onnx_path.parent)["artifacts"]
    sim = arts[res.sim_path.name]
    assert sim["parent"] == res.onnx_path.name and sim["precision"] == "fp32"
    assert sim["nodes_before"] == res.nodes and sim["nodes"] == res.sim_nodes
    assert sim["verification"]["passed"] and sim["verification"]["top1_agreement"] == 1.0
    assert len(sim["sha256"]) == 64 and "onnxsim" in sim["tools"]


def test_fixed_batch_and_dynamic_hw(tmp_path):
    model = create_model("nin-cifar10").eval()
    res = export_model(model, tmp_path / "fixed", options=ExportOptions(batch=2, simplify=False))
    assert describe_onnx(res.onnx_path).inputs[0]["shape"] == [2, 3, 32, 32]
    res = export_model(model, tmp_path / "hw", options=ExportOptions(dynamic_hw=True))
    assert describe_onnx(res.sim_path).inputs[0]["shape"] == ["batch", 3, "height", "width"]
    x = np.random.default_rng(0).standard_normal((3, 3, 48, 40)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ort_run(res.sim_path, x), model(torch.from_numpy(x)).numpy(), rtol=1e-3, atol=1e-4)


def test_fc_twin_refuses_dynamic_hw(tmp_path):
    with pytest.raises(InputSizeError, match="fully connected head"):
        export_model(create_model("fc-cifar10", fc_width=16), tmp_path, options=ExportOptions(dynamic_hw=True))


def test_unwritable_output_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="cannot write"):
        export_model(create_model("nin-cifar10"), tmp_path / "file" / "sub")
