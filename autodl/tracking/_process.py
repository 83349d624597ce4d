"""Tracking in a child process: calls run in order there, off the search's critical path.

The search's parent process answers workers' pruning questions and samples the next
trials; MLflow's SQLAlchemy work (about 70 ms of Python per trial on a SQLite store) must
neither sit in that loop nor share its GIL. The parent queues ``(method, args)`` messages
to a sender thread that writes them to a pipe (a submit never blocks on the child; no
``multiprocessing.Queue``, whose semaphores leak when the CLI ends with ``os._exit``). The
child runs them on one store object in order, calls the store's ``tick`` every ``tick``
seconds, busy or idle (buffered metrics get written while a trial trains). A call that
fails is tried once more; if it fails again the child tells the parent (``failure``), which
stops the search rather than run on with tracking lost. It ignores Ctrl-C (the parent
decides); when the parent goes away, even killed, its end of the pipe closes: the child
writes what it was sent and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from autodl._spawn import spawn_context, start_process

__all__ = ["ProcessWriter"]

log = logging.getLogger("autodl.tracking")


class ProcessWriter:
    """``factory(*args)`` builds the store object in the child (both must be picklable)."""

    def __init__(self, factory: Callable[..., Any], args: tuple[Any, ...] = (),
                 tick: float = 2.0) -> None:
        ctx = spawn_context()
        inbox, self._outbox = ctx.Pipe(duplex=False)
        self._replies, replies = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_serve, name="autodl-tracking", daemon=True,
                                    args=(factory, args, inbox, replies, tick))
        start_process(self._process)
        inbox.close()
        replies.close()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send, name="autodl-tracking-send",
                                        daemon=True)
        self._sender.start()
        self._calls = 0
        self._closed = False
        self._answers: dict[int, tuple[Any, Any]] = {}
        self._failure: dict[str, Any] | None = None

    def submit(self, method: str, *args: Any) -> None:
        if not self._closed:
            self._queue.put((method, args, None))

    def _send(self) -> None:
        while True:
            msg = self._queue.get()
            try:
                self._outbox.send(msg)
            except (OSError, ValueError):  # the child is gone: nothing more to write
                return
            if msg is None:
                self._outbox.close()
                return

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Run ``method`` after everything queued so far and return its result."""
        self._calls += 1
        ticket = self._calls
        self._queue.put((method, args, ticket))
        while ticket not in self._answers:
            if not self._replies.poll(timeout):
                raise TimeoutError(f"tracking did not answer {method} in time")
            if not self._read():
                raise RuntimeError("the tracking process exited")
        value, error = self._answers.pop(ticket)
        if error is not None:
            raise RuntimeError(f"tracking call {method} failed: {error['detail']}")
        return value

    def failure(self) -> dict[str, Any] | None:
        """The first call that failed (twice): ``method``, ``kind`` (``autodl._faults``),
        ``detail`` (one line), ``file``; None while every call has worked."""
        with contextlib.suppress(OSError, ValueError):
            while self._failure is None and self._replies.poll(0):
                if not self._read():
                    break
        if self._failure is None and not self._closed and not self._process.is_alive():
            self._failure = {"method": "?", "kind": None, "file": None, "detail":
                             f"the tracking process exited (code {self._process.exitcode})"}
        return self._failure

    def _read(self) -> bool:
        """One message from the child: an answer, or news of a failed call."""
        try:
            ticket, value, error = self._replies.recv()
        except (EOFError, OSError):
            return False
        if error is not None and self._failure is None:
            self._failure = error
        if ticket is not None:
            self._answers[ticket] = (value, error)
        return True

    def close(self, timeout: float = 120.0) -> None:
        """Everything queued gets written, then the child exits (waits up to ``timeout``;
        a child still writing after that finishes on its own)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._sender.join(timeout)
        self._process.join(timeout)


def _serve(factory: Callable[..., Any], args: tuple[Any, ...], inbox: Any, replies: Any,
           tick: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    failed = False

    def safe(method: str, margs: tuple[Any, ...] = (), ticket: int | None = None
             ) -> tuple[Any, dict[str, Any] | None]:
        """Call ``method``, once more after a failure; the first call that fails twice is
        reported to the parent (as its answer, or unasked)."""
        nonlocal failed
        attempts = 1 if failed else 2  # once more: a store busy for a moment
        for attempt in range(attempts):
            try:
                return getattr(store, method)(*margs), None
            except Exception as exc:
                error = _fault(method, exc)
                if os.environ.get("AUTODL_DEBUG"):
                    log.warning("tracking call %s failed", method, exc_info=exc)
                if attempt + 1 < attempts:
                    time.sleep(0.5)
        if not failed:  # the parent stops the search; what follows is best effort
            failed = True
            if ticket is None:
                with contextlib.suppress(OSError):
                    replies.send((None, None, error))
        return None, error

    store = factory(*args)
    last_tick = time.monotonic()
    while True:
        if time.monotonic() - last_tick >= tick:
            safe("tick")
            last_tick = time.monotonic()
        try:
            if not inbox.poll(tick):
                continue
            msg = inbox.recv()
        except (EOFError, OSError):  # the search process is gone: write what it sent
            msg = None
        if msg is None:
            safe("tick")
            return
        method, margs, ticket = msg
        value, error = safe(method, margs, ticket)
        if ticket is not None:
            with contextlib.suppress(OSError):
                replies.send((ticket, value, error))


def _fault(method: str, exc: Exception) -> dict[str, Any]:
    from autodl._faults import describe, fault_kind, filename

    return {"method": method, "kind": fault_kind(exc), "detail": describe(exc),
            "file": filename(exc)}
