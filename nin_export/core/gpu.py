"""The one GPU probe: what GPU 0 is, through torch (no other CUDA bindings needed)."""

from __future__ import annotations

from typing import Any

__all__ = ["gpu_info"]


def gpu_info() -> dict[str, Any] | None:
    """Name, compute capability, memory and CUDA runtime of GPU 0, or None without a usable CUDA GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        p = torch.cuda.get_device_properties(0)
        return {
            "name": p.name,
            "compute_capability": f"{p.major}.{p.minor}",
            "memory_bytes": int(p.total_memory),
            "cuda_runtime": torch.version.cuda,
        }
    except Exception:  # noqa: BLE001  (a broken CUDA install must not stop a CPU run)
        return None
