"""Which device slots exist: GPUs (respecting CUDA_VISIBLE_DEVICES) or CPU cores.

Decided without importing torch in the parent when possible: torch is asked only when
an NVIDIA driver is present on the machine.
"""

from __future__ import annotations

import os
import sys

from autodl.errors import UsageError
from autodl.workers._slot import WorkerSlot

__all__ = ["cpu_count", "plan_slots", "replan_cpu", "workers_that_fit"]

_WORKER_OVERHEAD = 600 * 1024**2  # torch, a model and its optimizer state in a CPU worker


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def cpu_count() -> int:
    return len(usable_cores())


def split_cores(n: int) -> list[tuple[int, ...]]:
    """Disjoint, contiguous sets of cores for ``n`` workers (empty sets when there are
    fewer cores than workers: they share, unpinned)."""
    cores = usable_cores()
    if n > len(cores):
        return [()] * n
    size = len(cores) // n
    return [tuple(cores[i * size:(i + 1) * size]) for i in range(n)]


def workers_that_fit(data_bytes: int) -> int:
    """How many CPU workers the free memory holds, each with its copy of the data (and as
    much again while it loads), leaving 30% free."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return 1 << 30
    return max(1, int(free * 0.7) // (2 * data_bytes + _WORKER_OVERHEAD))


def replan_cpu(slots: list[WorkerSlot]) -> None:
    """CPU slots left after some were dropped share every core again."""
    if not slots or any(s.device != "cpu" for s in slots):
        return
    pinned = split_cores(len(slots))
    for slot, cores in zip(slots, pinned, strict=True):
        slot.threads, slot.cores = max(1, cpu_count() // len(slots)), cores


def _mps_available() -> bool:
    """Apple-silicon GPUs (only asked on macOS, where torch's MPS backend exists)."""
    if sys.platform != "darwin":
        return False
    import torch

    return bool(torch.backends.mps.is_available())


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
        return _cuda_devices() or (["mps"] if _mps_available() else ["cpu"])
    if devices == "cpu":
        return ["cpu"]
    if devices == "mps":
        if not _mps_available():
            raise UsageError("--devices mps: no Apple GPU (MPS) on this machine",
                             key="devices")
        return ["mps"]
    ids = [d.strip() for d in devices.split(",") if d.strip()]
    if not ids or not all(d.isdigit() for d in ids):
        raise UsageError(
            f"--devices: expected auto, cpu, mps or GPU indices like 0,1; got {devices!r}",
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
               trials_per_device: int = 1, one_cpu_worker: bool = False) -> list[WorkerSlot]:
    """One slot per (device, k) on GPUs; on CPU, ``workers`` slots sharing the cores, by
    default one single-threaded worker per core (small models gain little from a second
    intra-op thread, and two trials side by side train nearly twice as many steps), or
    one worker with every core when ``one_cpu_worker`` (large models; a seeded search,
    whose trials then run in a repeatable order)."""
    found = _parse_devices(devices)
    cores = cpu_count()
    if found == ["cpu"]:
        slots = found * (workers or (1 if one_cpu_worker else cores))
    elif found == ["mps"]:
        slots = found * (workers or 1)
    else:
        slots = [d for d in found for _ in range(trials_per_device)]
        if workers:
            slots = slots[:workers]
    threads = max(1, cores // len(slots))
    pinned = split_cores(len(slots))
    return [WorkerSlot(id=i, device=d, threads=threads, cores=pinned[i])
            for i, d in enumerate(slots)]
