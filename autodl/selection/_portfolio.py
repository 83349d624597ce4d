"""A strong first minute: configurations known to do well on each modality, tried before
the sampler takes over (as AutoGluon's presets and auto-sklearn 2.0's portfolios do).

Each entry is a nested config hint (``family``, ``model``, ``optimizer``, ``schedule``,
``training``); a search keeps only the values its space admits
(``SearchSpace.fixed_params``) and samples the rest, so a space that narrows a range
still gets the rest of the hint. Sources:

- sequences: FCN and ResNet of Wang, Yan and Oates, "Time series classification from
  scratch with deep neural networks: a strong baseline" (IJCNN 2017): three conv blocks
  (128 channels, kernels 8/5/3, batch norm, ReLU) then global average pooling, Adam at
  1e-3; the ResNet has three residual blocks of 64-128 channels. Here the blocks share
  one kernel size and width (64: a third of the 128-channel FCN's compute), and long series
  are average-pooled to at most 256 steps first (``downsample: 0``), so that a trial fits
  a CPU budget; the space's sampler may widen them. Their MLP baseline: 3 x 500 units.
- sequences, continued: InceptionTime's network (Ismail Fawaz et al., DMKD 2020) with its
  kernels 40/20/10 and bottleneck, at half its depth and filters (3 modules of 16: a fifth
  of the full network's compute per step, which a 2-core CPU cannot afford in minutes).
- tabular: the tuned defaults of Gorishniy et al., "Revisiting Deep Learning Models for
  Tabular Data" (NeurIPS 2021): MLP, ResNet-MLP (batch norm, skips) and FT-Transformer
  (3 blocks, width 192, 8 heads, 4/3 feed-forward, AdamW 1e-4, weight decay 1e-5).
- images: a small ResNet-style CNN that halves the resolution between stages.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PORTFOLIO", "portfolio"]

_ADAM = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}
_ADAMW = {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-5}
_COSINE = {"name": "cosine", "warmup_epochs": 0}
_CONSTANT = {"name": "constant", "warmup_epochs": 0}

_FCN = {"depth": 3, "channels": 64, "channel_growth": 1.0, "kernel_size": 7, "pool": "none",
        "global_pool": "avg", "norm": "batch", "dropout": 0.0, "head_width": 0,
        "downsample": 0, "activation": "relu"}

PORTFOLIO: dict[str, list[dict[str, Any]]] = {  # per modality, in the order they are tried
    "sequence": [
        {"family": "cnn", "model": {**_FCN, "residual": False}, "optimizer": _ADAM,
         "schedule": _CONSTANT, "training": {"batch_size": 16}},
        {"family": "inception", "model": {"depth": 3, "filters": 16, "kernel_size": 40,
                                          "bottleneck": 16, "residual": True,
                                          "downsample": 0, "dropout": 0.0},
         "optimizer": _ADAM, "schedule": _CONSTANT, "training": {"batch_size": 16}},
        {"family": "mlp", "model": {"depth": 3, "width": 500, "dropout": 0.2,
                                    "activation": "relu"},
         "optimizer": _ADAM, "schedule": _CONSTANT, "training": {"batch_size": 16}},
        {"family": "transformer", "model": {"depth": 2, "width": 64, "heads": 4,
                                            "dropout": 0.1, "pool": "mean", "patch_size": 0},
         "optimizer": _ADAMW, "schedule": _COSINE, "training": {"batch_size": 16}},
        {"family": "rnn", "model": {"cell": "gru", "layers": 1, "hidden": 64,
                                    "bidirectional": True, "pool": "mean", "dropout": 0.0,
                                    "downsample": 0},
         "optimizer": _ADAM, "schedule": _COSINE, "training": {"batch_size": 16}},
        {"family": "cnn", "model": {**_FCN, "residual": True}, "optimizer": _ADAM,
         "schedule": _COSINE, "training": {"batch_size": 16}},
    ],
    "tabular": [
        {"family": "mlp", "model": {"depth": 3, "width": 256, "dropout": 0.1,
                                    "activation": "relu", "norm": "none", "residual": False},
         "optimizer": _ADAMW, "schedule": _CONSTANT, "training": {"batch_size": 64}},
        {"family": "mlp", "model": {"depth": 4, "width": 256, "dropout": 0.2,
                                    "activation": "relu", "norm": "batch", "residual": True},
         "optimizer": _ADAMW, "schedule": _COSINE, "training": {"batch_size": 64}},
        {"family": "transformer", "model": {"depth": 3, "width": 192, "heads": 8,
                                            "ff_mult": 4 / 3, "dropout": 0.2, "pool": "cls",
                                            "activation": "gelu"},
         "optimizer": {"name": "adamw", "lr": 1e-4, "weight_decay": 1e-5},
         "schedule": _CONSTANT, "training": {"batch_size": 64}},
    ],
    "image": [
        {"family": "cnn", "model": {"depth": 3, "channels": 32, "channel_growth": 2.0,
                                    "kernel_size": 3, "pool": "max", "norm": "batch",
                                    "residual": True, "dropout": 0.1, "global_pool": "avg",
                                    "downsample": 1},
         "optimizer": _ADAMW, "schedule": _COSINE, "training": {"batch_size": 64}},
    ],
}


def portfolio(modality: str, families: list[str]) -> list[dict[str, Any]]:
    """The hints for ``families`` on ``modality`` in the order they are tried: each
    family's first (``{"family": f}`` for a family without one: tried once, its other
    parameters sampled), in the portfolio's order (the strongest first: on sequences FCN
    and InceptionTime, which beat the MLP on every UCR set tried; recurrent cells, slow on
    long series and near chance after 30 epochs there, last), then the other hints."""
    hints = [h for h in PORTFOLIO.get(modality, []) if h["family"] in families]
    first: dict[str, dict[str, Any]] = {}
    for hint in hints:
        first.setdefault(hint["family"], hint)
    firsts = [*first.values(), *({"family": f} for f in families if f not in first)]
    return firsts + [h for h in hints if h not in firsts]
