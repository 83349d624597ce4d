"""A background thread that runs tracking calls in order, off the search's critical path.

The parent process answers workers' pruning questions; a 16 ms SQLite write per metric
must not sit in that loop. Calls are queued and run in order on one thread; metrics are
batched. A failing call is reported once and never stops the search.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["OrderedWriter"]

log = logging.getLogger("autodl.tracking")


def _lower_priority() -> None:
    """Tracking yields the CPU to training: on Linux, niceness is per thread."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class OrderedWriter:
    def __init__(self, name: str = "autodl-tracking", tick: float = 2.0) -> None:
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._tick_fns: list[Callable[[], None]] = []
        self._tick = tick
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> None:
        self._queue.put(fn)

    def on_tick(self, fn: Callable[[], None]) -> None:
        """``fn`` runs on the writer thread whenever it has been idle for ``tick`` seconds."""
        self._tick_fns.append(fn)

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` after everything queued so far and return its result."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def wrapped() -> None:
            try:
                box["value"] = fn()
            except Exception as exc:
                box["error"] = exc
            finally:
                done.set()

        self.submit(wrapped)
        if not done.wait(timeout):
            raise TimeoutError("tracking did not answer in time")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def close(self, timeout: float = 120.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        _lower_priority()
        while True:
            try:
                fn = self._queue.get(timeout=self._tick)
            except queue.Empty:
                self._safe(self._ticks)
                continue
            if fn is None:
                self._safe(self._ticks)
                return
            self._safe(fn)

    def _ticks(self) -> None:
        for fn in self._tick_fns:
            fn()

    def _safe(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:
            kind = type(exc).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("tracking call failed (%s: %s); the search goes on", kind, exc)
