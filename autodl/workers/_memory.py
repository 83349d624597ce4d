"""Memory inside a worker: refuse a model that cannot fit, recognise and recover from OOM.

An out-of-memory trial fails alone with reason ``oom`` and the worker goes on; the guard
catches the obvious cases (a width that needs terabytes) before anything is allocated.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch.overrides import TorchFunctionMode

from autodl.models import create_model
from autodl.train import TrialFailed

if TYPE_CHECKING:
    from autodl.train import TensorData

__all__ = ["check_memory", "is_out_of_memory", "release_memory", "resident_mb"]

# weights + gradients + two optimizer moments (Adam's), the usual training footprint
_TRAINING_COPIES = 4
_GIB = 1024**3


def model_bytes(config: Mapping[str, Any], data: TensorData) -> int:
    """Bytes of the model's parameters, measured on the meta device (nothing allocated)."""
    with torch.device("meta"), _SkipRandomInit():
        model = create_model(config["family"], config["model"], data.input_shape,
                             data.n_outputs, data.modality)
    return sum(p.numel() * p.element_size() for p in model.parameters())


class _SkipRandomInit(TorchFunctionMode):
    """Random in-place initialisation does nothing: on the meta device ``normal_`` (used by
    embeddings and learned positions) runs a Python decomposition that imports
    ``torch._dynamo``, about 2 s for a number that only needs shapes."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in ("normal_", "uniform_", "exponential_"):
            return args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        return func(*args, **kwargs)


def free_bytes(device: torch.device) -> int | None:
    """Memory the trial may still take on ``device`` (None when unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(config: Mapping[str, Any], data: TensorData,
                 limit_gb: float | None = None, models: int = 1) -> None:
    """Fail the trial with ``oom`` when the training state of ``models`` copies of the model
    (a batched group trains several) exceeds the device's free memory, or the user's
    per-trial limit (``--trial-memory-gb``)."""
    try:
        need = model_bytes(config, data) * _TRAINING_COPIES * models
    except Exception:  # a family that cannot be built on meta: let training find out
        return
    what = "the model needs" if models == 1 else f"{models} batched models need"
    free = free_bytes(data.device)
    if free is not None and need > free:
        raise TrialFailed("oom", f"{what} about {need / _GIB:.2f} GiB for weights, "
                          f"gradients and optimizer state; {data.device} has "
                          f"{free / _GIB:.2f} GiB free")
    if limit_gb is not None and need > limit_gb * _GIB:
        raise TrialFailed("oom", f"{what} about {need / _GIB:.2f} GiB for weights, "
                          f"gradients and optimizer state; --trial-memory-gb is {limit_gb}")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "not enough memory" in text
                                              or "out of memory" in text.lower())


def release_memory(device: torch.device) -> None:
    """Give back what a failed trial held, so the next one starts from the baseline."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def resident_mb() -> float:
    """This process's resident set size in MiB (Linux; 0.0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2
