"""Search backends: Optuna (default) and Ray Tune, behind one small base class."""

from autodl.backends._base import (
    Backend,
    BackendResult,
    SearchContext,
    create_backend,
    list_backends,
)

__all__ = ["Backend", "BackendResult", "SearchContext", "create_backend", "list_backends"]
