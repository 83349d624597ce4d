"""Trainer callbacks: best-epoch checkpoint, early stopping, non-finite guard, pruning.

The loop stays a plain loop; each concern is a callback with named hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from autodl.train._errors import TrialFailed, TrialPruned

if TYPE_CHECKING:
    from autodl.train._trainer import Trainer

__all__ = [
    "BestCheckpoint",
    "Callback",
    "EarlyStopping",
    "EpochReporter",
    "NonFiniteGuard",
]


class Callback:
    """Hooks the trainer calls; override what you need."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class NonFiniteGuard(Callback):
    """A NaN/inf training loss or objective ends the trial as failed (reason ``non_finite``)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        for key in ("train_loss", f"val_{trainer.metric}"):
            if not math.isfinite(metrics.get(key, 0.0)):
                raise TrialFailed("non_finite", f"{key} is {metrics[key]} at epoch {epoch}")


class BestCheckpoint(Callback):
    """Keeps a CPU copy of the weights from the best epoch (by the objective metric)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if trainer.best_epoch == epoch:
            trainer.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()
            }


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without a new best (0: never)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.patience and epoch - trainer.best_epoch >= self.patience:
            trainer.should_stop = True
            trainer.stop_reason = "early_stopping"


class EpochReporter(Callback):
    """Sends each epoch's metrics out (tracking) and asks whether to prune.

    ``report(epoch, metrics) -> bool``: True means the trial should be pruned.
    """

    def __init__(self, report: Callable[[int, dict[str, float]], bool]) -> None:
        self.report = report

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.report(epoch, metrics):
            raise TrialPruned(f"pruned at epoch {epoch}")
