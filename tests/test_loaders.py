"""Every file the tool reads goes through one loader that checks its structure and fails in one line:
engine sidecar, calibration cache, results JSON, pipeline state, config."""

import json

import pytest

from nin_export.bench.results import load_results
from nin_export.core.enums import CalibMethod
from nin_export.core.errors import FileFormatError, NinExportError
from nin_export.core.meta import ModelMeta
from nin_export.pipeline import PipelineConfig, load_config, run_pipeline
from nin_export.quantize.ptq import load_calibration_cache
from nin_export.trt import read_sidecar

from .conftest import assert_one_line_error

GOOD_KEY = "a" * 64


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_sidecar_loader(tmp_path):
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"plan")
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON") as e:
        read_sidecar(eng)
    _one_line(e)
    (tmp_path / "m.engine.json").write_text(json.dumps({"schema": "nin-export/engine/1", "engine": "m.engine"}))
    with pytest.raises(FileFormatError, match="wrong structure") as e:
        read_sidecar(eng)
    assert "rebuild" in _one_line(e)
    (tmp_path / "m.engine.json").write_text(json.dumps(["a list"]))
    with pytest.raises(NinExportError, match="not a nin-export engine sidecar"):
        read_sidecar(eng)


def test_calibration_cache_loader(tmp_path):
    path = tmp_path / "c.json"
    assert load_calibration_cache(path, GOOD_KEY) is None  # no file: calibrate
    good = {
        "version": 1,
        "key": GOOD_KEY,
        "key_parts": dict.fromkeys(("model", "data", "inputs", "preprocess", "method", "count"), "x"),
        "method": "minmax",
        "count": 16,
        "ranges": {"t": [-1.0, 2.0]},
    }
    path.write_text(json.dumps(good))
    assert load_calibration_cache(path, GOOD_KEY) == {"t": (-1.0, 2.0)}
    assert load_calibration_cache(path, "b" * 64) is None  # made for something else
    for bad, match in (
        (dict(good, ranges={"t": [0.0, 0.0]}), "every range at zero"),
        (dict(good, ranges={"t": [2.0, -1.0]}), "invalid ranges"),
        (dict(good, ranges={"t": "wide"}), "wrong structure"),
        (dict(good, version=7), "wrong structure"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(FileFormatError, match=match) as e:
            load_calibration_cache(path, GOOD_KEY)
        assert "--no-calib-cache" in _one_line(e)
    path.write_text('{"version": 1, "key": "' + GOOD_KEY + '", "ranges": {"t": [NaN, 1]}}')
    with pytest.raises(FileFormatError):
        load_calibration_cache(path, GOOD_KEY)


def test_results_loader(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": "nin-export/bench/1", "rows": "none"}))
    with pytest.raises(FileFormatError, match="wrong structure") as e:
        load_results([path])
    _one_line(e)
    path.write_text("[1, 2]")
    with pytest.raises(NinExportError, match="not a nin-export benchmark result"):
        load_results([path])


def test_pipeline_state_loader(tmp_path):
    (tmp_path / "pipeline-state.json").write_text(json.dumps({"stages": {"x": {"key": "short", "outputs": {}}}}))
    with pytest.raises(FileFormatError, match="pipeline state .* wrong structure at stages/x/key") as e:
        run_pipeline(PipelineConfig(out_dir=str(tmp_path)))
    assert "delete it" in _one_line(e)


def test_config_loader_checks_types_against_the_config_class(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(
        'model = "nin-cifar10"\n[train]\nepochs = 3\npatience = 0\n[bench]\nbatches = [1, 4]\n[bench.timing]\nmin_ms = 50\n'
        '[bench.power]\nsource = "none"\n[build]\nengines = false\ntargets = ["SM86"]\n'
        '[quantize]\ncalib_count = 64\ncalib_method = "entropy"\n'  # enums and tuples from their names and lists
    )
    cfg = load_config(toml)
    assert cfg.train.epochs == 3 and cfg.train.patience == 0 and cfg.bench.batches == [1, 4] and cfg.bench.timing.min_ms == 50.0
    assert cfg.build.engines is False and cfg.quantize.calib_count == 64 and cfg.train.batch_size == 64
    assert cfg.bench.power.source == "none" and cfg.build.targets == ("SM86",) and cfg.quantize.calib_method is CalibMethod.ENTROPY
    for text, match in (
        ('[train]\nepochs = "ten"\n', "train.epochs is 'ten', expected int"),
        ('[bench]\nbatches = [1, "x"]\n', r"bench.batches\[1\]"),
        ("epochs = 3\n", "unknown keys epochs"),
        ("[train]\nepochs = true\n", "expected int"),
        ("[bench.timing]\nmin_ms = inf\n", "finite"),
        ('[quantize]\ncalib_method = "kl"\n', "quantize.calib_method is 'kl', expected one of minmax, entropy, percentile"),
        ("[bench]\nmin_ms = 50\n", "unknown keys min_ms"),
        ("train = 3\n", "expected a table"),
    ):
        toml.write_text(text)
        with pytest.raises(FileFormatError, match=match) as e:
            load_config(toml)
        _one_line(e)


def test_model_meta_checks_fields():
    with pytest.raises(FileFormatError, match="input_size"):
        ModelMeta.from_dict({"input_size": [32]}, "x")
    with pytest.raises(FileFormatError, match="std"):
        ModelMeta.from_dict({"std": [0.0, 1.0, 1.0]}, "x")
    m = ModelMeta.from_dict({"model": "nin-cifar10", "input_size": [16, 16], "history": [1]})
    assert m.input_size == (16, 16) and m.extra == {"history": [1]} and m.to_dict()["input_size"] == [16, 16]


def test_cli_config_errors_are_one_line(cli_run, tmp_path):
    (tmp_path / "p.toml").write_text('[train]\nepochs = "ten"\n')
    assert_one_line_error(*cli_run("pipeline", "--config", tmp_path / "p.toml")[::2], "train.epochs")
