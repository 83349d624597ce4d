"""The ``rnn`` family: an LSTM or GRU over time steps (image rows are the time steps)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autodl.models._layers import check_shape, input_pool

__all__ = ["build"]

AUTO_STEPS = 64  # ``downsample: 0``: a recurrent cell runs step by step, so fewer steps


class RNN(nn.Module):
    """A recurrent encoder, pooling over time (last state, mean or max), then a linear head."""

    def __init__(
        self, shape: tuple[int, ...], n_outputs: int, modality: str, p: dict[str, Any]
    ) -> None:
        super().__init__()
        self.image = modality == "image"
        n_in = shape[0] * shape[2] if self.image else shape[1]
        factor = 1 if self.image else int(p.get("downsample", 1))
        self.stem, _ = input_pool(factor, shape[:1], AUTO_STEPS)
        layers, hidden = int(p["layers"]), int(p["hidden"])
        cls = nn.LSTM if p["cell"] == "lstm" else nn.GRU
        self.rnn = cls(
            n_in, hidden, layers, batch_first=True,
            dropout=float(p["dropout"]) if layers > 1 else 0.0,
            bidirectional=bool(p["bidirectional"]),
        )
        self.dirs = 2 if p["bidirectional"] else 1
        self.pool = p["pool"]
        self.head = nn.Sequential(
            nn.Dropout(p["dropout"]), nn.Linear(self.dirs * hidden, n_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image:
            x = x.permute(0, 2, 1, 3).flatten(2)  # (B, C, H, W) -> (B, H, C*W)
        else:
            x = self.stem(x.transpose(1, 2)).transpose(1, 2)  # pool over time
        out, state = self.rnn(x)
        if self.pool == "mean":
            z = out.mean(1)
        elif self.pool == "max":
            z = out.amax(1)
        else:  # h_n of the top layer: forward at t=T-1, backward at t=0
            h_n = state[0] if isinstance(state, tuple) else state
            z = h_n[-self.dirs :].transpose(0, 1).flatten(1)
        result: torch.Tensor = self.head(z)
        return result


def build(
    params: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int, modality: str
) -> nn.Module:
    """An RNN taking ``(B, T, C)`` sequences or ``(B, C, H, W)`` images."""
    return RNN(check_shape("rnn", input_shape, modality), n_outputs, modality, params)
