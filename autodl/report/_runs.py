"""The study's MLflow runs: ids for the report's links, metric histories for curves.

MLflow is optional here: a missing or unreachable store means no links (and a note),
never a failed report. Nothing is created in the store (a missing SQLite file stays
missing)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MLFLOW_UI", "metric_history", "mlflow_runs", "run_url"]

DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"

log = logging.getLogger("autodl.report")


def mlflow_runs(study: str, uri: str | None, saved: Mapping[str, Any], query: bool = True
                ) -> dict[str, Any]:
    """``uri``, ``experiment_id``, ``parent_run_id``, ``trial_run_ids`` {number: id} and a
    ``client`` when the store answers; ids from summary.json fill what the store lacks.
    ``query=False``: the saved ids only (no client, MLflow not imported)."""
    from autodl.tracking import default_tracking_uri

    uri = uri or default_tracking_uri()
    out: dict[str, Any] = {"uri": uri, "experiment_id": saved.get("experiment_id"),
                           "parent_run_id": saved.get("parent_run_id"),
                           "trial_run_ids": dict(saved.get("trial_run_ids") or {})}
    if not query:
        return out
    if _missing_sqlite(uri):
        if not out["trial_run_ids"]:
            out["note"] = f"no MLflow store at {uri}: the table has no links to MLflow runs"
        return out
    try:
        out.update(_query(study, uri))
    except Exception as exc:  # any store error: the report goes on without MLflow
        log.warning("MLflow store %s not readable for the report: %s", uri,
                    str(exc).strip().split("\n", 1)[0])
        out["note"] = f"MLflow store {uri} could not be read ({type(exc).__name__})"
    return out


def _missing_sqlite(uri: str) -> bool:
    if not uri.startswith("sqlite:///"):
        return False
    path = uri[len("sqlite:///"):]
    return path not in ("", ":memory:") and not Path(path).is_file()


def _query(study: str, uri: str) -> dict[str, Any]:
    from mlflow import MlflowClient  # MLflow sets its loggers up on import: quiet them after

    from autodl._quiet import quieted

    with quieted("alembic", "mlflow"):  # opening a SQLite store logs its migrations
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(study)
    if exp is None:
        return {"client": client}
    found: dict[str, Any] = {"client": client, "experiment_id": exp.experiment_id}
    runs = [run for role in ("study", "trial") for run in client.search_runs(
        [exp.experiment_id], f"tags.`autodl.role` = '{role}'", max_results=50000)]
    trial_ids = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):  # a resume's run wins
        tags = run.data.tags
        if tags.get("autodl.role") == "study":
            found.setdefault("parent_run_id", run.info.run_id)
        elif tags.get("autodl.role") == "trial" and "autodl.trial" in tags:
            trial_ids[tags["autodl.trial"]] = run.info.run_id
    if trial_ids:
        found["trial_run_ids"] = trial_ids
    return found


def metric_history(mlflow: Mapping[str, Any], run_id: str, key: str) -> list[tuple[int, float]]:
    """``key`` per step (= epoch) of one run; empty when the store cannot say."""
    client = mlflow.get("client")
    if client is None:
        return []
    try:
        history = client.get_metric_history(run_id, key)
    except Exception as exc:  # a deleted run, a store gone away: no curve for this trial
        log.debug("no %s history for run %s: %s", key, run_id, exc)
        return []
    return sorted({int(m.step): float(m.value) for m in history}.items())


def run_url(ui_base: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI's page of one run (a link, never loaded by the report)."""
    if not experiment_id or not run_id:
        return None
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
