"""An ensemble of trained models as one module: the weighted average of its members'
class probabilities (returned as log-probabilities, so that ``softmax`` and ``argmax`` of
the output work as for any family's logits) or of their regression outputs.

It is what ensemble selection (``autodl.selection``) hands over; ``create_model`` builds it
from the config ``{"family": "ensemble", "model": {"members": [{"family", "model"}, ...],
"weights": [...], "task": ...}}``, so that every format that exports a family exports it
(one graph holding every member) and ``autodl predict`` loads it like any model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["ENSEMBLE", "Ensemble", "build"]

ENSEMBLE = "ensemble"


class Ensemble(nn.Module):
    """``members`` averaged with ``weights`` (normalised to sum to 1)."""

    weights: torch.Tensor  # buffers
    log_weights: torch.Tensor

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float],
                 classification: bool) -> None:
        super().__init__()
        if not members or len(members) != len(weights) or min(weights) <= 0:
            raise ValueError("an ensemble needs members with positive weights, one each")
        total = float(sum(weights))
        self.members = nn.ModuleList(members)
        self.classification = classification
        normalised = torch.tensor([w / total for w in weights], dtype=torch.float32)
        self.register_buffer("weights", normalised)
        self.register_buffer("log_weights", normalised.log())

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``x``: the inputs (text: token ids, with ``attention_mask``)."""
        outs = [member(x) if attention_mask is None else member(x, attention_mask)
                for member in self.members]
        if self.classification:  # log of the weighted mean probability, computed stably
            logp = torch.stack([torch.log_softmax(o.float(), dim=-1) for o in outs])
            return torch.logsumexp(logp + self.log_weights.view(-1, *[1] * (logp.dim() - 1)),
                                   dim=0)
        stacked = torch.stack([o.float() for o in outs])
        return (stacked * self.weights.view(-1, *[1] * (stacked.dim() - 1))).sum(0)


def build(params: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int,
          modality: str, create_model: Callable[..., nn.Module]) -> Ensemble:
    """``create_model`` builds each member (the registry's, passed in: no import cycle)."""
    members = [create_model(m["family"], m["model"], input_shape, n_outputs, modality)
               for m in params["members"]]
    weights = [float(w) for w in params["weights"]]
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"ensemble weights must be finite, got {weights}")
    return Ensemble(members, weights, params.get("task", "classification") == "classification")
