"""What this machine can do, checked in one go: the capability list, then a short smoke test of each
path (export, FP16, INT8, engine build, engine run against onnxruntime, timing, power), each passed,
failed or skipped with the reason. The CLI prints the table and writes doctor.json for bug reports."""

from __future__ import annotations

import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .enums import Precision
from .errors import first_line

__all__ = ["Check", "capabilities", "run_doctor"]

Progress = Callable[[str], None]


class Skip(Exception):
    """A check that cannot run on this machine; the message says why."""


@dataclass
class Check:
    name: str
    status: str  # passed | failed | skipped
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def capabilities() -> dict[str, Any]:
    """CPU, GPU and compute capability, driver, CUDA, torch's CUDA, onnxruntime's providers, TensorRT and
    TensorRT-RTX, Jetson model, L4T, nvpmodel, jetson_clocks, DLA cores, power sources."""
    import onnxruntime

    from .envinfo import environment
    from .power import power_sources

    env = environment()
    caps: dict[str, Any] = {
        "cpu": f"{env['cpu']} ({env['cpu_cores']} cores)",
        "gpu": env.get("gpu"),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "tensorrt": env["tensorrt"].get("tensorrt"),
        "tensorrt_rtx": env["tensorrt"].get("tensorrt-rtx"),
        "jetson": env.get("jetson"),
        "power_sources": power_sources(),
        "versions": env["versions"],
    }
    try:
        import torch

        caps["torch"] = torch.__version__
        caps["torch_cuda"] = torch.version.cuda
        caps["torch_sees_gpu"] = torch.cuda.is_available()
    except ImportError:
        caps["torch"] = None
    caps["dla_cores"] = _dla_cores()
    return caps


def _dla_cores() -> int | None:
    try:
        import tensorrt as trt  # full TensorRT only: TensorRT-RTX has no DLA

        return int(trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)
    except Exception:  # noqa: BLE001  (no TensorRT, or no GPU for a builder)
        return None


class _Smoke:
    """The smoke tests, sharing one work directory and what earlier checks made."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.made: dict[str, Path] = {}

    def export(self) -> str:
        import torch

        from .export import export_model
        from .models import create_model

        torch.manual_seed(0)
        res = export_model(create_model("nin-cifar10"), self.work / "export")
        self.made["fp32"] = res.final_path
        return f"nin-cifar10 (random weights) -> {res.final_path.name}, checked against PyTorch"

    def _quantize(self, precision: Precision) -> str:
        from .quantize import QuantizeOptions, quantize

        if "fp32" not in self.made:
            raise Skip("needs the export check")
        opts = QuantizeOptions(precision, calib_data="digits", calib_count=32, eval_count=32, cache_dir=None)
        r = quantize(self.made["fp32"], opts, output=self.work / "export" / f"nin.{precision.value}.onnx")
        self.made[precision.value] = r.path
        return f"{r.path.name}: top-1 agreement {r.agreement.top1_agreement:.0%}, cosine {r.agreement.cosine:.4f} on 32 digits"

    def fp16(self) -> str:
        return self._quantize(Precision.FP16)

    def int8(self) -> str:
        return self._quantize(Precision.INT8)

    def engine_build(self) -> str:
        from .errors import BackendUnavailableError
        from .trt import BuildOptions, build_engine

        if "fp16" not in self.made:
            raise Skip("needs the FP16 check")
        try:
            res = build_engine(self.made["fp16"], BuildOptions(batch=(1, 1, 4)), output=self.work / "nin.fp16.engine")
        except BackendUnavailableError as e:
            raise Skip(str(e)) from None
        self.made["engine"] = res.engine
        i = res.info
        where = ", ".join(i["targets"]) if i["targets"] else "this GPU"
        return f"{res.engine.name} ({i['bytes'] / 2**20:.1f} MiB) with {i['flavour']} {i['trt_version']} for {where}"

    def engine_run(self) -> str:
        import numpy as np

        from .gpu import gpu_info
        from .runners.onnxrt import OrtRunner
        from .trt.runner import TrtRunner
        from .verify import compare, tolerance_for

        if "engine" not in self.made:
            raise Skip("needs an engine (the build check)")
        if gpu_info() is None:
            raise Skip("no NVIDIA GPU here: an engine runs only on one")
        x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
        with OrtRunner(self.made["fp16"]) as o, TrtRunner(self.made["engine"]) as t:
            ref = next(iter(o.infer({o.input_names[0]: x}).values()))
            out = next(iter(t.infer({t.input_names[0]: x}).values()))
        a = compare([ref], [out], tolerance_for(Precision.FP16))
        if not a.passed:
            raise AssertionError(f"engine disagrees with onnxruntime: {a.describe()}")
        return f"engine vs onnxruntime on 4 inputs: {a.describe()}"

    def timing(self) -> str:
        import numpy as np

        from .runners.onnxrt import OrtRunner
        from .timing import TimingOptions, measure

        if "fp32" not in self.made:
            raise Skip("needs the export check")
        with OrtRunner(self.made["fp32"]) as r:
            st = measure(r, {r.input_names[0]: np.zeros((1, 3, 32, 32), np.float32)}, TimingOptions(100, 10, 300))
        return f"onnxruntime CPU, batch 1: median {st.median:.3f} ms over {st.iterations} iterations"

    def power(self) -> str:
        from .power import find_power_source

        sampler, what = find_power_source()
        if sampler is None:
            raise Skip(what)
        with sampler:
            time.sleep(0.5)
        w = sampler.mean_watts
        return f"{what}: {w:.2f} W over {sampler.seconds:.2f} s" if w is not None else f"{what}: no sample in 0.5 s"

    def torch_cuda(self) -> str:
        import torch

        if not torch.cuda.is_available():
            raise Skip(f"torch {torch.__version__} sees no CUDA GPU")
        from .models import create_model

        m = create_model("nin-cifar10").cuda().eval()
        with torch.inference_mode():
            y = m(torch.zeros(2, 3, 32, 32, device="cuda"))
        torch.cuda.synchronize()
        return f"nin-cifar10 forward on {torch.cuda.get_device_name()}: output {tuple(y.shape)}"


CHECKS = (
    ("export", "export a small NiN to ONNX"),
    ("fp16", "FP16 graph"),
    ("int8", "INT8 Q/DQ graph"),
    ("engine_build", "build a TensorRT engine"),
    ("engine_run", "run the engine against onnxruntime"),
    ("timing", "time onnxruntime"),
    ("torch_cuda", "PyTorch on CUDA"),
    ("power", "sample power"),
)


def run_doctor(progress: Progress | None = None, debug: bool = False) -> dict[str, Any]:
    """Capabilities and every smoke test; nothing raised (a check that raises is failed with its reason)."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    say("reading what this machine has")
    caps = capabilities()
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="nin-export-doctor-") as tmp:
        smoke = _Smoke(Path(tmp))
        for name, what in CHECKS:
            say(what)
            t = time.perf_counter()
            try:
                status, detail = "passed", getattr(smoke, name)()
            except Skip as e:
                status, detail = "skipped", str(e)
            except Exception as e:  # noqa: BLE001  (a check's failure is its row, with the reason)
                status, detail = "failed", f"{type(e).__name__}: {first_line(e)}"
                if debug:
                    detail += "\n" + traceback.format_exc()
            checks.append(Check(what, status, detail, round(time.perf_counter() - t, 2)))
    return {
        "schema": "nin-export/doctor/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "capabilities": caps,
        "checks": [c.to_dict() for c in checks],
        "seconds": round(time.perf_counter() - t0, 1),
    }
