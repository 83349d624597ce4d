"""Search backends: Optuna (default) and Ray Tune, behind one small base class."""

import importlib
from typing import Any

from autodl.backends._base import (
    Backend,
    BackendResult,
    SearchContext,
    create_backend,
    list_backends,
)

__all__ = [
    "BUDGET",
    "DEFAULT_STORAGE",
    "OUT_DIR",
    "OWNER",
    "PRUNERS",
    "SALVAGED",
    "SAMPLERS",
    "STOPPED",
    "TIMEOUT",
    "Backend",
    "BackendResult",
    "SearchContext",
    "Slots",
    "TrialLoop",
    "create_backend",
    "frozen_study_id",
    "is_void",
    "journal_lock",
    "journal_replay",
    "list_backends",
    "make_pruner",
    "make_sampler",
    "next_study_id",
    "open_storage",
    "owner_id",
    "owner_is_dead",
    "repair_torn_journal",
    "replayed_studies",
    "replayed_trials",
    "storage_fault",
    "storage_of",
    "study_out_dir",
    "worker_pool",
]

_LAZY = {  # more public names, imported on first use (they pull in heavier modules)
    "BUDGET": "autodl.backends._study",
    "DEFAULT_STORAGE": "autodl.backends._storage",
    "OUT_DIR": "autodl.backends._paths",
    "OWNER": "autodl.backends._study",
    "PRUNERS": "autodl.backends._samplers",
    "SALVAGED": "autodl.backends._study",
    "SAMPLERS": "autodl.backends._samplers",
    "STOPPED": "autodl.backends._study",
    "Slots": "autodl.backends._study",
    "TIMEOUT": "autodl.backends._study",
    "TrialLoop": "autodl.backends._optuna",
    "frozen_study_id": "autodl.backends._optuna_private",
    "is_void": "autodl.backends._study",
    "journal_lock": "autodl.backends._optuna_private",
    "journal_replay": "autodl.backends._optuna_private",
    "make_pruner": "autodl.backends._samplers",
    "make_sampler": "autodl.backends._samplers",
    "next_study_id": "autodl.backends._optuna_private",
    "open_storage": "autodl.backends._storage",
    "owner_id": "autodl.backends._study",
    "owner_is_dead": "autodl.backends._study",
    "repair_torn_journal": "autodl.backends._storage",
    "replayed_studies": "autodl.backends._optuna_private",
    "replayed_trials": "autodl.backends._optuna_private",
    "storage_fault": "autodl.backends._storage",
    "storage_of": "autodl.backends._optuna_private",
    "study_out_dir": "autodl.backends._paths",
    "worker_pool": "autodl.backends._optuna",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
