"""What a finished (or running) study says: best trial, counts, top trials, summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autodl._faults import writing
from autodl.selection import best_trial, top_trials  # the ranking, with the selection

__all__ = ["best_trial", "summarize", "top_trials", "write_summary"]


def counts(study: Any) -> dict[str, int]:
    """Trials by state; re-queued trials (their re-run counts) and unused budget slots are
    no trials of the search."""
    from autodl.backends import is_void

    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
    for t in study.get_trials(deepcopy=False):
        key = names.get(t.state.name)
        if key and not is_void(t):
            out[key] += 1
    return out


def summarize(study: Any, *, storage: str, test: dict[str, float] | None = None,
              mlflow: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
              refit: dict[str, Any] | None = None, ensemble: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    from autodl.backends import BUDGET, STOPPED, TIMEOUT

    attrs = study.user_attrs
    objectives = attrs.get("autodl.objectives") or [["value", d.name.lower()]
                                                    for d in study.directions]
    best = best_trial(study)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "metric": objectives[0][0],
        "direction": objectives[0][1],
        "objectives": [{"metric": m, "direction": d} for m, d in objectives],
        "best": None if best is None else {
            "trial": best.number,
            "value": best.values[0],
            "values": list(best.values),
            "params": best.user_attrs.get("config", best.params),
            "val_metrics": best.user_attrs.get("val_metrics", {}),
            "best_epoch": best.user_attrs.get("best_epoch"),
        },
        "protocol": attrs.get("autodl.protocol"),
        "sampler": attrs.get("autodl.sampler"),  # class names: the search's, or the caller's
        "pruner": attrs.get("autodl.pruner"),
        "refit": dict(refit or {}),
        # greedy ensemble selection over the best trials' held-out predictions: chosen
        # (the exported model is the ensemble), members [{trial, weight, refit}], scores
        "ensemble": dict(ensemble or {}),
        "test": dict(test or {}),
        "trials": {k: v for k, v in counts(study).items() if k != "running"},
        # the search's limits (null: none) and which one ended it: trials (the budget, or
        # the grid, was used up), timeout, interrupted or failed
        "budget": {"trials": attrs.get(BUDGET), "timeout": attrs.get(TIMEOUT)},
        "stopped": attrs.get(STOPPED),
        "space": attrs.get("autodl.space"),
        "data": attrs.get("autodl.data"),
        "storage": storage,
        "mlflow": dict(mlflow or {}),
    }
    if len(study.directions) > 1:
        summary["pareto_front"] = [{"trial": t.number, "values": list(t.values)}
                                   for t in study.best_trials]
    if model:
        summary["model"] = model
    return summary


def write_summary(summary: dict[str, Any], out_dir: Path) -> Path:
    path = Path(out_dir) / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    with writing(tmp):
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
        tmp.replace(path)
    return path
