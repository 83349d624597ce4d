"""In-memory splits held as tensors on the trial's device, batched by indexing (no DataLoader)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from autodl.data import PreparedData

__all__ = ["MIN_EPOCH_STEPS", "TensorData"]

MIN_EPOCH_STEPS = 8
"""An epoch takes at least this many optimizer steps: a training split smaller than
``MIN_EPOCH_STEPS * batch_size`` samples is repeated within the epoch (each pass shuffled
on its own), so that a trial on 40 samples trains as many steps per epoch as one on a few
hundred, and ``epochs`` is a useful budget at every data size (the pruner's rungs too)."""


@dataclass
class TensorData:
    modality: str
    task: str
    n_outputs: int
    input_shape: tuple[int, ...]
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor | None
    y_test: torch.Tensor | None
    y_mean: torch.Tensor
    y_std: torch.Tensor
    epoch_passes: int = 1  # passes over X_train per epoch (see MIN_EPOCH_STEPS)

    @classmethod
    def from_prepared(cls, data: PreparedData, device: torch.device | str) -> TensorData:
        classify = data.task == "classification"

        def t(a: np.ndarray, target: bool = False) -> torch.Tensor:
            tokens = data.modality == "text"  # token ids and mask stay integers
            dtype = (torch.long if classify else torch.float32) if target else (
                torch.long if tokens else torch.float32)
            return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

        def maybe(a: np.ndarray | None, target: bool = False) -> torch.Tensor | None:
            return None if a is None else t(a, target)

        y_mean = 0.0 if data.y_mean is None else data.y_mean
        y_std = 1.0 if data.y_std is None else data.y_std
        return cls(
            modality=data.modality, task=data.task, n_outputs=int(data.n_outputs),
            input_shape=tuple(data.input_shape),
            X_train=t(data.X_train), y_train=t(data.y_train, True),
            X_val=t(data.X_val), y_val=t(data.y_val, True),
            X_test=maybe(data.X_test), y_test=maybe(data.y_test, True),
            y_mean=torch.as_tensor(y_mean, dtype=torch.float32, device=device),
            y_std=torch.as_tensor(y_std, dtype=torch.float32, device=device),
        )

    def with_min_steps(self, batch_size: int) -> TensorData:
        """The same splits, with as many passes per epoch as make ``MIN_EPOCH_STEPS``
        batches of ``batch_size``."""
        n = max(1, int(self.X_train.shape[0]))
        return replace(self, epoch_passes=max(1, math.ceil(MIN_EPOCH_STEPS * batch_size / n)))

    def split(self, train: torch.Tensor, val: torch.Tensor) -> TensorData:
        """Train on rows ``train`` and validate on rows ``val`` of train + validation (a
        cross-validation fold, or the refit's whole set with ``val`` the validation rows)."""
        X = torch.cat([self.X_train, self.X_val])
        y = torch.cat([self.y_train, self.y_val])
        train, val = train.to(X.device), val.to(X.device)
        return replace(self, X_train=X[train], y_train=y[train], X_val=X[val], y_val=y[val],
                       epoch_passes=1)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """The epoch's sample order: ``epoch_passes`` shuffled passes over X_train."""
        n = self.X_train.shape[0]
        perms = [torch.randperm(n, generator=generator) for _ in range(self.epoch_passes)]
        return (perms[0] if len(perms) == 1 else torch.cat(perms)).to(self.device)

    @property
    def device(self) -> torch.device:
        return self.X_train.device

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled mini-batches; a trailing batch of one sample is dropped (batch norm)."""
        perm = self.epoch_order(generator)
        n = perm.shape[0]
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if idx.numel() < 2 and start > 0:
                break
            yield self.X_train[idx], self.y_train[idx]

    def steps_per_epoch(self, batch_size: int) -> int:
        n = self.X_train.shape[0] * self.epoch_passes
        full, rest = divmod(n, batch_size)
        return full + (1 if rest >= 2 or full == 0 else 0)
