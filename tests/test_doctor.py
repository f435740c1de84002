"""nin-export doctor on this machine: every check passes or is skipped with a reason, doctor.json is written."""

import json

from nin_export.doctor import CHECKS


def test_doctor_runs_every_check_and_writes_json(cli_run, tmp_path):
    out = tmp_path / "doctor.json"
    code, stdout, err = cli_run("doctor", "-o", out)
    doc = json.loads(out.read_text())
    assert doc["schema"] == "nin-export/doctor/1" and len(doc["checks"]) == len(CHECKS)
    status = {c["name"]: c["status"] for c in doc["checks"]}
    failed = {c["name"]: c["detail"] for c in doc["checks"] if c["status"] == "failed"}
    assert not failed and code == 0, failed
    assert status["export a small NiN to ONNX"] == "passed" and status["INT8 Q/DQ graph"] == "passed"
    assert all(c["detail"] for c in doc["checks"]), "every row says what it saw or why it was skipped"
    caps = doc["capabilities"]
    assert "CPUExecutionProvider" in caps["onnxruntime_providers"] and set(caps["power_sources"]) >= {"nvml", "rapl"}
    if caps["gpu"] is None:
        run = next(c for c in doc["checks"] if c["name"] == "run the engine against onnxruntime")
        assert run["status"] == "skipped" and ("GPU" in run["detail"] or "engine" in run["detail"])
    assert "checks" in stdout and "passed" in stdout
