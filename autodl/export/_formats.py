"""One writer per export format; each takes an eval-mode model and an example batch.

Writers share one :class:`ExportJob`, so the ``torch.export`` program is traced once and
serves both ``model.pt2`` and ``model.onnx`` (the dynamo-based ONNX exporter translates
that same program). Each writer raises on failure; the caller records the reason and goes
on with the other formats.
"""

from __future__ import annotations

import logging
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["FORMATS", "WRITERS", "ExampleInputs", "ExportJob", "quiet_exporters"]


@dataclass(frozen=True)
class ExampleInputs:
    """The batch the formats trace with and the inputs' names: one tensor ``x``, or a text
    model's ``input_ids`` and ``attention_mask`` (whose tokens axis may vary in ONNX)."""

    tensors: tuple[torch.Tensor, ...]
    names: tuple[str, ...] = ("x",)

    def packed(self) -> torch.Tensor:
        """One tensor: ``x``, or ids and mask stacked ``(B, 2, L)`` (the MLflow input)."""
        return self.tensors[0] if len(self.tensors) == 1 else torch.stack(self.tensors, 1)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {"y": {0: "batch"}}
        for name in self.names:
            axes[name] = {0: "batch"} if len(self.names) == 1 else {0: "batch", 1: "tokens"}
        return axes

    def feed(self) -> dict[str, np.ndarray]:
        return {n: t.numpy() for n, t in zip(self.names, self.tensors, strict=True)}


@dataclass
class ExportJob:
    """One model being exported: the module, its example batch, the destination folder,
    and the ``torch.export`` program once it has been traced."""

    model: nn.Module
    example: ExampleInputs
    dest: Path
    _program: Any = field(default=None, repr=False)

    def program(self) -> Any:
        """The ``torch.export`` program with a dynamic batch axis, and for text a tokens
        axis that may vary too (traced on first use)."""
        if self._program is None:
            batch = torch.export.Dim("batch", min=1)
            axes: dict[int, Any] = {0: batch}
            if len(self.example.tensors) > 1:  # ids and mask: padded to any length
                axes[1] = torch.export.Dim.AUTO
            self._program = torch.export.export(
                self.model, self.example.tensors,
                dynamic_shapes=tuple(axes for _ in self.example.tensors))
        return self._program

    def reference(self) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = self.model(*self.example.tensors).numpy()
            return out


def _state_dict(job: ExportJob) -> str:
    torch.save(job.model.state_dict(), job.dest / "state_dict.pt")
    return "state_dict.pt"


def _onnx(job: ExportJob) -> str:
    """The dynamo-based exporter over the same program as ``model.pt2``; checked in ONNX
    Runtime against the PyTorch module."""
    import onnxruntime as ort

    path = job.dest / "model.onnx"
    names = list(job.example.names)
    try:
        program = job.program()
    except Exception:  # untraceable by torch.export (pt2 names the reason): TorchScript's
        program = None
    if program is not None:
        onnx_program = torch.onnx.export(program, job.example.tensors, input_names=names,
                                         output_names=["y"], dynamo=True, verbose=False)
        assert onnx_program is not None  # dynamo=True returns the program (legacy: None)
        onnx_program.save(str(path))
    else:  # the legacy exporter (deprecated from torch 2.9; its warning is silenced)
        torch.onnx.export(job.model, job.example.tensors, str(path), input_names=names,
                          output_names=["y"], dynamic_axes=job.example.dynamic_axes(),
                          dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _check_close("ONNX Runtime", session.run(None, job.example.feed())[0], job.reference())
    return "model.onnx"


@contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporters' own chatter off the user's terminal: torch.onnx logs a warning per
    torchvision op it skips, torch.export and TorchScript warn about deprecations. Real
    failures still raise and are reported per format."""
    _thread_lock_for_tqdm()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        logger.setLevel(level)


def _thread_lock_for_tqdm() -> None:
    """torch.fx's interpreter opens a tqdm bar while the ONNX exporter traces, and tqdm's
    default lock is a multiprocessing semaphore, which a worker that ends with ``os._exit``
    leaves to the resource tracker ("leaked semaphore" on the user's terminal). One
    process exports at a time here, so a thread lock is all tqdm needs."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def _check_close(what: str, got: np.ndarray, want: np.ndarray) -> None:
    if not np.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise RuntimeError(f"{what} output differs from PyTorch by "
                           f"{np.abs(got - want).max():.2e} (> 1e-4)")


def _torchscript(job: ExportJob) -> str:
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(job.model, job.example.tensors, check_trace=False)
    traced.save(str(job.dest / "model.torchscript.pt"))
    return "model.torchscript.pt"


def _pt2(job: ExportJob) -> str:
    torch.export.save(job.program(), str(job.dest / "model.pt2"))
    return "model.pt2"


def _mlflow(job: ExportJob) -> str:
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    packed = job.example.packed()  # text: ids and mask stacked, (n, 2, tokens)
    with torch.inference_mode():
        output = job.model(packed).numpy()
    target = job.dest / "mlflow"
    if target.exists():
        shutil.rmtree(target)
    x = packed.numpy()
    # explicit requirements: MLflow's inference would load the model in a subprocess
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                    f"mlflow=={mlflow.__version__}"]
    mlflow.pytorch.save_model(job.model, str(target), signature=infer_signature(x, output),
                              input_example=x[:2], pip_requirements=requirements)
    return "mlflow"


WRITERS: dict[str, Callable[[ExportJob], str]] = {
    "state_dict": _state_dict,
    "onnx": _onnx,
    "torchscript": _torchscript,
    "pt2": _pt2,
    "mlflow": _mlflow,
}
FORMATS = tuple(WRITERS)
