"""In-memory splits held as tensors on the trial's device, batched by indexing (no DataLoader)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from autodl.data import PreparedData

__all__ = ["TensorData"]


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

    @classmethod
    def from_prepared(cls, data: PreparedData, device: torch.device | str) -> TensorData:
        classify = data.task == "classification"

        def t(a: np.ndarray | None, target: bool = False) -> torch.Tensor | None:
            if a is None:
                return None
            tokens = data.modality == "text"  # token ids and mask stay integers
            dtype = (torch.long if classify else torch.float32) if target else (
                torch.long if tokens else torch.float32)
            return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

        y_mean = 0.0 if data.y_mean is None else data.y_mean
        y_std = 1.0 if data.y_std is None else data.y_std
        return cls(
            modality=data.modality, task=data.task, n_outputs=int(data.n_outputs),
            input_shape=tuple(data.input_shape),
            X_train=t(data.X_train), y_train=t(data.y_train, True),
            X_val=t(data.X_val), y_val=t(data.y_val, True),
            X_test=t(data.X_test), y_test=t(data.y_test, True),
            y_mean=torch.as_tensor(y_mean, dtype=torch.float32, device=device),
            y_std=torch.as_tensor(y_std, dtype=torch.float32, device=device),
        )

    @property
    def device(self) -> torch.device:
        return self.X_train.device

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled mini-batches; a trailing batch of one sample is dropped (batch norm)."""
        n = self.X_train.shape[0]
        perm = torch.randperm(n, generator=generator).to(self.device)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if idx.numel() < 2 and start > 0:
                break
            yield self.X_train[idx], self.y_train[idx]

    def steps_per_epoch(self, batch_size: int) -> int:
        n = self.X_train.shape[0]
        full, rest = divmod(n, batch_size)
        return full + (1 if rest >= 2 or full == 0 else 0)
