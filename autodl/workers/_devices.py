"""Which device slots exist: GPUs (respecting CUDA_VISIBLE_DEVICES) or CPU cores.

Decided without importing torch in the parent when possible: torch is asked only when
an NVIDIA driver is present on the machine.
"""

from __future__ import annotations

import os

from autodl.errors import UsageError
from autodl.workers._pool import WorkerSlot

__all__ = ["cpu_count", "plan_slots"]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cuda_devices() -> list[str]:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return []
    if not (os.path.exists("/dev/nvidiactl") or os.path.isdir("/proc/driver/nvidia")):
        return []  # no NVIDIA driver: skip importing torch in the parent
    import torch

    if not torch.cuda.is_available():
        return []
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def _parse_devices(devices: str) -> list[str]:
    if devices == "auto":
        return _cuda_devices() or ["cpu"]
    if devices == "cpu":
        return ["cpu"]
    ids = [d.strip() for d in devices.split(",") if d.strip()]
    if not ids or not all(d.isdigit() for d in ids):
        raise UsageError(
            f"--devices: expected auto, cpu or GPU indices like 0,1; got {devices!r}",
            key="devices",
        )
    available = _cuda_devices()
    missing = [d for d in ids if f"cuda:{d}" not in available]
    if missing:
        raise UsageError(
            f"--devices: GPU(s) {', '.join(missing)} not available; visible: "
            f"{', '.join(available) or 'none'}", key="devices",
        )
    return [f"cuda:{d}" for d in ids]


def plan_slots(devices: str = "auto", workers: int | None = None,
               trials_per_device: int = 1) -> list[WorkerSlot]:
    """One slot per (device, k) on GPUs; on CPU, ``workers`` slots sharing the cores."""
    found = _parse_devices(devices)
    cores = cpu_count()
    if found == ["cpu"]:
        n = workers or 1
        threads = max(1, cores // n)
        return [WorkerSlot(id=i, device="cpu", threads=threads) for i in range(n)]
    slots = [d for d in found for _ in range(trials_per_device)]
    if workers:
        slots = slots[:workers]
    threads = max(1, cores // len(slots))
    return [WorkerSlot(id=i, device=d, threads=threads) for i, d in enumerate(slots)]
