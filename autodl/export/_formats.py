"""One writer per export format; each takes an eval-mode model and an example batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autodl.errors import UsageError

__all__ = ["FORMATS", "WRITERS", "ExampleInputs"]


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


def _state_dict(model: nn.Module, example: ExampleInputs, dest: Path) -> str:
    torch.save(model.state_dict(), dest / "state_dict.pt")
    return "state_dict.pt"


def _onnx(model: nn.Module, example: ExampleInputs, dest: Path) -> str:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise UsageError("ONNX export needs onnx and onnxruntime: "
                         "pip install 'autodl[onnx]'") from None
    path = dest / "model.onnx"
    torch.onnx.export(model, example.tensors, str(path), input_names=list(example.names),
                      output_names=["y"], dynamic_axes=example.dynamic_axes(), dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, example.feed())[0]
    with torch.inference_mode():
        want = model(*example.tensors).numpy()
    if not np.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise RuntimeError(f"ONNX Runtime output differs from PyTorch by "
                           f"{np.abs(got - want).max():.2e} (> 1e-4)")
    return "model.onnx"


def _torchscript(model: nn.Module, example: ExampleInputs, dest: Path) -> str:
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model, example.tensors, check_trace=False)
    traced.save(str(dest / "model.torchscript.pt"))
    return "model.torchscript.pt"


def _pt2(model: nn.Module, example: ExampleInputs, dest: Path) -> str:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, example.tensors,
                                  dynamic_shapes=tuple({0: batch} for _ in example.tensors))
    torch.export.save(program, str(dest / "model.pt2"))
    return "model.pt2"


def _mlflow(model: nn.Module, example: ExampleInputs, dest: Path) -> str:
    import shutil

    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    packed = example.packed()  # text: ids and mask stacked, (n, 2, tokens)
    with torch.inference_mode():
        output = model(packed).numpy()
    target = dest / "mlflow"
    if target.exists():
        shutil.rmtree(target)
    x = packed.numpy()
    # explicit requirements: MLflow's inference would load the model in a subprocess
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                    f"mlflow=={mlflow.__version__}"]
    mlflow.pytorch.save_model(model, str(target), signature=infer_signature(x, output),
                              input_example=x[:2], pip_requirements=requirements)
    return "mlflow"


WRITERS: dict[str, Callable[[nn.Module, ExampleInputs, Path], str]] = {
    "state_dict": _state_dict,
    "onnx": _onnx,
    "torchscript": _torchscript,
    "pt2": _pt2,
    "mlflow": _mlflow,
}
FORMATS = tuple(WRITERS)
