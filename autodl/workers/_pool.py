"""A pool of long-lived worker processes, one per device slot, reused across trials."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from multiprocessing.connection import wait
from typing import Any

from autodl._spawn import spawn_context, start_process
from autodl.errors import SearchFailed
from autodl.workers._devices import replan_cpu
from autodl.workers._messages import Died, FromWorker, LoadData, Ready, Stop, ToWorker
from autodl.workers._slot import WorkerSlot

__all__ = ["WorkerPool", "WorkerSlot"]  # WorkerSlot: autodl.workers._slot


class WorkerPool:
    """Spawned workers that hold the data on their device; messages go over pipes.

    ``spawn`` starts the processes (each imports torch and warms up while the parent is
    still preparing the data); ``start`` hands them the prepared data and waits until every
    worker holds it. ``poll`` returns ``(worker_id, message)`` pairs; a worker that dies
    yields ``Died(exitcode)`` and is replaced by ``restart``.
    """

    def __init__(self, slots: list[WorkerSlot], runtime: dict[str, Any] | None = None) -> None:
        self.slots = {s.id: s for s in slots}
        self.runtime = dict(runtime or {})  # tf32, cudnn_benchmark: set once per worker
        self.data_path: str | None = None
        self.out_dir: str | None = None
        self._ctx = spawn_context()

    def spawn(self) -> WorkerPool:
        for slot in self.slots.values():
            if slot.process is None:
                self._spawn(slot)
        return self

    def keep(self, n: float) -> None:
        """Stop the workers beyond the first ``n`` (more slots than trials to run, or than
        memory holds; ``n`` may be ``math.inf``); CPU workers left share every core (they
        take their threads and cores with the data)."""
        dropped = [w for w in self.slots if w >= max(1, n)]
        for wid in dropped:
            self._stop(self.slots.pop(wid))
        if dropped:
            replan_cpu(list(self.slots.values()))

    def start(self, data_path: str, out_dir: str) -> None:
        self.use_data(data_path, out_dir)
        self.spawn()
        for slot in self.slots.values():
            self._load(slot)
        for slot in self.slots.values():
            self._await_ready(slot)

    def use_data(self, data_path: str, out_dir: str) -> None:
        """Where the prepared data and the trials' files are (``start`` and ``ensure``)."""
        self.data_path, self.out_dir = data_path, out_dir

    def ensure(self, worker_id: int) -> None:
        """Worker ``worker_id`` alive and holding the data (started, or restarted)."""
        slot = self.slots[worker_id]
        if slot.process is not None and slot.process.is_alive() and slot.info:
            return
        if slot.process is not None and slot.process.is_alive():
            self._load(slot)
            self._await_ready(slot)
        else:
            self.restart(worker_id)

    def _spawn(self, slot: WorkerSlot) -> None:
        from autodl.workers._worker import worker_main

        parent, child = self._ctx.Pipe()
        slot.process = self._ctx.Process(
            target=worker_main, name=f"autodl-worker-{slot.id}", daemon=True,
            args=(child, slot.id, slot.device, slot.threads, slot.cores, self.runtime),
        )
        start_process(slot.process)
        child.close()
        slot.conn, slot.busy = parent, False

    def _load(self, slot: WorkerSlot) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):  # died: _await_ready says so
            slot.pipe.send(LoadData(str(self.data_path), str(self.out_dir), slot.threads,
                                    tuple(slot.cores)))

    def _await_ready(self, slot: WorkerSlot) -> None:
        try:
            ready = slot.pipe.recv()
        except EOFError:
            ready = None
        if not isinstance(ready, Ready):
            slot.process.join(1.0)
            raise SearchFailed(
                f"worker {slot.id} on {slot.device} exited while loading the data "
                f"(exit code {slot.process.exitcode})"
            ) from None
        slot.info = asdict(ready)

    def restart(self, worker_id: int) -> None:
        slot = self.slots[worker_id]
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()
        slot.info = {}
        self._spawn(slot)
        self._load(slot)
        self._await_ready(slot)

    def idle(self) -> list[int]:
        return [s.id for s in self.slots.values() if not s.busy]

    def send(self, worker_id: int, message: ToWorker, *, busy: bool | None = None
             ) -> None:
        slot = self.slots[worker_id]
        slot.pipe.send(message)
        if busy is not None:
            slot.busy = busy

    def poll(self, timeout: float) -> list[tuple[int, FromWorker]]:
        by_handle: dict[Any, tuple[int, str]] = {}
        for s in self.slots.values():
            by_handle[s.conn] = (s.id, "conn")
            by_handle[s.process.sentinel] = (s.id, "sentinel")
        out: list[tuple[int, FromWorker]] = []
        died: set[int] = set()
        for handle in wait(list(by_handle), timeout):
            wid, kind = by_handle[handle]
            if kind == "conn":
                try:
                    out.append((wid, self.slots[wid].pipe.recv()))
                    continue
                except (EOFError, OSError):
                    pass
            died.add(wid)
        for wid in sorted(died):
            process = self.slots[wid].process
            process.join(1.0)
            if not process.is_alive():
                out.append((wid, Died(process.exitcode)))
        return out

    def _stop(self, slot: WorkerSlot) -> None:
        if slot.process is not None and slot.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                slot.pipe.send(Stop())

    def close(self, timeout: float = 5.0) -> None:
        """Stop idle workers politely (they exit at once); busy ones (an interrupted trial)
        and ones still waiting for the data are killed."""
        for slot in self.slots.values():
            if slot.process is None or not slot.process.is_alive():
                continue
            if slot.busy or not slot.info:  # a trial cut short, or never given the data
                slot.process.kill()
            else:
                self._stop(slot)
        for slot in self.slots.values():
            if slot.process is not None:
                slot.process.join(timeout)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(1)
