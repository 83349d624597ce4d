"""Precise batch norm: the running statistics recomputed for the current weights before
every validation.

BatchNorm's running mean and variance are an exponential average (momentum 0.1) over the
last training batches, each taken with weights that have since moved. On small data they
lag the weights badly: on UCR OSULeaf a refit InceptionTime scored 0.587 test accuracy
with its running statistics and 0.913 with statistics recomputed for its final weights;
a refit FCN on GunPoint went from 0.50 (chance) to 1.00. Every validation (so every value
the pruner, the ranking and the ensemble see) and every saved model, refits included,
therefore uses statistics computed over the training rows with the weights being
evaluated (Wu and Johnson, "Rethinking 'Batch' in BatchNorm", 2021, section 3: "precise
BN"). Dropout is off during that pass, so the statistics are those inference sees (Li et
al., "Understanding the Disharmony between Dropout and Batch Normalization", CVPR 2019).

``torch.optim.swa_utils.update_bn`` is the library's version of the pass; it keeps
dropout on and takes a loader, so this module does the same reset-and-average with
dropout off and batches by indexing. The batched MLP (``autodl.train.batched``) mirrors
it with the same rows and chunks, so batched and sequential trials stay equal.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

__all__ = ["STAT_CHUNK", "STAT_ROWS", "has_batch_norm", "precise_batch_norm", "stat_chunks"]

STAT_ROWS = 4096  # training rows the statistics are computed on (the first ones: shuffled)
STAT_CHUNK = 256  # rows per forward pass; the statistics average the chunks' (as update_bn)

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
             nn.FeatureAlphaDropout)


def stat_chunks(X: torch.Tensor) -> list[torch.Tensor]:
    """The chunks of ``X[:STAT_ROWS]`` the statistics average; a trailing chunk of one row
    is left out (BatchNorm cannot take the statistics of one row)."""
    rows = X[:STAT_ROWS]
    chunks = [rows[i : i + STAT_CHUNK] for i in range(0, rows.shape[0], STAT_CHUNK)]
    return [c for c in chunks if c.shape[0] > 1]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, _BATCH_NORMS) for m in model.modules())


@torch.no_grad()
def precise_batch_norm(model: nn.Module, X: torch.Tensor,
                       autocast: AbstractContextManager[None] | None = None) -> None:
    """Recompute every BatchNorm's running statistics over ``X[:STAT_ROWS]`` with the current
    weights, dropout off; the model's train/eval mode is kept. No-op without BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, _BATCH_NORMS)]
    chunks = stat_chunks(X)
    if not norms or not chunks:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.train()
    for m in model.modules():
        if isinstance(m, _DROPOUTS):
            m.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the chunks
    try:
        with autocast or nullcontext():
            for chunk in chunks:
                model(chunk)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
