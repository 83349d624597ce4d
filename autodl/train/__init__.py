"""Training one trial: optimizers, schedules, the epoch loop and its callbacks.

Attributes are imported lazily so that the torch-free spec tables in
``autodl.train._specs`` can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lazy attributes, as type checkers see them (X as X: exported)
    from autodl.train._callbacks import FINISH as FINISH
    from autodl.train._callbacks import BestCheckpoint as BestCheckpoint
    from autodl.train._callbacks import Callback as Callback
    from autodl.train._callbacks import EarlyStopping as EarlyStopping
    from autodl.train._callbacks import EpochReporter as EpochReporter
    from autodl.train._callbacks import NonFiniteGuard as NonFiniteGuard
    from autodl.train._checkpoint import CHECKPOINT as CHECKPOINT
    from autodl.train._checkpoint import SIDECAR as SIDECAR
    from autodl.train._checkpoint import ResumeCheckpoint as ResumeCheckpoint
    from autodl.train._checkpoint import load_checkpoint as load_checkpoint
    from autodl.train._checkpoint import remove_checkpoint as remove_checkpoint
    from autodl.train._checkpoint import save_checkpoint as save_checkpoint
    from autodl.train._errors import TrialFailed as TrialFailed
    from autodl.train._errors import TrialPruned as TrialPruned
    from autodl.train._errors import TrialStopped as TrialStopped
    from autodl.train._folds import FoldTrainer as FoldTrainer
    from autodl.train._folds import fold_splits as fold_splits
    from autodl.train._metrics import classification_metrics as classification_metrics
    from autodl.train._metrics import regression_metrics as regression_metrics
    from autodl.train._optim import build_optimizer as build_optimizer
    from autodl.train._optim import build_schedule as build_schedule
    from autodl.train._specs import OPTIMIZER_COMMON as OPTIMIZER_COMMON
    from autodl.train._specs import OPTIMIZER_OPTIONS as OPTIMIZER_OPTIONS
    from autodl.train._specs import SCHEDULE_COMMON as SCHEDULE_COMMON
    from autodl.train._specs import SCHEDULE_OPTIONS as SCHEDULE_OPTIONS
    from autodl.train._specs import TRAINING as TRAINING
    from autodl.train._specs import NotAnOption as NotAnOption
    from autodl.train._specs import option_defaults as option_defaults
    from autodl.train._tensors import MIN_EPOCH_STEPS as MIN_EPOCH_STEPS
    from autodl.train._tensors import TensorData as TensorData
    from autodl.train._trainer import FitResult as FitResult
    from autodl.train._trainer import Trainer as Trainer
    from autodl.train._trainer import evaluate as evaluate

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
