"""Tracking: every trial as an MLflow child run of its study's parent run."""

import importlib
from typing import Any

from autodl.tracking._mlflow import (
    DEFAULT_TRACKING_URI,
    MlflowTracker,
    default_tracking_uri,
    mlflow_params,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "MlflowTracker",
    "default_tracking_uri",
    "mlflow_params",
    "run_optuna_dashboard",
    "run_ui",
]

_LAZY = {  # more public names, imported on first use (they pull in heavier modules)
    "run_optuna_dashboard": "autodl.tracking._optuna_dashboard",
    "run_ui": "autodl.tracking._ui",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
