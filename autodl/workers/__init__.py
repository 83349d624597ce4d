"""Worker processes: one per device slot, reused across trials (torch is imported once each)."""

from autodl.workers._devices import plan_slots, workers_that_fit
from autodl.workers._exporter import ExportWorker
from autodl.workers._pool import WorkerPool, WorkerSlot

__all__ = ["ExportWorker", "WorkerPool", "WorkerSlot", "plan_slots", "workers_that_fit"]
