"""The epoch loop: train on in-memory tensors, validate every epoch, call the hooks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from autodl.train._augment import augment_batch
from autodl.train._callbacks import Callback
from autodl.train._metrics import classification_metrics, regression_metrics, to_predictions
from autodl.train._norm_stats import has_batch_norm, precise_batch_norm
from autodl.train._optim import build_optimizer, build_schedule
from autodl.train._precision import Precision
from autodl.train._tensors import TensorData

__all__ = ["SMOOTHING_EPOCHS", "FitResult", "Trainer", "evaluate", "fit_loop", "outputs",
           "smoothed", "split_metrics", "update_best"]

SMOOTHING_EPOCHS = 3  # the best epoch ends the best window of this many epochs


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    best_metrics: dict[str, float]
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = "epochs"


class Trainer:
    """Trains ``model`` on ``data`` for ``epochs`` with the resolved trial ``config``.

    ``metric`` is the objective's name (``accuracy``, ``rmse``...); epochs are numbered
    from 1. Callbacks see every epoch's metrics and may stop or end the trial.
    """

    def __init__(
        self, model: nn.Module, data: TensorData, config: Mapping[str, Any], *, epochs: int,
        metric: str, maximize: bool, callbacks: Sequence[Callback] = (), seed: int = 0,
        amp: bool = False,
    ) -> None:
        self.training = config.get("training", {})
        self.batch_size = int(self.training.get("batch_size", 64))
        data = data.with_min_steps(self.batch_size)
        self.model, self.data, self.config = model, data, config
        self.precision = Precision(data.device, amp)
        self.epochs, self.metric, self.maximize = epochs, metric, maximize
        self.callbacks = list(callbacks)
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = build_optimizer(model, config["optimizer"])  # model.param_groups
        self.scheduler = build_schedule(
            self.optimizer, config["schedule"], epochs, data.steps_per_epoch(self.batch_size),
            maximize=maximize,
        )
        self.loss_fn = _loss_fn(data.task, float(self.training.get("label_smoothing", 0.0)))
        self.batch_norm = has_batch_norm(model)
        self.best_epoch, self.best_value = 0, float("nan")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_predictions: torch.Tensor | None = None  # on the validation rows
        self.val_out: torch.Tensor | None = None  # the last epoch's validation outputs
        self.should_stop, self.stop_reason = False, "epochs"
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0  # > 0 after ``restore``: epochs already trained

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to continue after ``epoch`` (plain tensors and numbers)."""
        return {
            "epoch": epoch, "epochs": self.epochs, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(), "history": self.history[:epoch],
            "best_epoch": self.best_epoch, "best_value": self.best_value,
            "best_state": self.best_state, "best_predictions": self.best_predictions,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint written by ``checkpoint_state`` for the same config."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu())
        self.history = [dict(h) for h in state["history"]]
        self.best_epoch, self.best_value = int(state["best_epoch"]), float(state["best_value"])
        self.best_state = state["best_state"]
        self.best_predictions = state.get("best_predictions")
        self.start_epoch = int(state["epoch"])

    resumable = True  # checkpoint_state / restore continue an interrupted trial

    def fit(self) -> FitResult:
        return fit_loop(self)

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch and validate: the epoch's metrics."""
        return self._run_epoch()

    def _run_epoch(self) -> dict[str, float]:
        start = time.perf_counter()
        train_loss = self._train_epoch()
        if self.batch_norm:  # statistics for these weights (autodl.train._norm_stats)
            precise_batch_norm(self.model, self.data.X_train, self.precision.autocast())
        self.val_out = outputs(self.model, self.data.X_val)
        val = split_metrics(self.val_out, self.data, self.data.y_val)
        metrics = {"train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}}
        self.scheduler.epoch_end(metrics[f"val_{self.metric}"])  # ReduceLROnPlateau
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        metrics["epoch_time_s"] = time.perf_counter() - start
        return metrics

    def val_predictions(self) -> torch.Tensor:
        """The last epoch's predictions on the validation rows (``to_predictions``)."""
        assert self.val_out is not None
        d = self.data
        return to_predictions(self.val_out, d.task, d.y_mean, d.y_std)

    def _train_epoch(self) -> float:
        model, data = self.model.train(), self.data
        clip = float(self.training.get("grad_clip", 0.0))
        augment = bool(self.training.get("augment", False))
        total = torch.zeros((), device=data.device)
        steps = 0
        for xb, yb in data.train_batches(self.batch_size, self.generator):
            if augment:
                xb = augment_batch(xb, data.modality, self.generator,
                                   hflip=bool(self.training.get("hflip", False)))
            with self.precision.autocast():
                loss = self.batch_loss(xb, yb)
            self.optimizer.zero_grad(set_to_none=True)
            self.precision.step(loss, self.optimizer, partial(_clip, model, clip))
            self.scheduler.step()
            total += loss.detach()
            steps += 1
        return float(total.item()) / max(steps, 1)

    def batch_loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (regression targets are standardised)."""
        out = self.model(xb)
        if self.data.task == "classification":
            loss: torch.Tensor = self.loss_fn(out, yb)
            return loss
        target = ((yb - self.data.y_mean) / self.data.y_std).reshape(yb.shape[0], -1)
        loss = self.loss_fn(out.reshape(target.shape), target)
        return loss

def fit_loop(trainer: Any) -> FitResult:
    """The epoch loop any trainer runs (one model, or k cross-validation folds): epochs
    ``start_epoch + 1 .. epochs``, the best epoch by the objective, the callbacks' hooks."""
    for cb in trainer.callbacks:
        cb.on_train_start(trainer)
    epoch = trainer.start_epoch
    for epoch in range(trainer.start_epoch + 1, trainer.epochs + 1):
        metrics = trainer.run_epoch()
        trainer.history.append(metrics)
        update_best(trainer, epoch, metrics)
        for cb in trainer.callbacks:
            cb.on_epoch_end(trainer, epoch, metrics)
        if trainer.should_stop:
            break
    for cb in trainer.callbacks:
        cb.on_train_end(trainer)
    best = trainer.history[trainer.best_epoch - 1] if trainer.best_epoch else {}
    return FitResult(trainer.best_epoch, trainer.best_value, dict(best), epoch,
                     trainer.history, trainer.stop_reason)


def smoothed(history: Sequence[Mapping[str, float]], metric: str) -> float:
    """The objective over the last ``SMOOTHING_EPOCHS`` epochs of ``history`` (fewer at the
    start), averaged; NaN when any of them is.

    On small data one epoch's validation score is noisy (36 ArrowHead series, 5 folds: an
    MLP's cross-validated accuracy went 0.92, 0.81, 0.81, 0.92, 0.78, 0.73 on consecutive
    epochs), and the maximum over 30 such epochs rewards the noisiest trial rather than the
    best one, and sends the refit to a lucky epoch. A trial's value is therefore its best
    window's mean (``best_value``; the best epoch's own metrics, which its saved weights
    reproduce, stay as they were), and its best epoch the window's last."""
    values = [h[f"val_{metric}"] for h in history[-SMOOTHING_EPOCHS:]]
    return sum(values) / len(values) if values else float("nan")


def update_best(trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
    """The epoch becomes the best when its window's objective (``smoothed``) beats the best
    so far (NaN never). ``trainer.history`` already ends with ``metrics``."""
    value = smoothed(trainer.history, trainer.metric)
    if value != value:
        return
    better = value > trainer.best_value if trainer.maximize else value < trainer.best_value
    if trainer.best_epoch == 0 or better:
        trainer.best_epoch, trainer.best_value = epoch, value


def _clip(model: nn.Module, max_norm: float) -> None:
    if max_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def _loss_fn(task: str, label_smoothing: float) -> nn.Module:
    if task == "classification":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return nn.MSELoss()


@torch.inference_mode()
def outputs(model: nn.Module, X: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """``model``'s raw outputs on ``X`` (eval mode, batched)."""
    model.eval()
    return torch.cat([model(X[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)])


def evaluate(
    model: nn.Module, data: TensorData, X: torch.Tensor, y: torch.Tensor, batch_size: int = 2048
) -> dict[str, float]:
    """Metrics of ``model`` on one split (eval mode, batched)."""
    return split_metrics(outputs(model, X, batch_size), data, y)


def split_metrics(out: torch.Tensor, data: TensorData, y: torch.Tensor) -> dict[str, float]:
    """The metrics of raw outputs ``out`` against targets ``y``."""
    if data.task == "classification":
        return classification_metrics(out, y, data.n_outputs)
    return regression_metrics(out, y, data.y_mean, data.y_std)
