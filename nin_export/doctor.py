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

from .core.defaults import DEFAULT_RTX_TARGETS
from .core.enums import Precision
from .core.errors import first_line

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

    from .bench.power import power_sources
    from .core.envinfo import environment

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
    caps["runtimes"] = _runtimes()
    return caps


def _runtimes() -> dict[str, str]:
    """Every row of the runtime table: available, or why not (a new row shows up here by itself)."""
    from .runtimes import RUNTIMES

    out = {}
    for r in RUNTIMES:
        try:
            why = r.unavailable()
        except Exception as e:  # noqa: BLE001  (a broken install is a reason too)
            why = f"{type(e).__name__}: {first_line(e)}"
        out[r.alias] = f"available: {r.description}" if why is None else why
    return out


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

        from .export.exporter import export_model
        from .models import create_model

        torch.manual_seed(0)
        res = export_model(create_model("nin-cifar10"), self.work / "export")
        self.made["fp32"] = res.final_path
        return f"nin-cifar10 (random weights) -> {res.final_path.name}, checked against PyTorch"

    def _quantize(self, precision: Precision) -> str:
        from .quantize.ptq import QuantizeOptions, quantize

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
        from .core.errors import BackendUnavailableError
        from .core.gpu import gpu_info
        from .trt import BuildOptions, build_engine, load_trt

        if "fp16" not in self.made:
            raise Skip("needs the FP16 check")
        try:
            trtm = load_trt()
        except BackendUnavailableError as e:
            raise Skip(str(e)) from None
        opts = BuildOptions(batch=(1, 1, 4))
        self.no_target = trtm.target_missing(gpu_info())
        if self.no_target is not None:  # a GPU TensorRT-RTX cannot target: build ahead of time for the others
            opts.targets = DEFAULT_RTX_TARGETS
        res = build_engine(self.made["fp16"], opts, output=self.work / "nin.fp16.engine")
        self.made["engine"] = res.engine
        i = res.info
        where = ", ".join(i["targets"]) if i["targets"] else "this GPU"
        note = f" ({self.no_target}: built ahead of time)" if self.no_target else ""
        return f"{res.engine.name} ({i['bytes'] / 2**20:.1f} MiB) with {i['flavour']} {i['trt_version']} for {where}{note}"

    def engine_run(self) -> str:
        import numpy as np

        from .core.gpu import gpu_info
        from .core.verify import compare, tolerance_for
        from .runners.onnxrt import OrtRunner
        from .trt.runner import TrtRunner

        if "engine" not in self.made:
            raise Skip("needs an engine (the build check)")
        if gpu_info() is None:
            raise Skip("no NVIDIA GPU visible to torch here: an engine runs only on one")
        if getattr(self, "no_target", None):
            raise Skip(self.no_target)
        x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
        with OrtRunner(self.made["fp16"]) as o, TrtRunner(self.made["engine"]) as t:
            ref = next(iter(o.infer({o.input_names[0]: x}).values()))
            out = next(iter(t.infer({t.input_names[0]: x}).values()))
        a = compare([ref], [out], tolerance_for(Precision.FP16))
        if not a.passed:
            raise AssertionError(f"engine disagrees with onnxruntime: {a.describe()}")
        self.made["engine_ran"] = self.made["engine"]
        return f"engine vs onnxruntime on 4 inputs: {a.describe()}"

    def crosscheck(self) -> str:
        from .core.errors import BackendUnavailableError
        from .trt.crosscheck import polygraphy_crosscheck

        if "engine_ran" not in self.made:
            raise Skip("needs an engine that runs here (the run check)")
        try:
            c = polygraphy_crosscheck(self.made["engine"], batch=4, iterations=50)
        except BackendUnavailableError as e:
            raise Skip(str(e)) from None
        text = (
            f"outputs {'match' if c['outputs_match'] else 'DIFFER'} ({c['outputs']}); host median "
            f"{c['median_ms_nin_export']:.3f} ms (nin-export) vs {c['median_ms_polygraphy']:.3f} ms (Polygraphy), "
            f"tolerance {c['latency_tolerance']}"
        )
        if not c["passed"]:
            raise AssertionError(text)
        return text

    def timing(self) -> str:
        import numpy as np

        from .runners.onnxrt import OrtRunner
        from .runners.timing import TimingOptions, measure

        if "fp32" not in self.made:
            raise Skip("needs the export check")
        with OrtRunner(self.made["fp32"]) as r:
            st = measure(r, {r.input_names[0]: np.zeros((1, 3, 32, 32), np.float32)}, TimingOptions(100, 10, 300))
        return f"onnxruntime CPU, batch 1: median {st.median:.3f} ms over {st.iterations} iterations"

    def power(self) -> str:
        from .bench.power import find_power_source

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

    # --- the GPU timing path, end to end (PyTorch on CUDA: no TensorRT needed) ---------------------------

    def _torch_runner(self, cuda_graph: bool = False) -> Any:
        import torch

        if not torch.cuda.is_available():
            raise Skip(f"torch {torch.__version__} sees no CUDA GPU")
        from .models import create_model
        from .runners.torch_runner import TorchRunner

        torch.manual_seed(0)
        return TorchRunner(create_model("nin-cifar10"), device="cuda", cuda_graph=cuda_graph)

    def gpu_timing(self) -> str:
        from .runners.timing import TimingOptions, measure

        with self._torch_runner() as r:
            st = measure(r, _feed(), TimingOptions(100, 20, 300))
            sp = r.split()
        if sp["iterations"] != st.iterations:
            raise AssertionError(f"{sp['iterations']} iterations split, {st.iterations} timed")
        med = {k: sp[k]["median"] for k in ("enqueue_ms", "h2d_ms", "compute_ms", "d2h_ms")}
        warn = f"; warnings: {'; '.join(sp['warnings'])}" if sp["warnings"] else ""
        return (
            f"CUDA events, {sp['depth']} in flight, batch 8: GPU compute {med['compute_ms']:.3f} ms, enqueue "
            f"{med['enqueue_ms']:.3f}, H2D {med['h2d_ms']:.3f}, D2H {med['d2h_ms']:.3f} ms; {st.images_per_s:,.0f} img/s "
            f"over wall time{warn}"
        )

    def cuda_graph(self) -> str:
        import numpy as np

        from .runners.timing import TimingOptions, measure

        with self._torch_runner() as eager:
            ref = eager.infer(_feed())["logits"]
        with self._torch_runner(cuda_graph=True) as r:
            st = measure(r, _feed(), TimingOptions(100, 20, 300))
            sp = r.split()
            out = r.infer(_feed())["logits"]
        if not sp["cuda_graph"]:
            raise AssertionError(f"the capture fell back to plain enqueue: {sp['cuda_graph_note']}")
        if not np.allclose(ref, out, atol=1e-4):
            raise AssertionError(f"graph replay differs from eager by {float(np.abs(ref - out).max()):.3g}")
        return f"thread-local capture, replayed: GPU compute {st.median:.3f} ms, enqueue {sp['enqueue_ms']['median']:.3f} ms"

    def streams(self) -> str:
        with self._torch_runner() as r:
            one = r.throughput(_feed(), streams=1, seconds=0.5)
            two = r.throughput(_feed(), streams=2, seconds=0.5)
        return f"{one['images_per_s']:,.0f} img/s on one stream, {two['images_per_s']:,.0f} on two"

    def nvml_energy(self) -> str:
        from .bench.power import NvmlSampler, PowerSourceUnavailable, energy_figures
        from .runners.timing import TimingOptions, measure

        runner = self._torch_runner()  # skips without CUDA, before NVML is asked
        try:
            sampler = NvmlSampler()
        except PowerSourceUnavailable as e:
            raise Skip(str(e)) from None
        with runner as r:
            st = measure(r, _feed(), TimingOptions(100, 20, 1000), window=sampler)
            mem = sampler.memory_seen()
        fig = energy_figures(sampler.joules, sampler.seconds, st.iterations * st.batch, None)
        if "mj_per_image" not in fig:
            raise AssertionError(fig["reason"])
        used = ", ".join(f"{k} {v}" for k, v in mem.items() if k.endswith("bytes"))
        return (
            f"{sampler.describe()}, the GPU matched by {sampler.matched_by}: {fig['mean_watts']:.1f} W under load, "
            f"{fig['mj_per_image']:.3f} mJ/image over wall time; memory: {used or 'not readable'}"
        )


def _feed() -> dict[str, Any]:
    """Eight CIFAR-sized images: a batch whose GPU work is not only launch overhead."""
    import numpy as np

    return {"input": np.zeros((8, 3, 32, 32), np.float32)}


CHECKS = (
    ("export", "export a small NiN to ONNX"),
    ("fp16", "FP16 graph"),
    ("int8", "INT8 Q/DQ graph"),
    ("engine_build", "build a TensorRT engine"),
    ("engine_run", "run the engine against onnxruntime"),
    ("crosscheck", "the same engine through Polygraphy's TrtRunner"),
    ("timing", "time onnxruntime"),
    ("torch_cuda", "PyTorch on CUDA"),
    ("gpu_timing", "GPU timing: CUDA events, two iterations in flight"),
    ("cuda_graph", "CUDA graph capture and replay"),
    ("streams", "throughput over two streams"),
    ("nvml_energy", "NVML energy under load"),
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
