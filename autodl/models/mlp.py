"""The ``mlp`` family: a multi-layer perceptron; sequences and images are flattened."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn

from autodl.models._layers import activation, check_shape, feature_norm

__all__ = ["build"]


class _Dense(nn.Module):
    """Linear -> norm -> activation -> dropout, with a skip when asked and widths match."""

    def __init__(self, n_in: int, n_out: int, p: dict[str, Any]) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_in, n_out),
            feature_norm(p["norm"], n_out),
            activation(p["activation"]),
            nn.Dropout(p["dropout"]),
        )
        self.skip = bool(p["residual"]) and n_in == n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.body(x)
        return x + y if self.skip else y


def build(
    params: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int, modality: str
) -> nn.Module:
    """An MLP taking ``(B, *input_shape)`` and returning ``(B, n_outputs)``."""
    shape = check_shape("mlp", input_shape, modality)
    widths = [math.prod(shape)] + [int(params["width"])] * int(params["depth"])
    layers: list[nn.Module] = [nn.Flatten()]
    layers += [_Dense(a, b, params) for a, b in itertools.pairwise(widths)]
    layers.append(nn.Linear(widths[-1], n_outputs))
    return nn.Sequential(*layers)
