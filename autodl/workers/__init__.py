"""Worker processes: one per device slot, reused across trials (torch is imported once each)."""

from autodl.workers._devices import plan_slots, workers_that_fit
from autodl.workers._exporter import ExportWorker
from autodl.workers._pool import WorkerPool, WorkerSlot
from autodl.workers._worker import export_trial, set_backends, test_metrics

__all__ = ["ExportWorker", "WorkerPool", "WorkerSlot", "export_trial", "plan_slots",
           "set_backends", "test_metrics", "workers_that_fit"]
