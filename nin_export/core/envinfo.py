"""The environment recorded with every result: CPU, GPU, driver, versions, TensorRT, Jetson; whatever is readable here."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .gpu import gpu_info
from .manifest import tool_versions

__all__ = ["environment", "machine_name"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", info, re.M) or re.search(r"^Model\s*:\s*(.+)$", info, re.M)
    return m.group(1).strip() if m else (platform.processor() or platform.machine())


def _run(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _gpu() -> dict[str, Any]:
    out: dict[str, Any] = gpu_info() or {}
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if smi:
        name, _, driver = smi.splitlines()[0].partition(",")
        out.setdefault("name", name.strip())
        out["driver"] = driver.strip()
    return out


def _tensorrt() -> dict[str, str]:
    out = {}
    for mod, flavour in (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt-rtx")):
        try:
            m = __import__(mod)
            out[flavour] = m.__version__
        except Exception:  # noqa: BLE001
            pass
    return out


def _jetson() -> dict[str, Any] | None:
    model = _read("/proc/device-tree/model")
    if not model or not any(k in model for k in ("Jetson", "Orin", "Xavier", "Thor", "NVIDIA")):
        return None
    out: dict[str, Any] = {"model": model, "l4t": _read("/etc/nv_tegra_release")}
    q = _run(["nvpmodel", "-q"])
    if q:
        out["nvpmodel"] = " ".join(q.split())
    clocks = _run(["jetson_clocks", "--show"])
    if clocks:
        out["jetson_clocks"] = "MaxFreq" in clocks and "MinFreq" in clocks and bool(re.search(r"MinFreq=(\d+).*MaxFreq=\1", clocks))
    return out


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "versions": tool_versions("onnxsim", "scikit-learn"),
        "tensorrt": _tensorrt(),
        "gpu": _gpu() or None,
        "jetson": _jetson(),
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
    except Exception:  # noqa: BLE001
        pass
    return env


def machine_name(env: dict[str, Any] | None = None) -> str:
    """A short folder name for results: the GPU or Jetson if any, else the CPU and core count."""
    env = env or environment()
    base = (env.get("jetson") or {}).get("model") or (env.get("gpu") or {}).get("name") or f"{env['cpu']}-{env['cpu_cores']}c"
    return re.sub(r"[^A-Za-z0-9]+", "-", base).strip("-").lower()[:60]
