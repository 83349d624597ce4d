"""One writer per export format; each takes an eval-mode model and an example batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autodl.errors import UsageError

__all__ = ["FORMATS", "WRITERS"]


def _state_dict(model: nn.Module, example: torch.Tensor, dest: Path) -> str:
    torch.save(model.state_dict(), dest / "state_dict.pt")
    return "state_dict.pt"


def _onnx(model: nn.Module, example: torch.Tensor, dest: Path) -> str:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise UsageError("ONNX export needs onnx and onnxruntime: "
                         "pip install 'autodl[onnx]'") from None
    path = dest / "model.onnx"
    torch.onnx.export(model, (example,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": example.numpy()})[0]
    with torch.inference_mode():
        want = model(example).numpy()
    if not np.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise RuntimeError(f"ONNX Runtime output differs from PyTorch by "
                           f"{np.abs(got - want).max():.2e} (> 1e-4)")
    return "model.onnx"


def _torchscript(model: nn.Module, example: torch.Tensor, dest: Path) -> str:
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(dest / "model.torchscript.pt"))
    return "model.torchscript.pt"


def _pt2(model: nn.Module, example: torch.Tensor, dest: Path) -> str:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(dest / "model.pt2"))
    return "model.pt2"


def _mlflow(model: nn.Module, example: torch.Tensor, dest: Path) -> str:
    import shutil

    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    with torch.inference_mode():
        output = model(example).numpy()
    target = dest / "mlflow"
    if target.exists():
        shutil.rmtree(target)
    x = example.numpy()
    # explicit requirements: MLflow's inference would load the model in a subprocess
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                    f"mlflow=={mlflow.__version__}"]
    mlflow.pytorch.save_model(model, str(target), signature=infer_signature(x, output),
                              input_example=x[:2], pip_requirements=requirements)
    return "mlflow"


WRITERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], str]] = {
    "state_dict": _state_dict,
    "onnx": _onnx,
    "torchscript": _torchscript,
    "pt2": _pt2,
    "mlflow": _mlflow,
}
FORMATS = tuple(WRITERS)
