"""The ``cnn`` family: 1-D convolutions over time for sequences, 2-D for images."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autodl.models._layers import (
    activation,
    channel_norm,
    check_shape,
    input_pool,
    make_head,
)

__all__ = ["build"]

_POOLS: dict[tuple[str, int], type[nn.Module]] = {
    ("max", 1): nn.MaxPool1d,
    ("max", 2): nn.MaxPool2d,
    ("avg", 1): nn.AvgPool1d,
    ("avg", 2): nn.AvgPool2d,
}


def _conv(dims: int, c_in: int, c_out: int, kernel: int) -> nn.Module:
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    return cls(c_in, c_out, kernel, padding="same")


class _Block(nn.Module):
    """conv-norm-act, or (``residual``) a ResNet basic block with a 1x1 projection."""

    def __init__(self, dims: int, c_in: int, c_out: int, p: dict[str, Any]) -> None:
        super().__init__()
        k, norm = int(p["kernel_size"]), p["norm"]
        self.residual = bool(p["residual"])
        first = [_conv(dims, c_in, c_out, k), channel_norm(norm, c_out, dims)]
        if not self.residual:
            self.body = nn.Sequential(*first, activation(p["activation"]))
            return
        self.body = nn.Sequential(
            *first, activation(p["activation"]),
            _conv(dims, c_out, c_out, k), channel_norm(norm, c_out, dims),
        )
        self.skip: nn.Module = nn.Identity()
        if c_in != c_out:
            self.skip = nn.Sequential(_conv(dims, c_in, c_out, 1), channel_norm(norm, c_out, dims))
        self.out_act = activation(p["activation"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            result: torch.Tensor = self.body(x)
            return result
        result = self.out_act(self.body(x) + self.skip(x))
        return result


def _pool(kind: str, sizes: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    """A stride-2 pool over every dim of size >= 2 (none when no dim can shrink)."""
    kernel = tuple(2 if s >= 2 else 1 for s in sizes)
    if kind == "none" or max(kernel) == 1:
        return nn.Identity(), sizes
    pool = _POOLS[(kind, len(sizes))](kernel, kernel)
    return pool, tuple(s // k for s, k in zip(sizes, kernel, strict=True))


def _channels(p: dict[str, Any]) -> list[int]:
    c, g = int(p["channels"]), float(p["channel_growth"])
    return [max(1, round(c * g**i)) for i in range(int(p["depth"]))]


def _features(c_in: int, sizes: tuple[int, ...], p: dict[str, Any]) -> nn.Sequential:
    layers: list[nn.Module] = []
    widths = _channels(p)
    for i, c_out in enumerate(widths):
        layers.append(_Block(len(sizes), c_in, c_out, p))
        if i < len(widths) - 1:
            pool, sizes = _pool(p["pool"], sizes)
            layers.append(pool)
        c_in = c_out
    return nn.Sequential(*layers)


AUTO_STEPS = 256  # ``downsample: 0`` pools the input to at most this many steps per axis


class CNN(nn.Module):
    """Input pooling (``downsample``), conv blocks, global pooling, then a (possibly
    hidden-layer) head."""

    def __init__(
        self, shape: tuple[int, ...], n_outputs: int, modality: str, p: dict[str, Any]
    ) -> None:
        super().__init__()
        self.time_major = modality == "sequence"
        c_in, sizes = (shape[1], shape[:1]) if self.time_major else (shape[0], shape[1:])
        self.stem, sizes = input_pool(int(p.get("downsample", 1)), sizes, AUTO_STEPS)
        self.features = _features(c_in, sizes, p)
        self.global_max = p["global_pool"] == "max"
        self.head = make_head(
            _channels(p)[-1], n_outputs, int(p["head_width"]), p["activation"], p["dropout"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_major:
            x = x.transpose(1, 2)
        x = self.features(self.stem(x)).flatten(2)
        x = x.amax(-1) if self.global_max else x.mean(-1)
        result: torch.Tensor = self.head(x)
        return result


def build(
    params: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int, modality: str
) -> nn.Module:
    """A CNN taking ``(B, T, C)`` sequences or ``(B, C, H, W)`` images."""
    return CNN(check_shape("cnn", input_shape, modality), n_outputs, modality, params)
