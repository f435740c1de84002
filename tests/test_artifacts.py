"""The one artifact factory: keys, the order steps run in, what is given, and why something is missing."""

from pathlib import Path

import pytest

from nin_export.artifacts import ArtifactPlan, keys_for_rows, make_artifacts
from nin_export.core.artifact import CHECKPOINT, ONNX_FP32, ArtifactKey, ArtifactKind
from nin_export.core.enums import Int8Target, Precision
from nin_export.runtimes import RUNTIMES, get_runtime


def test_every_label_names_one_key():
    keys = ArtifactKey.every()
    assert len({k.label for k in keys}) == len(keys)
    for k in keys:
        assert ArtifactKey.parse(k.label) == k
    assert ArtifactKey(ArtifactKind.ONNX, Precision.INT8, Int8Target.ORT_CPU).label == "onnx-int8-ort-cpu"
    assert ArtifactKey(ArtifactKind.CHECKPOINT, Precision.FP16) == CHECKPOINT  # one checkpoint, any precision
    with pytest.raises(ValueError, match="unknown artifact 'onnx-bf16'"):
        ArtifactKey.parse("onnx-bf16")
    with pytest.raises(ValueError, match="TensorRT"):
        ArtifactKey(ArtifactKind.ENGINE, Precision.INT8, Int8Target.ORT_CPU)


def test_the_runtime_table_names_what_each_row_runs():
    assert get_runtime("ort").artifact_key(Precision.INT8).label == "onnx-int8-ort-cpu"
    assert get_runtime("trt").artifact_key(Precision.INT8).label == "engine-int8"
    assert get_runtime("torch").artifact_key(Precision.FP16) == CHECKPOINT
    keys = keys_for_rows([get_runtime("ort")], [Precision.FP32, Precision.INT8])
    assert {k.label for k in keys} == {"onnx-fp32", "onnx-int8-ort-cpu"}
    assert all(r.artifact_key(p) in ArtifactKey.every() for r in RUNTIMES for p in r.precisions)


def test_parents_come_first_and_given_files_end_the_walk(tmp_path):
    plan = ArtifactPlan("m", tmp_path, {ArtifactKey(ArtifactKind.ENGINE, p) for p in Precision}, weights=tmp_path / "m.pt")
    order = [k.label for k in plan.wanted()]
    assert order[:2] == ["checkpoint", "onnx-fp32"]
    for k in plan.wanted():
        if k.parent() is not None:
            assert order.index(k.parent().label) < order.index(k.label)
    given = ArtifactPlan(
        "m", tmp_path, {ArtifactKey(ArtifactKind.ENGINE, Precision.FP16)}, given={ArtifactKey.parse("onnx-fp16"): Path("g")}
    )
    assert [k.label for k in given.wanted()] == ["onnx-fp16", "engine-fp16"]
    assert given.path(ArtifactKey.parse("onnx-fp16")) == Path("g")
    assert plan.path(ONNX_FP32) == tmp_path / "m.sim.onnx" and plan.path(CHECKPOINT) == tmp_path / "m.pt"


def test_what_cannot_be_made_says_why_and_the_rest_goes_on(tmp_path):
    """A given checkpoint that is not there is refused; INT8 without calibration data is skipped with the
    reason, and what is made from it too; the step hook sees every step by its stage name."""
    keys = {ArtifactKey(ArtifactKind.ONNX, Precision.INT8), ArtifactKey(ArtifactKind.ENGINE, Precision.INT8)}
    from nin_export.core.errors import NinExportError

    with pytest.raises(NinExportError, match="is not a file"):
        make_artifacts(ArtifactPlan("nin-cifar10", tmp_path, keys, weights=tmp_path / "missing.pt"))
    seen: list[str] = []

    def step(name, inputs, outputs, work):
        seen.append(name)
        if name.endswith("/onnx"):  # no export here: the problems are what this test is about
            raise NinExportError("export refused for the test")
        return work()

    made = make_artifacts(ArtifactPlan("nin-cifar10", tmp_path, keys, model_kwargs={"input_size": [16, 16]}), step=step)
    assert seen == ["nin-cifar10/init", "nin-cifar10/onnx"]
    assert made.files == {CHECKPOINT: tmp_path / "nin-cifar10.pt"} and (tmp_path / "nin-cifar10.pt").is_file()
    assert made.problems[ONNX_FP32] == ("failed", "fp32 graph: export refused for the test")
    assert made.problems[ArtifactKey(ArtifactKind.ENGINE, Precision.INT8)] == ("failed", "fp32 graph: export refused for the test")
