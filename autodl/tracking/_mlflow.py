"""MLflow tracking: an experiment per study, a parent run, one nested child run per trial.

``MlflowTracker`` is the search's listener: it only queues calls for the tracking child
process (``_process``), where ``MlflowStore`` (``_store``) makes them; the search loop never
waits on the store, and MLflow is never imported in the search process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autodl.events import FinishedTrial, SearchListener, StudyInfo, TrialEnd
from autodl.tracking._process import ProcessWriter

__all__ = ["DEFAULT_TRACKING_URI", "MlflowTracker", "default_tracking_uri"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set (as MLflow itself reads it), else ``./mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def absolute_sqlite_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` resolved against the current directory now: MLflow caches
    one engine per URI string, so a relative one can end up writing another directory's
    store after a ``chdir`` (several searches in one Python process, notebooks, tests)."""
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return uri
    rest = uri[len("sqlite:///"):]
    if rest in ("", ":memory:"):
        return uri
    return f"sqlite:///{Path(rest).resolve()}"


class MlflowTracker(SearchListener):
    """``joining=True`` (``autodl worker``): add child runs under the study's existing parent
    run; never create, end or kill the parent, nor other processes' runs."""

    def __init__(self, tracking_uri: str | None = None, register: str | None = None,
                 joining: bool = False) -> None:
        from autodl.backends import owner_id
        from autodl.tracking._sqlite_store import check_sqlite_store
        from autodl.tracking._store import MlflowStore

        uri = absolute_sqlite_uri(tracking_uri or default_tracking_uri())
        check_sqlite_store(uri)  # a corrupt store: exit 2 before anything runs
        self.uri = uri
        self.study: str | None = None
        self.writer = ProcessWriter(MlflowStore, (uri, register, joining, owner_id()))

    # listener hooks (called on the search thread; they only queue work)
    def study_start(self, info: StudyInfo) -> None:
        self.study = info.study
        self.writer.submit("setup", info, _now())

    def trial_start(self, number: int, config: Mapping[str, Any], worker: Mapping[str, Any]
                    ) -> None:
        self.writer.submit("start_trial", number, dict(config), dict(worker), _now())

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        self.writer.submit("buffer", number, epoch, dict(metrics), _now())

    def trial_end(self, end: TrialEnd) -> None:
        self.writer.submit("end_trial", end, _now())

    def earlier_trials(self, trials: Sequence[FinishedTrial]) -> None:
        self.writer.submit("catch_up", list(trials))

    def model_exported(self, model: Mapping[str, Any]) -> None:
        self.writer.submit("log_model", dict(model))

    def study_end(self, summary: Mapping[str, Any]) -> None:
        self.writer.submit("end_study", dict(summary))

    def close(self) -> None:
        self.writer.submit("close_open_runs")
        self.writer.close()

    def abort(self) -> None:
        """Give the store a second; runs left RUNNING end KILLED at the next resume."""
        self.writer.submit("close_open_runs")
        self.writer.close(timeout=1.0)

    def summary_fields(self) -> dict[str, Any]:
        """MLflow ids for summary.json (after everything queued so far is written)."""
        try:
            fields: dict[str, Any] = self.writer.call("summary_fields", timeout=300)
            return fields
        except RuntimeError:
            error = self.failure()
            if error is None:
                raise
            raise error from None

    def failure(self) -> Exception | None:
        """The store stopped working (twice in a row for one call): a ``StorageError``
        naming it; exit 2 when it could not even be opened."""
        fault = self.writer.failure()
        if fault is None:
            return None
        from autodl._faults import sqlite_path, storage_error
        from autodl.errors import StorageError

        opening = fault["method"] == "setup"  # the store could not be opened or created
        store = sqlite_path(self.uri) or self.uri
        file = store if opening else fault.get("file") or store
        error = storage_error(None, file, "the MLflow store", "--tracking-uri", self.study,
                              opening=opening, kind=fault["kind"])
        if error is not None:
            return error
        resume = f"rerun with --resume --study {self.study}" if self.study else "rerun"
        return StorageError(
            f"MLflow tracking failed ({fault['detail']}); the search stopped rather than run "
            f"on untracked: fix the store or point --tracking-uri elsewhere, then {resume} "
            "(or pass --no-tracking)", file=file, exit_code=2 if opening else 1)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.writer.submit("log_artifact", str(path), artifact_path)


def _now() -> int:
    return int(time.time() * 1000)
