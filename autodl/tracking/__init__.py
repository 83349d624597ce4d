"""Tracking: every trial as an MLflow child run of its study's parent run."""

from autodl.tracking._mlflow import DEFAULT_TRACKING_URI, MlflowTracker, default_tracking_uri
from autodl.tracking._params import mlflow_params

__all__ = ["DEFAULT_TRACKING_URI", "MlflowTracker", "default_tracking_uri", "mlflow_params"]
