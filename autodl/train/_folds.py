"""Cross-validated training of one configuration: k fold models trained side by side, an
epoch of each in turn, so that the callbacks (pruning, early stopping, the best epoch) see
the folds' mean metrics every epoch — Optuna's pattern for pruning with cross-validation,
reporting the running mean, with the epoch as the pruner's resource as without folds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from autodl.train._callbacks import Callback
from autodl.train._tensors import TensorData
from autodl.train._trainer import FitResult, Trainer, fit_loop

__all__ = ["FoldTrainer", "fold_splits"]


def fold_splits(data: TensorData, k: int, seed: int) -> list[tuple[TensorData, torch.Tensor]]:
    """k folds over train + validation, each with its validation rows (indices into train
    + validation): stratified for classification (every class in every fold's validation
    part), each sample in exactly one fold's validation part."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = torch.cat([data.y_train, data.y_val]).cpu().numpy()
    n = len(y)
    if data.task == "classification":
        splitter: Any = StratifiedKFold(k, shuffle=True, random_state=seed)
        parts = splitter.split(range(n), y)
    else:
        parts = KFold(k, shuffle=True, random_state=seed).split(range(n))
    return [(data.split(torch.as_tensor(train), torch.as_tensor(val)), torch.as_tensor(val))
            for train, val in parts]


class FoldTrainer:
    """k :class:`Trainer`\\ s (one per fold, no callbacks of their own) behind the
    interface the callbacks use. ``model`` is the first fold's, whose best-epoch weights
    a trial keeps; the epoch's metrics are the folds' means (``epoch_time_s`` their sum);
    its validation predictions are out-of-fold, every sample of train + validation
    predicted by the fold model that did not train on it (``val_rows``: each fold's rows).
    Not resumable: an interrupted cross-validated trial starts again from epoch 1."""

    resumable = False

    def __init__(self, folds: Sequence[Trainer], callbacks: Sequence[Callback],
                 val_rows: Sequence[torch.Tensor]) -> None:
        first = folds[0]
        self.folds, self.val_rows = list(folds), list(val_rows)
        self.model, self.data, self.config = first.model, first.data, first.config
        self.precision, self.epochs = first.precision, first.epochs
        self.metric, self.maximize = first.metric, first.maximize
        self.callbacks = list(callbacks)
        self.best_epoch, self.best_value = 0, float("nan")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_predictions: torch.Tensor | None = None
        self.should_stop, self.stop_reason = False, "epochs"
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0

    def fit(self) -> FitResult:
        return fit_loop(self)

    def run_epoch(self) -> dict[str, float]:
        per_fold = [trainer.run_epoch() for trainer in self.folds]
        for trainer, metrics in zip(self.folds, per_fold, strict=True):
            trainer.history.append(metrics)
        metrics = {key: sum(m[key] for m in per_fold) / len(per_fold) for key in per_fold[0]}
        metrics["epoch_time_s"] = sum(m["epoch_time_s"] for m in per_fold)
        return metrics

    def val_predictions(self) -> torch.Tensor:
        """The last epoch's out-of-fold predictions, in train + validation order."""
        parts = [trainer.val_predictions() for trainer in self.folds]
        oof = torch.empty((sum(p.shape[0] for p in parts), *parts[0].shape[1:]))
        for rows, part in zip(self.val_rows, parts, strict=True):
            oof[rows.cpu()] = part
        return oof
