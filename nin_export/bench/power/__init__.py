"""Power samplers behind one interface: start, stop, samples, mean watts, joules.

Sources, each what users of that platform already trust, one module each:
- ``ina3221``: a Jetson's INA3221 rails in sysfs (JetPack 4.6 iio and JetPack 5/6 hwmon layouts).
- ``tegrastats``: the same rails and the RAM in use, from tegrastats' lines.
- ``nvml``: desktop GPUs through nvidia-ml-py, the total-energy counter where the GPU has one.
- ``rapl``: x86 CPUs' Linux powercap RAPL energy counters, where readable.

Each source module registers its sampler with ``@register_source(name, devices=..., order=...)``; this
package imports every module it holds, so a new source is one new module, found with no other file edited.
``SOURCES`` lists them in search order, ``sources_for(device)`` those that measure a row on that device.
``base`` holds the interface and the registry, ``jetson`` the board rail and NvMap memory, ``energy`` idle
power and energy per image, ``options`` the benchmark's power options. Nothing here prints, and nothing
heavy (torch, pynvml) is imported until a sampler needs it.
"""

from __future__ import annotations

from .base import (
    SOURCES,
    PowerSample,
    PowerSampler,
    PowerSourceUnavailable,
    SourceInfo,
    discover_sources,
    find_power_source,
    power_sources,
    register_source,
    source_info,
    sources_for,
    unregister_source,
)
from .energy import energy_figures, measure_idle
from .ina3221 import SKIP_LABELS, Ina3221Sampler, find_ina3221_rails
from .jetson import BOARD_RAILS, NVMAP_CLIENTS, nvmap_process_bytes
from .nvml import NvmlSampler, match_nvml_device, torch_gpu_identity, visible_device
from .options import PowerOptions, power_choices
from .rapl import RaplSampler
from .tegrastats import TegrastatsSampler, parse_tegrastats

__all__ = [
    "PowerSample",
    "PowerSampler",
    "PowerSourceUnavailable",
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
    "visible_device",
    "torch_gpu_identity",
    "measure_idle",
    "energy_figures",
    "SOURCES",
    "BOARD_RAILS",
    "SKIP_LABELS",
    "NVMAP_CLIENTS",
    "SourceInfo",
    "register_source",
    "unregister_source",
    "source_info",
    "discover_sources",
    "PowerOptions",
    "power_choices",
    "POWER_CHOICES",
]

discover_sources(__name__, __path__)  # any other source module in this package registers itself here

POWER_CHOICES = power_choices()  # for click.Choice: "auto", "none", then SOURCES in search order
