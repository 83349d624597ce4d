"""The ``pretrained`` family: a local backbone plus a fresh head, fine-tuned.

The backbone is a Hugging Face model directory (``AutoModel``; text models take the
tokenizer's ``input_ids`` and ``attention_mask``, vision models ``pixel_values``) or
resnet18/34/50 with a local weights file. Its layers, counted from the bottom with the
embeddings (the stem) first, can be frozen (``freeze_layers``) and get layer-wise
decayed learning rates (``layer_decay``); the head learns at ``head_lr_mult`` times the
optimizer's lr. The optimizer reads these from :meth:`PretrainedModel.param_groups`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from autodl.errors import UsageError
from autodl.models._hf import VISION_ARCHITECTURES, load_backbone, load_weights_file
from autodl.models._layers import check_shape

if TYPE_CHECKING:
    from transformers import PreTrainedModel
from autodl.models._resnet import ResNet, resnet

__all__ = ["PretrainedModel", "build"]


class _HFBackbone(nn.Module):
    """A transformers ``AutoModel`` as ``(input_ids, mask) or pixels -> (B, width)``."""

    def __init__(self, model: PreTrainedModel, pool: str) -> None:
        super().__init__()
        self.model, self.pool = model, pool
        config = model.config
        sizes = getattr(config, "hidden_sizes", None)
        self.width = int(sizes[-1] if sizes else config.hidden_size)
        self.in_channels = int(getattr(config, "num_channels", 3))

    def takes(self, argument: str) -> bool:
        return argument in inspect.signature(self.model.forward).parameters

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden: torch.Tensor
        if mask is not None:
            hidden = self.model(input_ids=x, attention_mask=mask).last_hidden_state
            if self.pool == "cls":
                return hidden[:, 0]
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        hidden = self.model(pixel_values=x).last_hidden_state
        if hidden.dim() == 4:  # conv nets: (B, C, h, w)
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if self.pool == "cls" else hidden.mean(1)

    def layers(self) -> list[list[nn.Parameter]]:
        """Embeddings, then one list per block of the model's largest ``ModuleList``;
        parameters after the last block (final norm, pooler) join the top block."""
        blocks = _block_list(self.model)
        block_of = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
        layers: list[list[nn.Parameter]] = [[] for _ in range(len(blocks) + 1)]
        seen_block = False
        for p in self.model.parameters():
            if id(p) in block_of:
                layers[block_of[id(p)] + 1].append(p)
                seen_block = True
            else:
                layers[-1 if seen_block else 0].append(p)
        return layers


def _block_list(model: nn.Module) -> nn.ModuleList:
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise UsageError(f"cannot find the layers of {type(model).__name__} (no ModuleList "
                         "of blocks)", key="backbone")
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))


def _head(width: int, n_outputs: int, p: dict[str, Any]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(float(p["dropout"]))]
    for _ in range(int(p["head_depth"])):
        layers += [nn.Linear(width, int(p["head_width"])), nn.GELU(),
                   nn.Dropout(float(p["dropout"]))]
        width = int(p["head_width"])
    return nn.Sequential(*layers, nn.Linear(width, n_outputs))


class PretrainedModel(nn.Module):
    """Backbone features -> head. Text input is ``(B, 2, L)`` (ids and mask stacked), or
    ``input_ids`` and ``attention_mask`` as two arguments (how it is exported)."""

    def __init__(self, backbone: ResNet | _HFBackbone, n_outputs: int, modality: str,
                 p: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.text = modality == "text"
        self.head = _head(backbone.width, n_outputs, p)
        self.head_lr_mult, self.layer_decay = float(p["head_lr_mult"]), float(p["layer_decay"])
        self.frozen = self._freeze(int(p["freeze_layers"]))

    def _freeze(self, count: int) -> list[nn.Module]:
        """Freeze the lowest ``count`` layers; return the modules whose own parameters are
        all frozen (kept in eval mode: batch-norm statistics stay as loaded)."""
        for params in self.backbone.layers()[:count]:
            for p in params:
                p.requires_grad_(False)
        return [m for m in self.backbone.modules()
                if any(True for _ in m.parameters(recurse=False))
                and not any(p.requires_grad for p in m.parameters(recurse=False))]

    def train(self, mode: bool = True) -> PretrainedModel:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        if not self.text:
            if x.shape[1] == 1 and self.backbone.in_channels == 3:
                x = x.expand(-1, 3, -1, -1)
            result: torch.Tensor = self.head(self.backbone(x))
            return result
        ids, mask = (x, attention_mask) if attention_mask is not None else (x[:, 0], x[:, 1])
        result = self.head(self.backbone(ids.long(), mask.long()))
        return result

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: backbone layers top to bottom at ``base_lr * layer_decay**depth``,
        then the head at ``base_lr * head_lr_mult``; biases and norms without weight decay."""
        top_down = self.backbone.layers()[::-1]
        pairs = [(params, base_lr * self.layer_decay**depth)
                 for depth, params in enumerate(top_down)]
        pairs.append((list(self.head.parameters()), base_lr * self.head_lr_mult))
        groups: list[dict[str, Any]] = []
        for params, lr in pairs:
            trainable = [p for p in params if p.requires_grad]
            matrices = [p for p in trainable if p.dim() > 1]
            vectors = [p for p in trainable if p.dim() <= 1]
            groups += [{"params": matrices, "lr": lr}] if matrices else []
            groups += [{"params": vectors, "lr": lr, "weight_decay": 0.0}] if vectors else []
        return groups

    def export_params(self, dest: Path) -> dict[str, Any]:
        """Write what rebuilding needs without the original backbone into ``dest`` (a Hugging
        Face backbone's config; the weights are in the exported state dict) and return the
        parameters that rebuild from it."""
        if not isinstance(self.backbone, _HFBackbone):
            return {"weights": "none"}
        self.backbone.model.config.save_pretrained(str(dest / "backbone"))
        return {"backbone": "backbone", "weights": "none"}


def _vision(name: str, weights: str, modality: str) -> ResNet:
    if modality != "image":
        raise UsageError(f"backbone {name} is a vision architecture; {modality} data needs a "
                         "Hugging Face text model directory", key="backbone")
    if weights == "default":
        raise UsageError(f"{name} has no weights of its own: set weights to a local .pth or "
                         ".safetensors file (or none)", key="weights")
    model = resnet(name)
    if weights != "none" and torch.empty(0).device.type != "meta":
        load_weights_file(model, weights, allow_missing=())
    return model


def _hugging_face(p: dict[str, Any], modality: str) -> _HFBackbone:
    backbone = _HFBackbone(load_backbone(p["backbone"], p["weights"]), p["pool"])
    wanted = "input_ids" if modality == "text" else "pixel_values"
    if not backbone.takes(wanted):
        raise UsageError(f"{p['backbone']!r} ({type(backbone.model).__name__}) does not take "
                         f"{wanted}: it cannot read {modality} data", key="backbone")
    return backbone


def build(
    params: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int, modality: str
) -> nn.Module:
    """A fine-tunable model on a local backbone (see the module docstring)."""
    shape = check_shape("pretrained", input_shape, modality)
    if not params["backbone"]:
        raise UsageError("family 'pretrained' needs backbone: a local model directory, "
                         f"pkg:PACKAGE, or one of {', '.join(VISION_ARCHITECTURES)}",
                         key="backbone")
    if modality == "text" and shape[0] != 2:
        raise UsageError(f"text inputs must have shape (2, tokens); got {shape}", key="data")
    backbone: ResNet | _HFBackbone
    if params["backbone"] in VISION_ARCHITECTURES:
        backbone = _vision(params["backbone"], params["weights"], modality)
    else:
        backbone = _hugging_face(params, modality)
    if modality == "image" and shape[0] not in (1, backbone.in_channels):
        raise UsageError(f"the backbone takes {backbone.in_channels}-channel images; the data "
                         f"has {shape[0]} channels", key="backbone")
    return PretrainedModel(backbone, n_outputs, modality, params)
