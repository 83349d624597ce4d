"""The exported model directory: config + preprocessing statistics + the chosen formats.

Loadable without autodl (``model.onnx`` in ONNX Runtime, ``model.pt2`` with
``torch.export.load``, ``model.torchscript.pt`` with ``torch.jit.load``, ``mlflow/`` with
``mlflow.pyfunc.load_model``) and with it (``load_model_dir``, ``autodl predict``). Inputs
of every format are *preprocessed* float32 arrays: ``preprocessor.json`` holds the
train-split statistics (``x - x_mean) / x_std`` in the canonical shape).

Text models take the tokenizer's ``input_ids`` and ``attention_mask`` (ONNX, TorchScript,
``torch.export``; the MLflow model takes them stacked, ``(n, 2, tokens)``); the tokenizer
is saved in ``tokenizer/`` and ``autodl predict`` tokenises raw text with it. A fine-tuned
Hugging Face backbone's config is saved in ``backbone/`` so the model rebuilds without the
original backbone directory (the weights are all in ``state_dict.pt``).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autodl.data import PreparedData, Preprocessor
from autodl.errors import UsageError
from autodl.export._formats import FORMATS, WRITERS, ExampleInputs, ExportJob, quiet_exporters
from autodl.models import create_model

__all__ = ["ExportResult", "LoadedModel", "export_model", "export_study", "load_model_dir",
           "text_column"]


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


def _load_weights(path: Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """``weights_only=True``: a file holding pickled objects is refused, never run, unless
    the user says they trust it (``--trust-pickle``: unpickling can run arbitrary code)."""
    if not path.is_file():
        raise UsageError(f"no weights file at {path}", file=str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if trust_pickle else ("; it holds pickled objects, which can run code when "
                                        "loaded: pass --trust-pickle only if you trust it")
        raise UsageError(f"refused to load: not a plain tensor state_dict ({first}){hint}",
                         file=str(path)) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise UsageError("not a state_dict of tensors", file=str(path))
    return state


def _build(config: dict[str, Any], pre: Preprocessor, n_outputs: int) -> nn.Module:
    return create_model(config["family"], config["model"], tuple(pre.input_shape), n_outputs,
                        pre.modality)


def _n_outputs(pre: Preprocessor) -> int:
    if pre.task == "classification":
        return len(pre.classes or [])
    return int(np.asarray(pre.y_mean).size) if pre.y_mean is not None else 1


_EXAMPLE_TEXTS = ["", "an example", "a longer example sentence, with more words in it",
                  "one more " * 64]


def _example(pre: Preprocessor) -> ExampleInputs:
    """A seeded batch of 4: standard normal inputs, or texts of several lengths tokenised
    with the model's tokenizer (ids and mask)."""
    if pre.modality != "text":
        gen = torch.Generator().manual_seed(0)
        return ExampleInputs((torch.randn((4, *pre.input_shape), generator=gen),))
    tokens = torch.as_tensor(pre.transform(_EXAMPLE_TEXTS, "export"))
    return ExampleInputs((tokens[:, 0], tokens[:, 1]), ("input_ids", "attention_mask"))


def _save_assets(model: nn.Module, config: dict[str, Any], pre: Preprocessor,
                 dest: Path) -> tuple[dict[str, Any], Preprocessor]:
    """The tokenizer into ``tokenizer/`` and a backbone's config (``export_params``) into
    ``dest``; the config and preprocessor as the model directory records them."""
    export_params = getattr(model, "export_params", None)  # a pretrained model's
    if export_params is not None:
        config = {**config, "model": {**config["model"], **export_params(dest)}}
    if pre.modality == "text" and pre.text:
        from autodl.models import load_tokenizer

        load_tokenizer(pre.text["tokenizer"]).save_pretrained(str(dest / "tokenizer"))
        pre = replace(pre, text={**pre.text, "tokenizer": "tokenizer"})
    return config, pre


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: ``files`` {format: file in the model directory} and
    ``failed`` {format: reason}; one format failing never stops the others."""

    dest: Path
    files: dict[str, str]
    failed: dict[str, str]

    def summary(self) -> dict[str, Any]:
        """The ``model`` fields of summary.json: ``formats`` holds every format asked for,
        ``written`` (with its file) or ``failed`` (with the reason)."""
        formats: dict[str, dict[str, str]] = {
            fmt: {"status": "written", "file": name} for fmt, name in self.files.items()}
        formats.update({fmt: {"status": "failed", "reason": why}
                        for fmt, why in self.failed.items()})
        return {"dir": str(self.dest), "files": dict(self.files),
                "failed": dict(self.failed), "formats": formats}


def _write_formats(job: ExportJob, formats: Sequence[str]) -> tuple[dict[str, str],
                                                                    dict[str, str]]:
    files: dict[str, str] = {}
    failed: dict[str, str] = {}
    with quiet_exporters():
        for fmt in formats:
            _write_one(job, fmt, files, failed)
    return files, failed


def _write_one(job: ExportJob, fmt: str, files: dict[str, str], failed: dict[str, str]
               ) -> None:
    try:
        files[fmt] = WRITERS[fmt](job)
    except Exception as exc:  # recorded and shown; the other formats go on
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        failed[fmt] = f"{type(exc).__name__}: {first}"[:500]


def export_model(config: dict[str, Any], weights: Path, preprocessor: Preprocessor,
                 dest: Path, formats: Sequence[str], trust_pickle: bool = False
                 ) -> ExportResult:
    """Write ``formats`` of the trained model into ``dest``, each on its own (a failed
    format is named in the result). The files go to a staging folder beside ``dest`` that
    replaces it at the end, so ``dest`` is the previous complete export or the new one."""
    formats = _check_formats(formats)
    n_outputs = _n_outputs(preprocessor)
    model = _build(config, preprocessor, n_outputs)
    model.load_state_dict(_load_weights(weights, trust_pickle))
    model.eval()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        job = ExportJob(model, _example(preprocessor), staging)
        files, failed = _write_formats(job, formats)
        _write_metadata(model, config, preprocessor, staging, n_outputs, files)
        _replace_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(dest, files, failed)


def _write_metadata(model: nn.Module, config: dict[str, Any], preprocessor: Preprocessor,
                    dest: Path, n_outputs: int, files: dict[str, str]) -> None:
    from autodl.version import __version__

    config, preprocessor = _save_assets(model, config, preprocessor, dest)
    (dest / "preprocessor.json").write_text(json.dumps(preprocessor.to_dict(), indent=1))
    meta = {**config, "input_shape": list(preprocessor.input_shape), "n_outputs": n_outputs,
            "modality": preprocessor.modality, "task": preprocessor.task,
            "classes": preprocessor.classes, "autodl_version": __version__, "files": files}
    (dest / "config.json").write_text(json.dumps(meta, indent=2))


def _replace_dir(new: Path, dest: Path) -> None:
    """``new`` takes ``dest``'s place: two renames, the old export removed after. A
    ``dest`` that holds other things than an export (``--out .``) is never moved: the
    files are moved into it one by one."""
    if dest.is_dir() and any(dest.iterdir()) and not (dest / "config.json").is_file():
        for item in new.iterdir():
            target = dest / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
        return
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.exists():
        dest.replace(old)
    new.replace(dest)
    shutil.rmtree(old, ignore_errors=True)


def export_study(study_out_dir: Path, trial_number: int, dest: Path,
                 formats: Sequence[str], trust_pickle: bool = False,
                 weights_dir: Path | None = None) -> ExportResult:
    """Export trial ``trial_number`` of a finished search from its saved best weights, or
    from ``weights_dir`` (the refit's ``config.json`` and ``weights.pt``)."""
    trial_dir = weights_dir or Path(study_out_dir) / "trials" / str(trial_number)
    if not (trial_dir / "config.json").is_file():
        raise UsageError(f"trial {trial_number} has no saved weights in {trial_dir} (only "
                         "completed trials keep them)", file=str(trial_dir))
    config = json.loads((trial_dir / "config.json").read_text())
    pre = PreparedData.load(Path(study_out_dir) / "data.npz").preprocessor
    return export_model(config, trial_dir / "weights.pt", pre, Path(dest), formats,
                        trust_pickle)


def load_model_dir(path: Path, trust_pickle: bool = False) -> LoadedModel:
    """Rebuild the model from ``config.json`` + ``state_dict.pt`` (weights only)."""
    path = Path(path)
    for name in ("config.json", "preprocessor.json", "state_dict.pt"):
        if not (path / name).is_file():
            raise UsageError(f"not an autodl model directory: missing {name}", file=str(path))
    try:
        config = json.loads((path / "config.json").read_text())
        pre = Preprocessor.from_dict(json.loads((path / "preprocessor.json").read_text()),
                                     str(path / "preprocessor.json"))
    except (ValueError, KeyError) as exc:
        raise UsageError(f"unreadable model metadata ({exc})", file=str(path)) from None
    model = _build(_in_model_dir(config, path), pre, int(config["n_outputs"]))
    model.load_state_dict(_load_weights(path / "state_dict.pt", trust_pickle))
    return LoadedModel(model.eval(), pre, config)


def _in_model_dir(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """An exported backbone (``backbone/`` beside config.json) is read from the model dir."""
    params = config.get("model", {})
    if params.get("backbone") == "backbone" and (path / "backbone").is_dir():
        return {**config, "model": {**params, "backbone": str(path / "backbone")}}
    return config


def text_column(model_dir: Path) -> str | None:
    """The text column a text model reads from a table (None for other models, or when
    ``model_dir`` has no readable preprocessor.json)."""
    try:
        stats = json.loads((Path(model_dir) / "preprocessor.json").read_text())
    except (OSError, ValueError):
        return None
    names = stats.get("feature_names") or [None]
    return names[0] if stats.get("modality") == "text" else None
