"""Worker processes: one per device slot, reused across trials (torch is imported once each)."""

from typing import TYPE_CHECKING

from autodl._lazy import lazy_attributes
from autodl.workers._devices import plan_slots, workers_that_fit
from autodl.workers._exporter import ExportWorker
from autodl.workers._messages import (
    AssembleEnsemble,
    ChooseEnsemble,
    Died,
    Done,
    EnsembleAssembled,
    EnsembleChosen,
    EpochAnswer,
    EpochReport,
    Exported,
    ExportModel,
    FromWorker,
    Outcome,
    Refit,
    Refitted,
    Reply,
    RunGroup,
    RunTrial,
    Stop,
    Tested,
    TestModel,
    ToWorker,
    TrialSpec,
)
from autodl.workers._pool import WorkerPool, WorkerSlot
from autodl.workers._worker import export_trial, set_backends, test_metrics

__all__ = [
    "AssembleEnsemble",
    "ChooseEnsemble",
    "Died",
    "Done",
    "EnsembleAssembled",
    "EnsembleChosen",
    "EpochAnswer",
    "EpochReport",
    "ExportModel",
    "ExportWorker",
    "Exported",
    "FromWorker",
    "Outcome",
    "Refit",
    "Refitted",
    "Reply",
    "RunGroup",
    "RunTrial",
    "Stop",
    "TestModel",
    "Tested",
    "ToWorker",
    "TrialSpec",
    "WorkerPool",
    "WorkerSlot",
    "cpu_count",
    "export_trial",
    "plan_slots",
    "run_trial",
    "set_backends",
    "test_metrics",
    "workers_that_fit",
]

if TYPE_CHECKING:  # the lazy attributes, as type checkers see them (X as X: exported)
    from autodl.workers._devices import cpu_count as cpu_count
    from autodl.workers._trial import run_trial as run_trial

_LAZY = {  # more public names, imported on first use (they pull in heavier modules)
    "cpu_count": "autodl.workers._devices",
    "run_trial": "autodl.workers._trial",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
