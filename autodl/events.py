"""What happens during a search, as events; the progress display and trackers listen.

A backend calls these in the parent process, in order: ``study_start`` once, then per
trial ``trial_start``, ``epoch`` (per epoch trained), ``trial_end``; ``study_end`` once.
On ``--resume``, ``earlier_trials`` follows ``study_start`` with the trials already finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FinishedTrial", "SearchListener", "StudyInfo", "TrialEnd"]


@dataclass
class StudyInfo:
    study: str
    space_name: str
    space_source: str
    space_text: str
    data: Mapping[str, Any]
    objectives: list[tuple[str, str]]
    families: list[str]
    total_trials: int | None  # None: no trial budget (the search runs until ``timeout``)
    finished_before: int
    epochs: int
    out_dir: str
    settings: Mapping[str, Any]
    workers: list[Mapping[str, Any]] = field(default_factory=list)
    timeout: float | None = None  # seconds


@dataclass
class TrialEnd:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    values: list[float] | None
    reason: str | None
    detail: str
    best_epoch: int
    epochs_run: int
    metrics: Mapping[str, float]
    params_count: int
    duration_s: float


@dataclass(frozen=True)
class FinishedTrial:
    """A trial finished in an earlier run of the study: its end, config and times (ms)."""

    end: TrialEnd
    config: Mapping[str, Any]
    start_ms: int
    end_ms: int


class SearchListener:
    """Override the hooks you need. Must not raise: a listener never stops a search."""

    def study_start(self, info: StudyInfo) -> None: ...

    def trial_start(self, number: int, config: Mapping[str, Any], worker: Mapping[str, Any]
                    ) -> None: ...

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def trial_end(self, end: TrialEnd) -> None: ...

    def earlier_trials(self, trials: Sequence[FinishedTrial]) -> None:
        """On ``--resume``: every trial the study finished before, for a listener to record
        those it missed (MLflow tracking whose store broke, or a new ``--tracking-uri``)."""

    def model_exported(self, model: Mapping[str, Any]) -> None:
        """The final model is in ``model["dir"]`` (summary.json's ``model``); called before
        the summary is made, so a listener's ``summary_fields`` can name what it did with it."""

    def study_end(self, summary: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """A second Ctrl-C: stop within a second, even with work pending (default: close)."""
        self.close()

    def failure(self) -> Exception | None:
        """Why this listener can no longer do its work (its store broke), else None: the
        search then stops, resumable, instead of running on without it."""
        return None
