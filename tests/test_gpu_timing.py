"""The GPU half's arithmetic and decisions, checked on a CPU: throughput and energy from wall time, trtexec's
pipelined timing and warnings, the CUDA-graph fallback, NVML's device match, Jetson and RAPL rails, and honest
skips. The GPU itself is exercised by doctor and the GPU-only tests where there is one."""

import time
from pathlib import Path

import numpy as np
import pytest

from nin_export.bench.power import (
    Ina3221Sampler,
    PowerSample,
    PowerSampler,
    RaplSampler,
    energy_figures,
    find_ina3221_rails,
    match_nvml_device,
    measure_idle,
    parse_tegrastats,
)
from nin_export.runners.base import Runner
from nin_export.runners.cuda_timing import capture_or_fallback, split_summary, timing_warnings
from nin_export.runners.timing import TimingOptions, measure

from .test_power import _tree


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class PipelinedRunner(Runner):
    """A runner whose every iteration takes ``wall_ms`` of (fake) host time and reports ``compute_ms`` of GPU
    compute, one iteration in flight as the GPU runners keep it: None first, then the previous one's time."""

    clock = "cuda-events"

    def __init__(self, fake: FakeClock, wall_ms: float, compute_ms: float) -> None:
        super().__init__()
        self.fake, self.wall_ms, self.compute_ms = fake, wall_ms, compute_ms
        self.in_flight = 0

    @property
    def input_names(self) -> list[str]:
        return ["input"]

    def activate_impl(self) -> None:
        pass

    def infer_impl(self, feed):
        return {"logits": np.zeros((len(feed["input"]), 10), np.float32)}

    def time_infer(self, feed):
        self.fake.t += self.wall_ms / 1000
        done = self.compute_ms / 1000 if self.in_flight else None
        self.in_flight = 1
        return done

    def drain_timing(self) -> list[float]:
        n, self.in_flight = self.in_flight, 0
        return [self.compute_ms / 1000] * n


def test_throughput_is_over_wall_time_not_compute_time():
    """GPU compute is a quarter of each iteration's wall time: images/s follows the wall, the compute-only
    figure is kept beside it, labelled; the pipelined runner's last iteration is drained, none is lost."""
    fake = FakeClock()
    with PipelinedRunner(fake, wall_ms=4.0, compute_ms=1.0) as r:
        st = measure(r, {"input": np.zeros((8, 3, 4, 4), np.float32)}, TimingOptions(10, 50, 100), clock=fake)
    assert st.iterations == 50 and st.clock == "cuda-events"
    assert st.total_ms == pytest.approx(200.0) and st.median == pytest.approx(1.0)
    assert st.images_per_s == pytest.approx(8 * 1000 / 4.0) and st.qps == pytest.approx(1000 / 4.0)
    assert st.compute_images_per_s == pytest.approx(8 * 1000 / 1.0)


def test_energy_per_image_is_over_wall_time():
    """10 W drawn over the timed loop: 8 images every 4 ms of wall time is 5 mJ/image (not the 1.25 mJ that
    the compute-only rate would give); net subtracts 4 W of idle."""
    fake = FakeClock()
    with PipelinedRunner(fake, wall_ms=4.0, compute_ms=1.0) as r:
        st = measure(r, {"input": np.zeros((8, 3, 4, 4), np.float32)}, TimingOptions(0, 50, 0), clock=fake)
    seconds = st.total_ms / 1000
    e = energy_figures(10.0 * seconds, seconds, st.iterations * st.batch, idle_watts=4.0)
    assert e["mj_per_image"] == pytest.approx(10.0 / st.images_per_s * 1000) == pytest.approx(5.0)
    assert e["mj_per_image_net"] == pytest.approx(3.0) and e["images_per_joule"] == pytest.approx(200.0)
    assert e["mean_watts"] == pytest.approx(10.0)
    assert "reason" in energy_figures(None, seconds, 400, None) and "reason" in energy_figures(1.0, seconds, 0, None)


class ConstantWatts(PowerSampler):
    name = "constant"
    interval_s = 0.005

    def read(self) -> PowerSample:
        return PowerSample(time.perf_counter(), 10.0)


class SleepyRunner(PipelinedRunner):
    """Real time: 4 ms of host time per iteration, 1 ms reported as compute."""

    def time_infer(self, feed):
        time.sleep(self.wall_ms / 1000)
        return super().time_infer(feed)


def test_worker_samples_power_over_the_timed_loop_only():
    from nin_export.bench.worker import BenchJob, JobEnergy, Workload, _measure_with_power
    from nin_export.runtimes import RunTarget

    job = BenchJob(
        runtime="torch",
        target=RunTarget(Path("x")),
        work=Workload(batches=(8,), input_shape=(3, 4, 4)),
        timing=TimingOptions(warmup_ms=100, min_iters=20, min_ms=0),
        energy=JobEnergy(idle_watts=4.0),
    )
    sampler = ConstantWatts()
    with SleepyRunner(FakeClock(), wall_ms=4.0, compute_ms=1.0) as r:
        st, e = _measure_with_power(r, {"input": np.zeros((8, 3, 4, 4), np.float32)}, job, sampler, "")
    assert sampler.seconds < 0.1 + st.total_ms / 1000, "the warm-up (100 ms) is outside the sampled window"
    assert e["mj_per_image"] == pytest.approx(10.0 / st.images_per_s * 1000, rel=0.1)
    assert e["mj_per_image"] > 2 * 10.0 / st.compute_images_per_s * 1000, "not the compute-only rate"
    assert e["idle_watts"] == 4.0 and e["source"] == "constant"


def test_idle_power_is_measured_after_settling_with_its_window():
    s = ConstantWatts()
    t0 = time.perf_counter()
    idle = measure_idle(s, window_s=0.1, settle_s=0.05)
    assert time.perf_counter() - t0 >= 0.15 and idle["watts"] == pytest.approx(10.0)
    assert idle["window_s"] >= 0.1 and idle["settle_s"] == 0.05 and idle["interval_s"] == 0.005 and idle["samples"] > 1


def test_trtexec_warnings():
    ok = split_summary([0.1] * 5, [2.0] * 5, [0.05] * 5, [0.5] * 5)
    assert ok["warnings"] == [] and ok["host_latency_ms"]["median"] == pytest.approx(2.15) and ok["depth"] == 2
    bound = split_summary([0.1] * 5, [0.3] * 5, [0.4] * 5, [0.5] * 5)
    w = " ".join(bound["warnings"])
    assert "enqueue-bound" in w and "device-to-host" in w and "host-to-device" not in w
    unstable = timing_warnings(split_summary([0.01] * 4, [1.0, 1.0, 1.2, 0.8], [0.01] * 4, [0.1] * 4))
    assert any("unstable" in x for x in unstable)
    assert timing_warnings({}) == []


def test_cuda_graph_capture_falls_back_with_the_reason():
    def broken():
        raise RuntimeError("operation not permitted when stream is capturing")

    graph, why = capture_or_fallback(broken)
    assert graph is None and "capture failed" in why and "not permitted" in why and "plain enqueue" in why
    called = []
    graph, why = capture_or_fallback(lambda: called.append(1), lambda: "TensorRT says this context cannot be captured")
    assert graph is None and not called and "cannot be captured" in why
    graph, why = capture_or_fallback(lambda: "graph", lambda: None)
    assert (graph, why) == ("graph", None)


def test_nvml_handle_follows_torchs_device():
    nvml = [
        ("GPU-11111111-aaaa-bbbb-cccc-000000000000", "00000000:1B:00.0"),
        ("GPU-22222222-aaaa-bbbb-cccc-000000000000", "00000000:3B:00.0"),
    ]
    assert match_nvml_device("22222222-AAAA-bbbb-cccc-000000000000", None, nvml) == 1, "torch's uuid has no GPU- prefix"
    assert match_nvml_device(None, "0000:3b:00.0", nvml) == 1, "PCI bus id in either width and case"
    assert match_nvml_device("99999999-0000-0000-0000-000000000000", "00000000:1b:00.0", nvml) == 0
    assert match_nvml_device("99999999-0000-0000-0000-000000000000", None, nvml) is None
    assert match_nvml_device(None, None, nvml) is None


HWMON = "ina3221/1-0040/hwmon/hwmon1"


def test_ina3221_skips_nc_channels_and_drops_only_a_failing_rail(tmp_path):
    root = _tree(
        tmp_path,
        {
            f"{HWMON}/in1_label": "VDD_GPU_SOC",
            f"{HWMON}/in1_input": "19000",
            f"{HWMON}/curr1_input": "100",
            f"{HWMON}/in2_label": "NC",
            f"{HWMON}/in2_input": "0",
            f"{HWMON}/curr2_input": "0",
            f"{HWMON}/in3_label": "VIN_SYS_5V0",
            f"{HWMON}/in3_input": "5000",
            f"{HWMON}/curr3_input": "600",
            "ina3221x/6-0040/iio:device0/rail_name_2": "NC",
            "ina3221x/6-0040/iio:device0/in_power2_input": "0",
        },
    )
    assert set(find_ina3221_rails(root)) == {"VDD_GPU_SOC", "VIN_SYS_5V0"}, "NC channels are no rails"
    s = Ina3221Sampler(root)
    (root / HWMON / "curr1_input").unlink()
    (root / HWMON / "curr1_input").mkdir()  # this rail can no longer be read
    sample = s.read()
    assert sample.watts == pytest.approx(5.0 * 0.6) and set(sample.rails) == {"VIN_SYS_5V0"}
    assert "VDD_GPU_SOC" in s.dropped and "VDD_GPU_SOC" in s.describe() and s.read().watts == pytest.approx(3.0)


def test_tegrastats_nc_is_not_a_rail():
    assert parse_tegrastats("RAM 1/2MB VDD_IN 5000mW/5000mW NC 0mW/0mW VDD_SOC 1000mW/1000mW")["rails"] == {
        "VDD_IN": 5.0,
        "VDD_SOC": 1.0,
    }


def test_rapl_does_not_count_the_package_twice_with_psys(tmp_path):
    d = _tree(
        tmp_path,
        {
            "intel-rapl:0/name": "package-0",
            "intel-rapl:0/max_energy_range_uj": "262143328850",
            "intel-rapl:0/energy_uj": "1000000",
            "intel-rapl:1/name": "psys",
            "intel-rapl:1/max_energy_range_uj": "262143328850",
            "intel-rapl:1/energy_uj": "5000000",
        },
    )
    s = RaplSampler(d)
    s.start()
    (d / "intel-rapl:0" / "energy_uj").write_text("3000000\n")  # the package: 2 J
    (d / "intel-rapl:1" / "energy_uj").write_text("8000000\n")  # the platform, the package inside it: 3 J
    s.stop()
    assert s.joules == pytest.approx(2.0) and s.describe() == "RAPL (package-0)"
    only = _tree(
        tmp_path / "only", {"intel-rapl:0/name": "psys", "intel-rapl:0/max_energy_range_uj": "9", "intel-rapl:0/energy_uj": "1"}
    )
    assert RaplSampler(only).describe() == "RAPL (psys)", "psys alone where it is the one zone"


def test_gpu_rows_without_cuda_torch_are_skipped_with_the_reason():
    from nin_export.bench.run import _usable_gpu
    from nin_export.core.enums import Precision
    from nin_export.runtimes import get_runtime

    have, why = _usable_gpu({"gpu": {"name": "NVIDIA H100 80GB HBM3", "driver": "580.1"}})  # nvidia-smi, no torch CUDA
    assert not have and "nvidia-smi sees NVIDIA H100" in why and "no CUDA" in why
    reason = get_runtime("torch").skip_reason(Precision.FP16, have, why)
    assert reason is not None and "NVIDIA H100" in reason
    assert _usable_gpu({"gpu": {"name": "x", "compute_capability": "8.6"}}) == (True, None)
    assert _usable_gpu({"gpu": None}) == (False, None)


def test_rtx_check_on_a_gpu_it_has_no_target_for_is_a_skip():
    pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx not installed (pip install 'nin-export[rtx]')")
    from nin_export.trt import TrtFlavour, load_trt

    trtm = load_trt(TrtFlavour.TENSORRT_RTX)
    why = trtm.target_missing({"name": "NVIDIA H200", "compute_capability": "9.0"})
    assert why is not None and "Hopper" in why and "H200" in why
    assert trtm.target_missing({"name": "RTX 4090", "compute_capability": "8.9"}) is None
    assert trtm.target_missing(None) is None


def test_crosscheck_skips_without_a_gpu(tmp_path):
    from nin_export.bench.worker import crosscheck_job
    from nin_export.core.gpu import gpu_info
    from nin_export.trt.crosscheck import latencies_agree

    if gpu_info() is not None:
        pytest.skip("a GPU is here: doctor and bench --verify-trt run the cross-check for real")
    res = crosscheck_job(str(tmp_path / "missing.engine"))
    assert res["status"] == "skipped" and "GPU" in res["reason"]
    assert latencies_agree(1.0, 1.2) and not latencies_agree(1.0, 2.0) and latencies_agree(0.02, 0.05)


def test_cuda_visible_devices_names_the_gpu_where_torch_is_not_loaded():
    from nin_export.bench.power import visible_device

    assert visible_device({"CUDA_VISIBLE_DEVICES": "GPU-22222222-aaaa-bbbb-cccc-000000000000,1"}) == (
        "GPU-22222222-aaaa-bbbb-cccc-000000000000",
        None,
    )
    assert visible_device({"CUDA_VISIBLE_DEVICES": "1"}) == (None, None), "CUDA's default order is not NVML's"
    assert visible_device({"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}) == (None, 1)
    assert visible_device({}) == (None, None)


def test_a_refused_capture_keeps_tensorrts_reason():
    from nin_export.core.errors import NinExportError

    def refused():
        raise NinExportError("TensorRT says this execution context cannot be captured on its stream")

    assert capture_or_fallback(refused) == (None, "TensorRT says this execution context cannot be captured on its stream")
