"""A worker's slot: its device, threads and cores, and its process once started."""

from __future__ import annotations

from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["WorkerSlot"]


@dataclass
class WorkerSlot:
    id: int
    device: str
    threads: int
    cores: tuple[int, ...] = ()  # CPU cores this worker is pinned to (empty: not pinned)
    process: Any = None
    conn: Connection | None = None
    busy: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pipe(self) -> Connection:
        """``conn``, the parent's end of the worker's pipe, which spawning it sets."""
        assert self.conn is not None, f"worker {self.id} was never started"
        return self.conn
