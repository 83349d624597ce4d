"""What the report shows, gathered once: the study's trials (with per-epoch curves), its
objectives, summary.json when the search wrote one, and the MLflow ids of its runs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import UsageError

__all__ = ["ReportData", "TrialRow", "gather", "load_study", "storage_exists"]

_NO_CURVE_METRICS = ("params", "latency_ms")  # objectives that have no per-epoch value


@dataclass
class TrialRow:
    """One trial as the report draws it."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    family: str
    values: list[float] | None
    params: dict[str, Any]
    distributions: dict[str, Any]
    curve: list[tuple[int, float]] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int | None = None
    params_count: int | None = None
    duration_s: float | None = None
    reason: str | None = None
    run_id: str | None = None

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def finished(self) -> bool:
        """COMPLETE with finite values: the trials that rank."""
        return (self.state == "COMPLETE" and bool(self.values)
                and all(math.isfinite(v) for v in self.values or ()))


@dataclass
class ReportData:
    study: str
    objectives: list[tuple[str, str]]  # (metric, maximize|minimize)
    trials: list[TrialRow]
    curve_metric: str
    attrs: dict[str, Any]
    summary: dict[str, Any]
    mlflow: dict[str, Any]
    optuna_study: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.objectives[0][0]

    @property
    def maximize(self) -> bool:
        return self.objectives[0][1] == "maximize"

    def ranked(self) -> list[TrialRow]:
        """Finished trials, best first on the first objective (ties: lower number first)."""
        sign = -1 if self.maximize else 1
        return sorted((t for t in self.trials if t.finished),
                      key=lambda t: (sign * (t.value or 0.0), t.number))

    def winner(self) -> TrialRow | None:
        """The trial summary.json calls best (for several objectives: the Pareto-front
        trial best on the first one), so the report and the exported model agree."""
        from autodl.selection import best_trial

        ranked = self.ranked()
        best = best_trial(self.optuna_study) if self.optuna_study is not None else None
        number = best.number if best is not None else None
        return next((t for t in ranked if t.number == number), ranked[0] if ranked else None)

    def families(self) -> list[str]:
        return sorted({t.family for t in self.trials})


def load_study(name: str, storage: str | None) -> Any:
    """The Optuna study, or a UsageError naming the study and the storage."""
    import optuna

    from autodl.backends import DEFAULT_STORAGE, open_storage

    url = storage or DEFAULT_STORAGE
    if not storage_exists(url):
        raise UsageError(f"no Optuna storage at {url} (looking for study {name!r}); run "
                         "`autodl search` here first or pass --storage", key="storage")
    store = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)]
    if name not in names:
        known = ", ".join(names[-10:]) or "none"
        raise UsageError(f"no study {name!r} in the storage {url}; studies there: {known}",
                         key="study")
    return optuna.load_study(study_name=name, storage=store)


def storage_exists(url: str) -> bool:
    """False for a journal or SQLite file that is not there (opening would create it);
    True for a server database (connecting tells)."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    return "://" in path or path in ("", ":memory:") or Path(path).is_file()


def gather(study: Any, tracking_uri: str | None, summary: Mapping[str, Any] | None = None,
           use_mlflow: bool = True) -> ReportData:
    """Everything the figures need. ``summary`` defaults to the study's summary.json."""
    from autodl.report._runs import mlflow_runs

    attrs = dict(study.user_attrs)
    objectives = [(str(m), str(d)) for m, d in attrs.get("autodl.objectives") or
                  [("value", d.name.lower()) for d in study.directions]]
    saved = dict(summary) if summary is not None else _saved_summary(study)
    trials = [_row(t) for t in study.get_trials(deepcopy=False) if _shown(t)]
    data = ReportData(study.study_name, objectives, trials, _curve_metric(objectives), attrs,
                      saved, {}, optuna_study=study)
    if use_mlflow:
        uri = tracking_uri or saved.get("mlflow", {}).get("uri")
        ids = saved.get("mlflow") or {}
        # a search's own summary holds its run ids; the store is read only for curves
        # Optuna lacks (several objectives) or runs added since (``autodl report`` later)
        fresh = summary is not None and bool(ids.get("trial_run_ids")) and all(
            row.curve for row in trials)
        data.mlflow = mlflow_runs(study.study_name, uri, ids, query=not fresh)
        _attach_runs(data)
    return data


def _shown(trial: Any) -> bool:
    from autodl.backends import is_void

    return not is_void(trial)


def _row(trial: Any) -> TrialRow:
    attrs = trial.user_attrs
    config = attrs.get("config") or {}
    return TrialRow(
        number=trial.number, state=trial.state.name,
        family=str(config.get("family") or trial.params.get("family") or "model"),
        values=list(trial.values) if trial.values else None,
        params=dict(trial.params), distributions=dict(trial.distributions),
        curve=[(int(k), float(v)) for k, v in sorted(trial.intermediate_values.items())
               if math.isfinite(v)],
        epochs_run=int(attrs.get("epochs_run") or len(trial.intermediate_values)),
        best_epoch=attrs.get("best_epoch"), params_count=attrs.get("params_count"),
        duration_s=attrs.get("duration_s"), reason=attrs.get("fail_reason"),
    )


def _curve_metric(objectives: list[tuple[str, str]]) -> str:
    """The per-epoch validation metric the pruner saw (the backend's choice)."""
    metric = objectives[0][0]
    if len(objectives) > 1:
        metric = next((m for m, _ in objectives if m not in _NO_CURVE_METRICS), "loss")
    return "loss" if metric in _NO_CURVE_METRICS else metric


def _saved_summary(study: Any) -> dict[str, Any]:
    from autodl.backends import OUT_DIR, study_out_dir

    path = study_out_dir(study) / "summary.json" if study.user_attrs.get(OUT_DIR) else None
    if path is None or not path.is_file():
        return {}
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return summary


def _attach_runs(data: ReportData) -> None:
    """Run ids for the links; per-epoch curves from MLflow where Optuna has none (several
    objectives: nothing is pruned, so nothing is reported to Optuna per epoch)."""
    from autodl.report._runs import metric_history

    runs = data.mlflow.get("trial_run_ids", {})
    for row in data.trials:
        row.run_id = runs.get(str(row.number))
        if not row.curve and row.run_id:
            row.curve = metric_history(data.mlflow, row.run_id, f"val_{data.curve_metric}")
    if data.mlflow.get("note"):
        data.notes.append(data.mlflow["note"])
