"""Power samplers behind one interface: start, stop, samples, mean watts, joules.

Sources, each what users of that platform already trust:
- Jetson: the INA3221 rails in sysfs. JetPack 4.6 (L4T 32) lays them out under
  ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/`` (``rail_name_<c>``,
  ``in_power<c>_input`` mW, ``in_voltage<c>_input`` mV, ``in_current<c>_input`` mA); JetPack 5.x and
  6.x (L4T 35/36) under ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/`` (``in<c>_label``,
  ``in<c>_input`` mV, ``curr<c>_input`` mA; channel 7 is the "sum of shunt voltages", not a rail).
  Or ``tegrastats``, whose lines carry the same rails (``VDD_IN 4937mW/4937mW`` on JetPack 5/6,
  ``POM_5V_IN 2545/2547`` on JetPack 4) and the RAM in use.
- Desktop GPUs: NVML through nvidia-ml-py, the total-energy counter where the GPU has one (Volta and
  newer), else power samples.
- x86 CPUs: Linux powercap RAPL (``/sys/class/powercap/intel-rapl:<N>/energy_uj``), where readable.

A board-level rail (VDD_IN, POM_5V_IN) is preferred where there is one, as tegrastats' users read it;
otherwise every rail is summed. Nothing here prints: each sampler says why it is unavailable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "PowerSample",
    "PowerSampler",
    "Ina3221Sampler",
    "TegrastatsSampler",
    "NvmlSampler",
    "RaplSampler",
    "parse_tegrastats",
    "find_ina3221_rails",
    "find_power_source",
    "power_sources",
    "nvmap_process_bytes",
    "sources_for",
    "match_nvml_device",
    "torch_gpu_identity",
    "measure_idle",
    "energy_figures",
]

BOARD_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")  # the whole module's input, where a board has one
SKIP_LABELS = ("sum of shunt voltages", "nc")  # not rails: the shunt sum, and channels wired to nothing (jtop skips "NC")


@dataclass
class PowerSample:
    t: float  # time.perf_counter()
    watts: float
    rails: dict[str, float] = field(default_factory=dict)  # W per rail, where the source names them


class PowerSampler:
    """Start, stop, then read ``samples``, ``mean_watts`` and ``joules``. Subclasses give ``read()`` (one
    sample) or override start/stop (an energy counter, a subprocess)."""

    name = "power"
    interval_s = 0.05

    def __init__(self) -> None:
        self.samples: list[PowerSample] = []
        self._t0 = self._t1 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._energy_j: float | None = None  # from a hardware counter, where there is one

    def describe(self) -> str:
        return self.name

    @property
    def sample_interval_s(self) -> float | None:
        """Seconds between samples (None for a pure energy counter)."""
        return self.interval_s

    def read(self) -> PowerSample:  # pragma: no cover - each polling source defines it
        raise NotImplementedError

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.read())
            except (OSError, ValueError):
                pass  # a sensor that misses one read does not end the run
            self._stop.wait(self.interval_s)

    def start(self) -> "PowerSampler":
        self.samples, self._energy_j = [], None
        self._stop.clear()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._poll, name=f"nin-export-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "PowerSampler":
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._t1 = time.perf_counter()
        return self

    def __enter__(self) -> "PowerSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def seconds(self) -> float:
        return max(self._t1 - self._t0, 0.0)

    @property
    def mean_watts(self) -> float | None:
        if self._energy_j is not None and self.seconds > 0:
            return self._energy_j / self.seconds
        return sum(s.watts for s in self.samples) / len(self.samples) if self.samples else None

    @property
    def joules(self) -> float | None:
        if self._energy_j is not None:
            return self._energy_j
        w = self.mean_watts
        return None if w is None else w * self.seconds

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.describe(),
            "seconds": self.seconds,
            "samples": len(self.samples),
            "mean_watts": self.mean_watts,
            "joules": self.joules,
            "method": "energy counter" if self._energy_j is not None else "power samples",
        }


# --- Jetson: INA3221 in sysfs ---------------------------------------------------------------------


def _read_int(p: Path) -> int:
    return int(p.read_text().strip())


def find_ina3221_rails(root: str | os.PathLike = "/sys/bus/i2c/drivers") -> dict[str, Callable[[], float]]:
    """{rail label: a function that returns its watts}, for every INA3221 channel under ``root``, in
    either layout (JetPack 4.6 iio, JetPack 5/6 hwmon)."""
    root = Path(root)
    rails: dict[str, Callable[[], float]] = {}
    for dev in sorted(root.glob("ina3221x/*-*/iio:device*")):  # JetPack 4.6
        for label_file in sorted(dev.glob("rail_name_*")):
            c = label_file.name.rsplit("_", 1)[1]
            label = label_file.read_text().strip()
            if label.lower() in SKIP_LABELS:
                continue
            power = dev / f"in_power{c}_input"
            if power.exists():
                rails[label] = lambda p=power: _read_int(p) / 1000.0
            else:
                v, i = dev / f"in_voltage{c}_input", dev / f"in_current{c}_input"
                rails[label] = lambda v=v, i=i: _read_int(v) * _read_int(i) / 1e6
    for dev in sorted(root.glob("ina3221/*-*/hwmon/hwmon*")):  # JetPack 5.x and 6.x
        for label_file in sorted(dev.glob("in*_label")):
            c = label_file.name[2:-6]
            label = label_file.read_text().strip()
            v, i = dev / f"in{c}_input", dev / f"curr{c}_input"
            if label.lower() in SKIP_LABELS or not (v.exists() and i.exists()):
                continue
            rails[label if label not in rails else f"{label}@{dev.parent.parent.name}"] = lambda v=v, i=i: (
                _read_int(v) * _read_int(i) / 1e6
            )
    return rails


def _total(rails: dict[str, float]) -> float:
    board = next((rails[r] for r in BOARD_RAILS if r in rails), None)
    return board if board is not None else sum(rails.values())


class Ina3221Sampler(PowerSampler):
    """Every INA3221 rail. A rail that fails to read is dropped from then on (and named in ``dropped``);
    the others go on, so one bad channel does not cost every sample."""

    name = "ina3221"

    def __init__(self, root: str | os.PathLike = "/sys/bus/i2c/drivers") -> None:
        super().__init__()
        self.rails = find_ina3221_rails(root)
        self.dropped: dict[str, str] = {}
        if not self.rails:
            raise PowerSourceUnavailable(f"no INA3221 rails under {root}")

    def describe(self) -> str:
        board = next((r for r in BOARD_RAILS if r in self.rails), None)
        dropped = f"; unreadable, left out: {', '.join(self.dropped)}" if self.dropped else ""
        return f"INA3221 sysfs ({board or ' + '.join(self.rails)}{dropped})"

    def read(self) -> PowerSample:
        rails = {}
        for k, f in list(self.rails.items()):
            try:
                rails[k] = f()
            except (OSError, ValueError) as e:
                self.dropped[k] = f"{type(e).__name__}: {e}"
                del self.rails[k]
        if not rails:
            raise OSError("no INA3221 rail could be read")
        return PowerSample(time.perf_counter(), _total(rails), rails)


# --- Jetson: tegrastats ---------------------------------------------------------------------------

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(mW)?/(\d+)(mW)?")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ", "NC"}


def parse_tegrastats(line: str) -> dict[str, Any]:
    """One tegrastats line: {"rails": {name: watts now}, "ram_used_mb", "ram_total_mb"} (what the line has).
    Rails print as ``NAME now/avg`` in mW, with a "mW" suffix from JetPack 5 on."""
    out: dict[str, Any] = {"rails": {}}
    for name, now, _u, _avg, _u2 in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            out["rails"][name] = int(now) / 1000.0
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    return out


class TegrastatsSampler(PowerSampler):
    """``tegrastats --interval MS`` in a subprocess; each line is a sample."""

    name = "tegrastats"
    STARTUP_S = 5.0

    def __init__(self, exe: str | None = None, interval_ms: int = 100) -> None:
        super().__init__()
        self.exe = exe or shutil.which("tegrastats")
        if not self.exe:
            raise PowerSourceUnavailable("tegrastats is not on PATH (JetPack installs it in /usr/bin)")
        self.interval_ms = interval_ms
        self._proc: subprocess.Popen | None = None
        self.ram_used_mb: list[int] = []

    def _poll(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self._stop.is_set():
                break
            parsed = parse_tegrastats(line)
            if parsed["rails"]:
                self.samples.append(PowerSample(time.perf_counter(), _total(parsed["rails"]), parsed["rails"]))
                self._first.set()
            if "ram_used_mb" in parsed:
                self.ram_used_mb.append(parsed["ram_used_mb"])

    def start(self) -> "TegrastatsSampler":
        """Start tegrastats and wait (up to ``STARTUP_S``) for its first line, so that the window starts with
        a sample: a short timed loop would otherwise end before the subprocess has printed anything."""
        self.samples, self.ram_used_mb = [], []
        self._stop.clear()
        self._first = threading.Event()
        self._proc = subprocess.Popen(
            [self.exe, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._thread = threading.Thread(target=self._poll, name="nin-export-tegrastats", daemon=True)
        self._thread.start()
        self._first.wait(self.STARTUP_S)
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> "TegrastatsSampler":
        self._t1 = time.perf_counter()
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self

    @property
    def sample_interval_s(self) -> float | None:
        return self.interval_ms / 1000.0

    def summary(self) -> dict[str, Any]:
        s = super().summary()
        if self.ram_used_mb:
            s["ram_used_mb_max"] = max(self.ram_used_mb)
        return s


# --- desktop GPUs: NVML ---------------------------------------------------------------------------


def _norm_uuid(u: str | bytes | None) -> str | None:
    if u is None:
        return None
    u = (u.decode() if isinstance(u, bytes) else str(u)).strip().lower()
    return u[4:] if u.startswith("gpu-") else u


def _norm_pci(bus_id: str | bytes | None) -> tuple[int, ...] | None:
    """'00000000:3B:00.0' or '0000:3b:00.0' as (domain, bus, device, function)."""
    if not bus_id:
        return None
    text = bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)
    m = re.fullmatch(r"\s*([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])\s*", text.rstrip("\x00"))
    return tuple(int(g, 16) for g in m.groups()) if m else None


def match_nvml_device(uuid: str | None, pci_bus_id: str | None, nvml_devices: list[tuple[str, str]]) -> int | None:
    """The index among NVML's devices ((uuid, PCI bus id) each) of the GPU that torch calls ``uuid`` (or, failing
    that, that sits at ``pci_bus_id``); None when neither matches. NVML ignores CUDA_VISIBLE_DEVICES, so
    NVML's index 0 is not torch's cuda:0 on a multi-GPU host."""
    want = _norm_uuid(uuid)
    for i, (u, _) in enumerate(nvml_devices):
        if want and _norm_uuid(u) == want:
            return i
    pci = _norm_pci(pci_bus_id)
    for i, (_, b) in enumerate(nvml_devices):
        if pci and _norm_pci(b) == pci:
            return i
    return None


def visible_device(env: dict[str, str] | None = None) -> tuple[str | None, int | None]:
    """CUDA device 0 as CUDA_VISIBLE_DEVICES names it: (its UUID, None) or (None, its NVML index, where
    CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA's and NVML's numbering agree); (None, None) where it does not say."""
    env = os.environ if env is None else env
    first = env.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if first.upper().startswith(("GPU-", "MIG-")):
        return first, None
    if first.isdigit() and env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return None, int(first)
    return None, None


def torch_gpu_identity(device: int | None = None) -> tuple[str | None, str | None]:
    """(UUID, PCI bus id) of torch's CUDA device (the current one by default); (None, None) without CUDA, and
    where this process has not loaded torch (an onnxruntime row never does: NVML alone then decides)."""
    if "torch" not in sys.modules:
        return None, None
    try:
        import torch

        if not torch.cuda.is_available():
            return None, None
        p = torch.cuda.get_device_properties(torch.cuda.current_device() if device is None else device)
    except Exception:  # noqa: BLE001  (a broken CUDA install: no identity, the caller says so)
        return None, None
    uuid = str(p.uuid) if getattr(p, "uuid", None) is not None else None
    parts = [getattr(p, f"pci_{k}_id", None) for k in ("domain", "bus", "device")]
    pci = f"{parts[0]:08x}:{parts[1]:02x}:{parts[2]:02x}.0" if all(isinstance(x, int) for x in parts) else None
    return uuid, pci


class NvmlSampler(PowerSampler):
    """NVML's total-energy counter (mJ, Volta and newer) where it exists, else power samples (mW), on the GPU
    torch runs on (matched by UUID, then PCI bus id)."""

    name = "nvml"

    def __init__(self, device: int | None = None) -> None:
        super().__init__()
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            raise PowerSourceUnavailable("nvidia-ml-py is not installed (pip install 'nin-export[nvml]')") from None
        self.nvml = pynvml
        try:
            pynvml.nvmlInit()
            self.handle, self.matched_by = self._handle(device)
            self.gpu = pynvml.nvmlDeviceGetName(self.handle)
            self.used_at_start = int(pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        except pynvml.NVMLError as e:
            raise PowerSourceUnavailable(f"NVML: {e}") from None
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.counter = True
        except pynvml.NVMLError:
            self.counter = False
        try:
            pynvml.nvmlDeviceGetPowerUsage(self.handle)
        except pynvml.NVMLError as e:  # some GeForce, laptop and WSL GPUs: no power reading at all
            if not self.counter:
                raise PowerSourceUnavailable(f"NVML reads neither power nor energy on this GPU ({e})") from None
        self._e0 = 0

    def _handle(self, device: int | None) -> tuple[Any, str]:
        nv = self.nvml
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        ids = [(nv.nvmlDeviceGetUUID(h), nv.nvmlDeviceGetPciInfo(h).busId) for h in handles]
        uuid, pci = torch_gpu_identity(device)
        i = match_nvml_device(uuid, pci, ids)
        if i is not None:
            return handles[i], "uuid" if _norm_uuid(ids[i][0]) == _norm_uuid(uuid) else "pci bus id"
        visible_uuid, index = visible_device()
        i = match_nvml_device(visible_uuid, None, ids)
        if i is not None or (index is not None and index < len(handles)):
            return handles[i if i is not None else index], "CUDA_VISIBLE_DEVICES"
        if len(handles) == 1:
            return handles[0], "the only GPU NVML sees"
        raise PowerSourceUnavailable(
            f"NVML sees {len(handles)} GPUs and none matches this process's CUDA device (uuid {uuid}, PCI {pci}): "
            f"set CUDA_VISIBLE_DEVICES to the GPU's UUID (nvidia-smi -L) to say which one to measure"
        )

    def describe(self) -> str:
        gpu = self.gpu.decode() if isinstance(self.gpu, bytes) else self.gpu
        return f"NVML ({gpu}, {'energy counter' if self.counter else 'power samples'})"

    def read(self) -> PowerSample:
        try:
            return PowerSample(time.perf_counter(), self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)
        except self.nvml.NVMLError as e:  # a missed reading: the poll loop skips it, as a sensor's OSError
            raise OSError(str(e)) from None

    def start(self) -> "NvmlSampler":
        if self.counter:
            self._e0 = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        return super().start()  # power samples too, for the trace

    def stop(self) -> "NvmlSampler":
        super().stop()
        if self.counter:
            self._energy_j = (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self._e0) / 1000.0
        return self

    def process_memory_bytes(self, pid: int | None = None) -> int | None:
        """What NVML counts for ``pid`` on this GPU (TensorRT's weights and workspace included); None where
        NVML lists no such process (in a container the driver reports host PIDs)."""
        pid = os.getpid() if pid is None else pid
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.nvml.NVMLError:
            return None
        used = [p.usedGpuMemory for p in procs if p.pid == pid and p.usedGpuMemory is not None]
        return sum(used) if used else None

    def memory_seen(self) -> dict[str, Any]:
        """The process's GPU memory: NVML's per-process figure, or where that is empty (containers) the
        device's used-memory delta since this sampler was made, with which one it is."""
        own = self.process_memory_bytes()
        if own is not None:
            return {"nvml_process_bytes": own, "nvml_memory_method": "per-process (NVML compute processes)"}
        try:
            used = int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        except self.nvml.NVMLError:
            return {}
        return {
            "nvml_device_used_delta_bytes": used - self.used_at_start,
            "nvml_memory_method": "device used-memory delta since the job started (NVML lists no process with this "
            "PID: a container, whose PIDs the driver does not see; other processes on the GPU count too)",
        }


# --- x86 CPUs: RAPL -------------------------------------------------------------------------------


def _zone_name(d: Path) -> str:
    try:
        return (d / "name").read_text().strip()
    except OSError:
        return d.name


class RaplSampler(PowerSampler):
    """Linux powercap RAPL package domains (energy_uj counters, wrap-around handled). The ``psys`` (platform)
    zone, where there is one, contains the packages: it is left out, so nothing is counted twice; it is
    used alone only where it is the one readable zone."""

    name = "rapl"

    def __init__(self, root: str | os.PathLike = "/sys/class/powercap") -> None:
        super().__init__()
        found = []
        for d in sorted(Path(root).glob("intel-rapl:*")):
            if d.name.count(":") != 1:  # top-level zones only; sub-zones (core, uncore, dram) are inside them
                continue
            try:
                _read_int(d / "energy_uj")
                found.append((d, _read_int(d / "max_energy_range_uj")))
            except (OSError, ValueError):
                continue
        packages = [z for z in found if _zone_name(z[0]) != "psys"]
        self.domains = packages or found
        if not self.domains:
            readable = "" if not any(Path(root).glob("intel-rapl:*")) else " (energy_uj is root-only since Linux 5.10)"
            raise PowerSourceUnavailable(f"no readable RAPL domain under {root}{readable}")
        self._e0: list[int] = []

    @property
    def sample_interval_s(self) -> float | None:
        return None  # an energy counter, read at start and stop

    def describe(self) -> str:
        return f"RAPL ({', '.join(_zone_name(d) for d, _ in self.domains)})"

    def _energy(self) -> list[int]:
        return [_read_int(d / "energy_uj") for d, _ in self.domains]

    def start(self) -> "RaplSampler":
        self.samples, self._energy_j = [], None
        self._e0 = self._energy()
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> "RaplSampler":
        e1 = self._energy()
        self._t1 = time.perf_counter()
        uj = sum((b - a) % rng if b < a else b - a for (a, b, (_, rng)) in zip(self._e0, e1, self.domains))
        self._energy_j = uj / 1e6
        return self


# --- Jetson: NvMap (GPU buffers in unified memory, which RSS misses) --------------------------------

NVMAP_CLIENTS = "/sys/kernel/debug/nvmap/iovmm/clients"  # debugfs: root only


def nvmap_process_bytes(pid: int | None = None, path: str | os.PathLike = NVMAP_CLIENTS) -> int | None:
    """What NvMap holds for ``pid`` (the "CLIENT PROCESS PID SIZE" table jtop reads; sizes in K), or
    None where the file is not readable (it is root-only) or lists no such process."""
    pid = os.getpid() if pid is None else pid
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    total = None
    for line in lines[1:]:
        f = line.split()
        if len(f) >= 4 and f[-2] == str(pid) and (m := re.fullmatch(r"(\d+)([KMG]?)", f[-1])):
            total = (total or 0) + int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
    return total


# --- which one --------------------------------------------------------------------------------------


class PowerSourceUnavailable(Exception):
    """This machine has no such power source; the message says why."""


SOURCES: dict[str, Callable[[], PowerSampler]] = {
    "ina3221": Ina3221Sampler,
    "tegrastats": TegrastatsSampler,
    "nvml": NvmlSampler,
    "rapl": RaplSampler,
}


def power_sources() -> dict[str, str]:
    """{source: "available: <what>" or the reason it is not}, for every source this module knows."""
    out = {}
    for name, make in SOURCES.items():
        try:
            out[name] = f"available: {make().describe()}"
        except PowerSourceUnavailable as e:
            out[name] = str(e)
    return out


def find_power_source(order: list[str] | None = None) -> tuple[PowerSampler | None, str]:
    """The first available source of ``order`` (default: every one): (sampler, what it is) or (None, why none)."""
    reasons = []
    for name in order or list(SOURCES):
        try:
            s = SOURCES[name]()
            return s, s.describe()
        except PowerSourceUnavailable as e:
            reasons.append(f"{name}: {e}")
    return None, "no power source: " + "; ".join(reasons)


def sources_for(device: str) -> list[str]:
    """The sources that measure what a row on ``device`` draws: a Jetson's board rails for anything; else
    NVML for a CUDA row and RAPL for a CPU row (a desktop GPU's idle power says nothing of a CPU run)."""
    return ["ina3221", "tegrastats"] + (["nvml"] if device == "cuda" else ["rapl"])


# --- idle power and energy per image -----------------------------------------------------------------


def measure_idle(sampler: PowerSampler, window_s: float, settle_s: float) -> dict[str, Any]:
    """Idle power, once: wait ``settle_s`` with nothing running (clocks come down after earlier work), then
    sample for ``window_s``. Returns the watts with the window, the settling time and the sampler's interval."""
    time.sleep(settle_s)
    sampler.start()
    time.sleep(window_s)
    sampler.stop()
    return {
        "source": sampler.describe(),
        "watts": sampler.mean_watts,
        "window_s": round(sampler.seconds, 3),
        "settle_s": settle_s,
        "interval_s": sampler.sample_interval_s,
        "samples": len(sampler.samples),
        "method": sampler.summary()["method"],
    }


def energy_figures(joules: float | None, seconds: float, images: int, idle_watts: float | None) -> dict[str, Any]:
    """Energy per image over a timed window of ``seconds`` of wall time in which ``images`` were inferred:
    gross, net of the idle power, and images per joule. Wall time, not compute time: the power was drawn
    over the whole window, copies, launches and host work included (trtexec's throughput is over wall time too)."""
    if joules is None or images <= 0 or seconds <= 0 or joules <= 0:
        return {"reason": "no power sample in the timed window: raise --min-ms"}
    return {
        "joules": joules,
        "window_s": seconds,
        "images": images,
        "mean_watts": joules / seconds,
        "idle_watts": idle_watts,
        "mj_per_image": joules / images * 1000,
        "mj_per_image_net": None if idle_watts is None else (joules - idle_watts * seconds) / images * 1000,
        "images_per_joule": images / joules,
    }
