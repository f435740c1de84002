"""Power samplers: tegrastats lines and INA3221 sysfs trees of each JetPack generation, a stand-in tegrastats
executable run as a real subprocess, and RAPL / NVML live where this machine has them."""

import math
import os
import time
from pathlib import Path

import pytest

from nin_export.bench.power import (
    Ina3221Sampler,
    NvmlSampler,
    PowerSourceUnavailable,
    RaplSampler,
    TegrastatsSampler,
    find_ina3221_rails,
    find_power_source,
    nvmap_process_bytes,
    parse_tegrastats,
    power_sources,
)

FIXTURES = Path(__file__).parent / "fixtures" / "power"

# (fixture, board rail watts of the first line, other rails of the first line, RAM used MB)
TEGRASTATS = [
    ("tegrastats-jp4-nano.txt", 2.545, {"POM_5V_GPU": 0.0, "POM_5V_CPU": 0.549}, 1276),
    ("tegrastats-jp46-xavier-nx.txt", 3.902, {"VDD_CPU_GPU_CV": 1.331, "VDD_SOC": 0.997}, 2673),
    ("tegrastats-jp5-orin-nx.txt", 4.521, {"VDD_CPU_GPU_CV": 1.320, "VDD_SOC": 1.080}, 1839),
    ("tegrastats-jp6-orin-nano.txt", 6.626, {"VDD_CPU_GPU_CV": 1.228, "VDD_SOC": 2.380}, 779),
]


@pytest.mark.parametrize("fixture,board,others,ram", TEGRASTATS)
def test_tegrastats_lines_of_every_jetpack(fixture, board, others, ram):
    line = (FIXTURES / fixture).read_text().splitlines()[0]
    parsed = parse_tegrastats(line)
    rails = parsed["rails"]
    board_rail = "POM_5V_IN" if "POM_5V_IN" in rails else "VDD_IN"
    assert rails[board_rail] == pytest.approx(board)
    for k, v in others.items():
        assert rails[k] == pytest.approx(v)
    assert set(rails) == {board_rail, *others}, "RAM, SWAP, IRAM and the clocks are not rails"
    assert parsed["ram_used_mb"] == ram


@pytest.mark.parametrize("fixture,board,others,ram", TEGRASTATS)
def test_stand_in_tegrastats_subprocess(fixture, board, others, ram, monkeypatch):
    """The sampler runs the tegrastats it finds on PATH, here one that prints recorded lines."""
    monkeypatch.setenv("PATH", f"{FIXTURES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NIN_EXPORT_TEGRASTATS_LINES", str(FIXTURES / fixture))
    s = TegrastatsSampler(interval_ms=20)
    assert s.exe == str(FIXTURES / "tegrastats")
    with s:
        deadline = time.time() + 10
        while len(s.samples) < 4 and time.time() < deadline:
            time.sleep(0.02)
    assert len(s.samples) >= 4 and s._proc.poll() is not None, "the subprocess is stopped"
    lines = [parse_tegrastats(x)["rails"] for x in (FIXTURES / fixture).read_text().splitlines()]
    boards = {r.get("VDD_IN", r.get("POM_5V_IN")) for r in lines}
    assert {x.watts for x in s.samples} <= boards
    assert min(boards) <= s.mean_watts <= max(boards)
    summary = s.summary()
    assert summary["source"] == "tegrastats" and summary["ram_used_mb_max"] >= ram and summary["joules"] > 0


def test_tegrastats_missing_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PowerSourceUnavailable, match="tegrastats is not on PATH"):
        TegrastatsSampler()


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text + "\n")
    return root


# INA3221 sysfs as each JetPack lays it out: JetPack 4.6 (L4T 32, iio, the ina3221x driver: rail names,
# mW/mV/mA), JetPack 5.x (L4T 35) and 6.x (L4T 36) (hwmon, the upstream ina3221 driver: labels, mV, mA,
# channel 7 the sum of shunt voltages; AGX Orin has a second sensor at 0x41).
JP46_NANO = {
    "ina3221x/6-0040/iio:device0/rail_name_0": "POM_5V_IN",
    "ina3221x/6-0040/iio:device0/in_power0_input": "2545",
    "ina3221x/6-0040/iio:device0/in_voltage0_input": "5016",
    "ina3221x/6-0040/iio:device0/in_current0_input": "507",
    "ina3221x/6-0040/iio:device0/rail_name_1": "POM_5V_GPU",
    "ina3221x/6-0040/iio:device0/in_power1_input": "0",
    "ina3221x/6-0040/iio:device0/rail_name_2": "POM_5V_CPU",
    "ina3221x/6-0040/iio:device0/in_power2_input": "549",
}
JP5_XAVIER_NX = {
    "ina3221/7-0040/hwmon/hwmon6/in1_label": "VDD_IN",
    "ina3221/7-0040/hwmon/hwmon6/in1_input": "5072",
    "ina3221/7-0040/hwmon/hwmon6/curr1_input": "880",
    "ina3221/7-0040/hwmon/hwmon6/in2_label": "VDD_CPU_GPU_CV",
    "ina3221/7-0040/hwmon/hwmon6/in2_input": "5064",
    "ina3221/7-0040/hwmon/hwmon6/curr2_input": "296",
    "ina3221/7-0040/hwmon/hwmon6/in3_label": "VDD_SOC",
    "ina3221/7-0040/hwmon/hwmon6/in3_input": "5064",
    "ina3221/7-0040/hwmon/hwmon6/curr3_input": "240",
    "ina3221/7-0040/hwmon/hwmon6/in7_label": "sum of shunt voltages",
    "ina3221/7-0040/hwmon/hwmon6/in7_input": "17",
}
JP6_AGX_ORIN = {
    "ina3221/1-0040/hwmon/hwmon1/in1_label": "VDD_GPU_SOC",
    "ina3221/1-0040/hwmon/hwmon1/in1_input": "19080",
    "ina3221/1-0040/hwmon/hwmon1/curr1_input": "208",
    "ina3221/1-0040/hwmon/hwmon1/in2_label": "VDD_CPU_CV",
    "ina3221/1-0040/hwmon/hwmon1/in2_input": "19080",
    "ina3221/1-0040/hwmon/hwmon1/curr2_input": "96",
    "ina3221/1-0040/hwmon/hwmon1/in3_label": "VIN_SYS_5V0",
    "ina3221/1-0040/hwmon/hwmon1/in3_input": "5008",
    "ina3221/1-0040/hwmon/hwmon1/curr3_input": "664",
    "ina3221/1-0041/hwmon/hwmon2/in2_label": "VDDQ_VDD2_1V8AO",
    "ina3221/1-0041/hwmon/hwmon2/in2_input": "5000",
    "ina3221/1-0041/hwmon/hwmon2/curr2_input": "104",
}


@pytest.mark.parametrize(
    "files,rails,total",
    [
        (JP46_NANO, {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}, 2.545),
        (JP5_XAVIER_NX, {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}, 5.072 * 0.880),
        (JP6_AGX_ORIN, {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}, 19.08 * 0.304 + 5.008 * 0.664 + 0.52),
    ],
    ids=["jetpack-4.6-nano", "jetpack-5-xavier-nx", "jetpack-6-agx-orin"],
)
def test_ina3221_sysfs_of_every_jetpack(tmp_path, files, rails, total):
    root = _tree(tmp_path, files)
    assert set(find_ina3221_rails(root)) == rails, "channel 7 (sum of shunt voltages) is not a rail"
    s = Ina3221Sampler(root)
    s.interval_s = 0.01
    with s:
        time.sleep(0.1)
    assert s.samples and s.mean_watts == pytest.approx(total, rel=1e-6)
    assert s.joules == pytest.approx(total * s.seconds, rel=1e-6)
    assert "INA3221" in s.describe()


def test_ina3221_absent_says_so(tmp_path):
    with pytest.raises(PowerSourceUnavailable, match="no INA3221 rails"):
        Ina3221Sampler(tmp_path)


def test_rapl_counter_with_wraparound(tmp_path):
    """A recorded RAPL tree; the counter wraps between start and stop."""
    d = _tree(tmp_path, {"intel-rapl:0/name": "package-0", "intel-rapl:0/max_energy_range_uj": "262143328850",
                         "intel-rapl:0/energy_uj": "262143000000", "intel-rapl:0:0/name": "core"})  # fmt: skip
    s = RaplSampler(d)
    s.start()
    (d / "intel-rapl:0" / "energy_uj").write_text("671150\n")  # wrapped: 328850 + 671150 uJ = 1 J
    s.stop()
    assert s.joules == pytest.approx(1.0) and s.describe() == "RAPL (package-0)"


def test_rapl_live_or_reason():
    try:
        s = RaplSampler()
    except PowerSourceUnavailable as e:
        pytest.skip(f"RAPL not readable here: {e}")
    with s:
        sum(i * i for i in range(200_000))
    assert s.joules >= 0 and math.isfinite(s.mean_watts)


def test_nvml_live_or_reason():
    try:
        s = NvmlSampler()
    except PowerSourceUnavailable as e:
        pytest.skip(f"no NVML GPU here: {e}")
    s.interval_s = 0.01
    with s:
        time.sleep(0.3)
    assert s.mean_watts > 0 and s.joules > 0


def test_no_source_says_why():
    sampler, why = find_power_source()
    sources = power_sources()
    assert set(sources) == {"ina3221", "tegrastats", "nvml", "rapl"}
    if sampler is None:
        assert why.startswith("no power source:") and all(name in why for name in sources)
    else:
        assert any(v.startswith("available") for v in sources.values())


def test_nvmap_clients_table():
    """NvMap's per-process table (debugfs, root only) as jtop reads it: this process's buffers summed."""
    path = FIXTURES / "nvmap-iovmm-clients.txt"
    assert nvmap_process_bytes(4242, path) == (186368 + 4096) * 1024
    assert nvmap_process_bytes(1187, path) == 31616 * 1024
    assert nvmap_process_bytes(7, path) is None and nvmap_process_bytes(4242, FIXTURES / "missing") is None


def test_sources_follow_the_row_device():
    from nin_export.bench.power import sources_for

    assert sources_for("cuda") == ["ina3221", "tegrastats", "nvml"]
    assert sources_for("cpu") == ["ina3221", "tegrastats", "rapl"], "a CPU row is not charged a GPU's power"
    sampler, why = find_power_source(["rapl"])
    assert sampler is not None or why.startswith("no power source: rapl:")


def test_sources_in_todays_order_and_per_device():
    """The registry keeps the search order and each device's sources as the benchmark has always had them."""
    from nin_export.bench import power

    assert list(power.SOURCES) == ["ina3221", "tegrastats", "nvml", "rapl"]
    assert power.SOURCES["nvml"] is NvmlSampler and power.SOURCES["rapl"] is RaplSampler
    assert power.sources_for("cpu") == ["ina3221", "tegrastats", "rapl"]
    assert power.sources_for("cuda") == ["ina3221", "tegrastats", "nvml"]
    assert power.POWER_CHOICES == ["auto", "none", "ina3221", "tegrastats", "nvml", "rapl"] == power.power_choices()
    assert power.source_info("ina3221").devices is None, "a Jetson's board rails measure any device"


NEW_SOURCE = '''"""A stand-in source, dropped into the package by a test."""

from __future__ import annotations

from nin_export.bench.power.base import PowerSample, PowerSampler, register_source


@register_source("fake", devices=("cpu",), order=35)
class FakeSampler(PowerSampler):
    def read(self) -> PowerSample:
        return PowerSample(0.0, 7.0)
'''


def test_a_new_source_module_is_discovered(tmp_path, monkeypatch):
    """One more module in the package (here a directory added to the package's __path__, so nothing is written
    into the installed package) registers itself: SOURCES, sources_for and the choices take it in its order."""
    import sys

    from nin_export.bench import power

    (tmp_path / "fake_source.py").write_text(NEW_SOURCE)
    monkeypatch.setattr(power, "__path__", [*power.__path__, str(tmp_path)])
    try:
        assert "fake_source" in power.discover_sources(power.__name__, power.__path__)
        assert list(power.SOURCES) == ["ina3221", "tegrastats", "nvml", "fake", "rapl"]
        assert power.sources_for("cpu") == ["ina3221", "tegrastats", "fake", "rapl"]
        assert power.sources_for("cuda") == ["ina3221", "tegrastats", "nvml"]
        assert "fake" in power.power_choices() and "fake" in power.power_sources()
        sampler, what = power.find_power_source(["fake"])
        assert what == "fake" and sampler.name == "fake"
        power.PowerOptions(source="fake").check()
    finally:
        power.unregister_source("fake")
        sys.modules.pop("nin_export.bench.power.fake_source", None)
    assert list(power.SOURCES) == ["ina3221", "tegrastats", "nvml", "rapl"]


def test_register_source_refuses_a_taken_name():
    from nin_export.bench.power import PowerSampler, register_source

    class Other(PowerSampler):
        pass

    with pytest.raises(ValueError, match="power source 'nvml' is already"):
        register_source("nvml", devices=("cuda",))(Other)
    from nin_export.bench.power import SOURCES

    assert SOURCES["nvml"] is NvmlSampler, "the registered source stays"


def test_power_options_say_what_is_wrong():
    from nin_export.bench.power import PowerOptions
    from nin_export.core.defaults import DEFAULT_IDLE_S, DEFAULT_IDLE_SETTLE_S
    from nin_export.core.errors import NinExportError

    opts = PowerOptions()
    assert (opts.source, opts.idle_s, opts.idle_settle_s) == ("auto", DEFAULT_IDLE_S, DEFAULT_IDLE_SETTLE_S)
    for ok in (opts, PowerOptions("none", 0, 0), PowerOptions("rapl", 60, 60)):
        ok.check()
    with pytest.raises(NinExportError) as e:
        PowerOptions("joulemeter").check()
    assert str(e.value) == "power source 'joulemeter' is not one of auto, none, ina3221, tegrastats, nvml, rapl"
    with pytest.raises(NinExportError) as e:
        PowerOptions(idle_s=0.5, idle_settle_s=3).check()
    assert str(e.value) == (
        "idle power is sampled for 1..60 s (0: not measured) after 0..60 s of settling, got --idle-s 0.5 and a settling time of 3 s"
    )
    with pytest.raises(NinExportError, match="settling time of 61 s"):
        PowerOptions(idle_settle_s=61).check()
