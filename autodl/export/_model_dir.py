"""The exported model directory: config + preprocessing statistics + the chosen formats.

Loadable without autodl (``model.onnx`` in ONNX Runtime, ``model.pt2`` with
``torch.export.load``, ``model.torchscript.pt`` with ``torch.jit.load``, ``mlflow/`` with
``mlflow.pyfunc.load_model``) and with it (``load_model_dir``, ``autodl predict``). Inputs
of every format are *preprocessed* float32 arrays: ``preprocessor.json`` holds the
train-split statistics (``x - x_mean) / x_std`` in the canonical shape).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autodl.data import PreparedData, Preprocessor
from autodl.errors import UsageError
from autodl.export._formats import FORMATS, WRITERS
from autodl.models import create_model

__all__ = ["LoadedModel", "export_model", "export_study", "load_model_dir"]


@dataclass
class LoadedModel:
    module: nn.Module
    preprocessor: Preprocessor
    config: dict[str, Any]


def _check_formats(formats: Sequence[str]) -> list[str]:
    unknown = [f for f in formats if f not in WRITERS]
    if unknown:
        raise UsageError(f"unknown export format(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(FORMATS)}", key="format")
    return list(dict.fromkeys(formats))


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    """``weights_only=True``: a file holding pickled objects is refused, never run."""
    if not path.is_file():
        raise UsageError(f"no weights file at {path}", file=str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"refused to load: not a plain tensor state_dict ({first})",
                         file=str(path)) from None


def _build(config: dict[str, Any], pre: Preprocessor, n_outputs: int) -> nn.Module:
    return create_model(config["family"], config["model"], tuple(pre.input_shape), n_outputs,
                        pre.modality)


def _n_outputs(pre: Preprocessor) -> int:
    if pre.task == "classification":
        return len(pre.classes or [])
    return int(np.asarray(pre.y_mean).size) if pre.y_mean is not None else 1


def export_model(config: dict[str, Any], weights: Path, preprocessor: Preprocessor,
                 dest: Path, formats: Sequence[str]) -> dict[str, str]:
    """Write ``formats`` of the trained model into ``dest``; returns {format: file}."""
    formats = _check_formats(formats)
    n_outputs = _n_outputs(preprocessor)
    model = _build(config, preprocessor, n_outputs)
    model.load_state_dict(_load_weights(weights))
    model.eval()
    dest.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    example = torch.randn((4, *preprocessor.input_shape), generator=gen)
    files = {fmt: WRITERS[fmt](model, example, dest) for fmt in formats}
    (dest / "preprocessor.json").write_text(json.dumps(preprocessor.to_dict(), indent=1))
    from autodl import __version__

    meta = {**config, "input_shape": list(preprocessor.input_shape), "n_outputs": n_outputs,
            "modality": preprocessor.modality, "task": preprocessor.task,
            "classes": preprocessor.classes, "autodl_version": __version__, "files": files}
    (dest / "config.json").write_text(json.dumps(meta, indent=2))
    return files


def export_study(study_out_dir: Path, trial_number: int, dest: Path,
                 formats: Sequence[str]) -> dict[str, str]:
    """Export trial ``trial_number`` of a finished search from its saved best weights."""
    trial_dir = Path(study_out_dir) / "trials" / str(trial_number)
    if not (trial_dir / "config.json").is_file():
        raise UsageError(f"trial {trial_number} has no saved weights in {trial_dir} (only "
                         "completed trials keep them)", file=str(trial_dir))
    config = json.loads((trial_dir / "config.json").read_text())
    pre = PreparedData.load(Path(study_out_dir) / "data.npz").preprocessor
    return export_model(config, trial_dir / "weights.pt", pre, Path(dest), formats)


def load_model_dir(path: Path) -> LoadedModel:
    """Rebuild the model from ``config.json`` + ``state_dict.pt`` (weights only)."""
    path = Path(path)
    for name in ("config.json", "preprocessor.json", "state_dict.pt"):
        if not (path / name).is_file():
            raise UsageError(f"not an autodl model directory: missing {name}", file=str(path))
    try:
        config = json.loads((path / "config.json").read_text())
        pre = Preprocessor.from_dict(json.loads((path / "preprocessor.json").read_text()))
    except (ValueError, KeyError) as exc:
        raise UsageError(f"unreadable model metadata ({exc})", file=str(path)) from None
    model = _build(config, pre, int(config["n_outputs"]))
    model.load_state_dict(_load_weights(path / "state_dict.pt"))
    return LoadedModel(model.eval(), pre, config)
