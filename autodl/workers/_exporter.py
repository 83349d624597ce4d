"""The export worker: a process that imports the exporters while the search runs, so that
the final export does not pay their start-up at the end.

The first export in a process costs seconds before any model is traced: torch.onnx's
dynamo exporter and MLflow are imported and initialised (12 s and 5 s measured on the
2-core machine under load, against 2.3 s and 0.5 s for the next export). This worker pays
that during the search, at a low CPU priority (``nice`` 10), by exporting a one-layer model
to a scratch folder; the search's export then goes to it. It never holds the data.

Messages (``autodl.workers._messages``): parent -> worker ``ExportModel`` (with its
``out_dir``) or ``Stop``; worker -> parent ``Warm`` once, then ``Exported`` per export.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from autodl._spawn import spawn_context, start_process
from autodl.workers._messages import Exported, ExportModel, Stop, Warm

__all__ = ["ExportWorker"]


class ExportWorker:
    """Started with the search; ``export`` uses it when it is warm by then."""

    def __init__(self) -> None:
        ctx = spawn_context()
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_main, args=(child,), name="autodl-exporter",
                                   daemon=True)
        start_process(self.process)
        child.close()
        self.warm_s: float | None = None

    def export(self, out_dir: Path, number: int, dest: Path, formats: list[str],
               weights_dir: str | None) -> dict[str, Any] | None:
        """The export's summary, or None when the worker is not warm yet or is gone (the
        caller exports in a trial worker instead: waiting on a low-priority warm-up could
        take longer than exporting cold)."""
        try:
            if not self.ready(0):
                return None
            self.conn.send(ExportModel(number, str(dest), formats, weights_dir, str(out_dir)))
            reply = self.conn.recv()
            return dict(reply.result) if isinstance(reply, Exported) else None
        except (EOFError, OSError, BrokenPipeError):
            return None

    def ready(self, timeout: float) -> bool:
        """Warm within ``timeout`` seconds (its warm-up time is then ``warm_s``)."""
        if self.warm_s is None and self.conn.poll(timeout):
            self.warm_s = float(self.conn.recv().seconds)
        return self.warm_s is not None

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(Stop())
        self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)


def _main(conn: Connection) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
    with contextlib.suppress(OSError):
        os.nice(10)  # the trials come first
    start = time.perf_counter()
    _warm_up()
    conn.send(Warm(time.perf_counter() - start))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            break
        if not isinstance(msg, ExportModel) or msg.out_dir is None:
            break  # Stop
        _normal_priority()  # the search now waits on it
        from autodl.workers._worker import export_trial

        conn.send(Exported(msg.number, export_trial(Path(msg.out_dir), msg.number, msg.dest,
                                                    msg.formats, msg.weights_dir)))
    os._exit(0)


def _normal_priority() -> None:
    """Back to nice 0, every thread (Linux sets it per thread; torch's intra-op threads
    inherited 10). Only root may lower it: otherwise it stays 10, on a machine the search
    no longer uses."""
    if not hasattr(os, "setpriority") or os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), 0)


def _warm_up() -> None:
    """Export a tiny mlp in every format, the way the search's export runs (nothing of it
    is kept): the exporters' imports and first-call set-up are what it is for."""
    import numpy as np
    import torch

    from autodl.data import Preprocessor
    from autodl.export import FORMATS, export_model
    from autodl.models import create_model

    config: dict[str, Any] = {"family": "mlp", "model": {"depth": 1, "width": 2}}
    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
        weights = Path(tmp) / "weights.pt"
        torch.save(create_model("mlp", config["model"], (4,), 2, "tabular").state_dict(),
                   weights)
        pre = Preprocessor("tabular", "classification", (4,), np.zeros(4, np.float32),
                           np.ones(4, np.float32), classes=["a", "b"])
        export_model(config, weights, pre, Path(tmp) / "m", list(FORMATS))
