"""Training, evaluation and the pipeline on a tiny configuration, end to end."""

import json

import pytest

from nin_export.bench.power import PowerOptions
from nin_export.evaluate import evaluate
from nin_export.export.exporter import export_model
from nin_export.models import build_model, load_checkpoint
from nin_export.pipeline import BenchSection, BuildSection, PipelineConfig, run_pipeline
from nin_export.quantize.ptq import QuantizeOptions
from nin_export.runners.timing import TimingOptions
from nin_export.train import TrainOptions, train

from .conftest import assert_one_line_error

TINY_KW = {"nin-cifar10": {"input_size": [16, 16]}, "fc-cifar10": {"input_size": [16, 16], "fc_width": 32}}


def tiny(out, calib_count=16):
    return PipelineConfig(
        model="nin-cifar10",
        data="digits",
        model_kwargs=TINY_KW,
        out_dir=str(out),
        eval_limit=48,
        train=TrainOptions(epochs=1),
        quantize=QuantizeOptions(calib_count=calib_count, cache_dir=str(out / "calibration")),
        build=BuildSection(engines=False),  # engines are the factory's and test_trt's: here, the stage cache
        bench=BenchSection(
            batches=[1],
            backends=["torch", "ort"],
            timing=TimingOptions(warmup_ms=5, min_iters=2, min_ms=5),
            power=PowerOptions("none"),  # no idle power: 5 s per run
        ),
    )


def test_train_checkpoint_carries_metadata_and_eval_agrees(tmp_path):
    meta = train("nin-cifar10", "digits", tmp_path / "n.pt", TrainOptions(epochs=1, input_size=16))
    assert meta["model"] == "nin-cifar10" and meta["classes"] == [str(i) for i in range(10)]
    assert meta["input_size"] == [16, 16] and meta["mean"] and 0 <= meta["accuracy"]["test_top1"] <= 1
    assert meta["split"]["test"] == 359
    _, m2 = load_checkpoint(tmp_path / "n.pt")
    assert m2.accuracy == meta["accuracy"]
    ck = evaluate(tmp_path / "n.pt", "digits")
    assert ck.samples == 359 and ck.top1 == pytest.approx(meta["accuracy"]["test_top1"])
    res = export_model(build_model("nin-cifar10", tmp_path / "n.pt"), tmp_path)
    ox = evaluate(res.sim_path, "digits")
    assert ox.samples == 359 and abs(ox.top1 - ck.top1) <= 1 / 359 and ox.top5 is not None


def test_train_and_eval_bad_input(cli_run, tmp_path):
    (tmp_path / "flat").mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8)).save(tmp_path / "flat" / f"{i}.png")
    assert_one_line_error(*cli_run("train", "--data", tmp_path / "flat", "-o", tmp_path / "x.pt")[::2], "no class labels")
    assert_one_line_error(*cli_run("eval", tmp_path / "none.pt")[::2], "not found")
    assert_one_line_error(*cli_run("train", "--epochs", "0", "-o", tmp_path / "x.pt")[::2], "positive")


def test_pipeline_runs_skips_reruns_and_resumes(tmp_path):
    cfg = tiny(tmp_path / "run")
    first = run_pipeline(cfg)
    assert (tmp_path / "run" / "report" / "report.md").is_file()
    for name in ("nin-cifar10", "fc-cifar10"):
        acc = first["models"][name]["accuracy"]
        for label in ("checkpoint", "onnx-fp32", "onnx-fp16", "onnx-int8", "onnx-int8-ort-cpu"):
            assert 0 <= acc[label]["top1"] <= 1 and acc[label]["samples"] == 48
    assert "nin-cifar10/train" in first["ran"] and "bench" in first["ran"]
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "Accuracy of every artifact" in md and "accuracy_vs_latency.png" in md

    second = run_pipeline(cfg)
    assert second["ran"] == [] and set(second["skipped"]) == set(first["ran"])

    said: list[str] = []
    failed = run_pipeline(tiny(tmp_path / "run", calib_count=4), said.append)  # fails part-way, goes on where it can...
    assert "too few calibration images" in failed["failed"]["nin-cifar10/onnx-int8"]
    assert "onnx-int8" not in failed["models"]["nin-cifar10"]["artifacts"] and "bench" in failed["ran"]
    rows = json.loads((tmp_path / "run" / "bench" / "results.json").read_text())["rows"]
    int8 = [r for r in rows if r["model"] == "nin-cifar10" and r["precision"] == "int8" and r["status"] != "skipped"]
    assert int8 and all(r["status"] == "failed" and "too few calibration images" in r["reason"] for r in int8), int8
    bench = said[said.index("bench: running") :]
    assert not [m for m in bench if "making onnx-int8" in m], bench  # the bench reports the failure, tries no INT8 again
    resumed = run_pipeline(tiny(tmp_path / "run", calib_count=24))  # ...and resumes: only INT8 and what follows it
    assert set(resumed["ran"]) >= {"nin-cifar10/int8", "fc-cifar10/int8", "nin-cifar10/eval-onnx-int8", "bench", "report"}
    assert "nin-cifar10/int8-ort-cpu" in resumed["ran"]  # the CPU rows' INT8 graph follows [quantize] too
    assert not {"nin-cifar10/train", "nin-cifar10/onnx", "nin-cifar10/fp16", "fc-cifar10/train"} & set(resumed["ran"])
    assert resumed["failed"] == {}
