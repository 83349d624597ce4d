"""The ``inception`` family: InceptionTime's network for time series (Ismail Fawaz et al.,
"InceptionTime: Finding AlexNet for time series classification", DMKD 2020).

Each Inception module reduces the channels with a 1x1 bottleneck, runs three convolutions
with kernels ``k``, ``k/2`` and ``k/4`` (made odd: 39, 19, 9 for the published ``k=40``)
beside a max-pool + 1x1 branch, concatenates the four (``4 * filters`` channels), then batch
norm and ReLU. A residual shortcut (1x1 convolution + batch norm) joins every third module;
global average pooling and a linear layer end the net. The paper's network: 6 modules of 32
filters, and the ensemble of 5 such networks (``--ensemble`` builds ensembles of trials).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autodl.models._layers import check_shape, input_pool, make_head

__all__ = ["build", "kernel_sizes"]

AUTO_STEPS = 256  # ``downsample: 0`` pools the input to at most this many steps


def kernel_sizes(k: int) -> list[int]:
    """``k``, ``k/2``, ``k/4``, each made odd (centred padding), at least 1, no repeats."""
    sizes = [max(1, k // d - (1 - k // d % 2)) for d in (1, 2, 4)]
    return list(dict.fromkeys(sizes))


class _Module(nn.Module):
    def __init__(self, c_in: int, filters: int, kernels: list[int], bottleneck: int) -> None:
        super().__init__()
        use = bottleneck > 0 and c_in > 1
        self.bottleneck = nn.Conv1d(c_in, bottleneck, 1, bias=False) if use else nn.Identity()
        c = bottleneck if use else c_in
        self.convs = nn.ModuleList(nn.Conv1d(c, filters, k, padding=k // 2, bias=False)
                                   for k in kernels)
        self.pool_branch = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1),
                                         nn.Conv1d(c_in, filters, 1, bias=False))
        self.out = nn.Sequential(nn.BatchNorm1d(filters * (len(kernels) + 1)), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        branches = [conv(z) for conv in self.convs] + [self.pool_branch(x)]
        result: torch.Tensor = self.out(torch.cat(branches, 1))
        return result


class InceptionNet(nn.Module):
    def __init__(self, shape: tuple[int, ...], n_outputs: int, p: dict[str, Any]) -> None:
        super().__init__()
        steps, c_in = shape
        self.stem, _ = input_pool(int(p["downsample"]), (steps,), AUTO_STEPS)
        kernels = kernel_sizes(int(p["kernel_size"]))
        width = int(p["filters"]) * (len(kernels) + 1)
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleDict()
        residual_in, c = c_in, c_in
        for i in range(int(p["depth"])):
            self.blocks.append(_Module(c, int(p["filters"]), kernels, int(p["bottleneck"])))
            c = width
            if p["residual"] and i % 3 == 2:
                self.shortcuts[str(i)] = nn.Sequential(
                    nn.Conv1d(residual_in, width, 1, bias=False), nn.BatchNorm1d(width))
                residual_in = width
        self.act = nn.ReLU()
        self.head = make_head(width, n_outputs, 0, "relu", float(p["dropout"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x.transpose(1, 2))
        residual = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.shortcuts:
                x = self.act(x + self.shortcuts[str(i)](residual))
                residual = x
        result: torch.Tensor = self.head(x.mean(-1))
        return result


def build(params: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int,
          modality: str) -> nn.Module:
    """InceptionTime's network for ``(B, T, C)`` sequences."""
    return InceptionNet(check_shape("inception", input_shape, modality), n_outputs, params)
