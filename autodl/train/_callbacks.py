"""Trainer callbacks: best-epoch checkpoint, early stopping, non-finite guard, pruning.

The loop stays a plain loop; each concern is a callback with named hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from autodl.train._errors import TrialFailed, TrialPruned


class Fitting(Protocol):
    """What callbacks read and set on a trainer: a ``Trainer``, or a ``FoldTrainer``."""

    metric: str
    model: Any
    best_epoch: int
    best_state: dict[str, Any] | None
    best_predictions: Any
    should_stop: bool
    stop_reason: str

    def val_predictions(self) -> Any: ...

__all__ = [
    "FINISH",
    "BestCheckpoint",
    "Callback",
    "EarlyStopping",
    "EpochReporter",
    "Fitting",
    "NonFiniteGuard",
]


class Callback:
    """Hooks the trainer calls; override what you need."""

    def on_train_start(self, trainer: Fitting) -> None: ...

    def on_epoch_end(self, trainer: Fitting, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Fitting) -> None: ...


class NonFiniteGuard(Callback):
    """A NaN/inf training loss or objective ends the trial as failed (reason ``non_finite``)."""

    def on_epoch_end(self, trainer: Fitting, epoch: int, metrics: dict[str, float]) -> None:
        for key in ("train_loss", f"val_{trainer.metric}"):
            if not math.isfinite(metrics.get(key, 0.0)):
                raise TrialFailed("non_finite", f"{key} is {metrics[key]} at epoch {epoch}")


class BestCheckpoint(Callback):
    """Keeps a CPU copy of the weights from the best epoch (by the objective metric), and
    that epoch's validation predictions (for ensemble selection)."""

    def on_epoch_end(self, trainer: Fitting, epoch: int, metrics: dict[str, float]) -> None:
        if trainer.best_epoch == epoch:
            trainer.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()
            }
            trainer.best_predictions = trainer.val_predictions()


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without a new best (0: never)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, trainer: Fitting, epoch: int, metrics: dict[str, float]) -> None:
        if self.patience and epoch - trainer.best_epoch >= self.patience:
            trainer.should_stop = True
            trainer.stop_reason = "early_stopping"


FINISH = "finish"
"""The search's answer to an epoch report when its time is up: end the trial now, as
complete, with its best epoch so far (``--timeout`` is a wall budget, as in
``study.optimize(timeout=...)`` with a trial that checks the clock)."""


class EpochReporter(Callback):
    """Sends each epoch's metrics out (tracking) and asks whether to prune.

    ``report(epoch, metrics) -> bool | "finish"``: True means the trial should be pruned,
    ``FINISH`` that it should end now with what it has.
    """

    def __init__(self, report: Callable[[int, dict[str, float]], bool | str]) -> None:
        self.report = report

    def on_epoch_end(self, trainer: Fitting, epoch: int, metrics: dict[str, float]) -> None:
        answer = self.report(epoch, metrics)
        if answer == FINISH:
            trainer.should_stop, trainer.stop_reason = True, "timeout"
        elif answer:
            raise TrialPruned(f"pruned at epoch {epoch}")
