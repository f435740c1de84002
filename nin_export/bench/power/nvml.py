"""Desktop GPUs: NVML through nvidia-ml-py, the total-energy counter where the GPU has one (Volta and newer),
else power samples; on the GPU torch runs on, matched by UUID, then PCI bus id, then CUDA_VISIBLE_DEVICES.
It measures the GPU only, so this source serves CUDA rows. pynvml and torch are imported only when needed.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Mapping

from .base import PowerSample, PowerSampler, PowerSourceUnavailable, register_source

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+: read by the type checker only

__all__ = ["NvmlSampler", "match_nvml_device", "visible_device", "torch_gpu_identity"]


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
    seen: Mapping[str, str] = os.environ if env is None else env
    first = seen.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if first.upper().startswith(("GPU-", "MIG-")):
        return first, None
    if first.isdigit() and seen.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
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


@register_source("nvml", devices=("cuda",), order=30)
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
        if i is None and index is not None and index < len(handles):
            i = index
        if i is not None:
            return handles[i], "CUDA_VISIBLE_DEVICES"
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

    def start(self) -> Self:
        if self.counter:
            self._e0 = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        return super().start()  # power samples too, for the trace

    def stop(self) -> Self:
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
