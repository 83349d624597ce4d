"""Training one trial: optimizers, schedules, the epoch loop and its callbacks.

Attributes are imported lazily so that the torch-free spec tables in
``autodl.train._specs`` can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CHECKPOINT": "_checkpoint",
    "NotAnOption": "_specs",
    "OPTIMIZER_COMMON": "_specs",
    "OPTIMIZER_OPTIONS": "_specs",
    "SCHEDULE_COMMON": "_specs",
    "SCHEDULE_OPTIONS": "_specs",
    "SIDECAR": "_checkpoint",
    "TRAINING": "_specs",
    "build_optimizer": "_optim",
    "build_schedule": "_optim",
    "classification_metrics": "_metrics",
    "option_defaults": "_specs",
    "regression_metrics": "_metrics",
    "BestCheckpoint": "_callbacks",
    "Callback": "_callbacks",
    "EarlyStopping": "_callbacks",
    "EpochReporter": "_callbacks",
    "FINISH": "_callbacks",
    "NonFiniteGuard": "_callbacks",
    "ResumeCheckpoint": "_checkpoint",
    "load_checkpoint": "_checkpoint",
    "remove_checkpoint": "_checkpoint",
    "save_checkpoint": "_checkpoint",
    "FoldTrainer": "_folds",
    "fold_splits": "_folds",
    "TrialFailed": "_errors",
    "TrialPruned": "_errors",
    "TrialStopped": "_errors",
    "MIN_EPOCH_STEPS": "_tensors",
    "TensorData": "_tensors",
    "FitResult": "_trainer",
    "Trainer": "_trainer",
    "evaluate": "_trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autodl.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autodl.train.{_EXPORTS[name]}"), name)
