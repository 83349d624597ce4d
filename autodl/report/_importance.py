"""Hyperparameter importances (fANOVA, seeded), with notes where they cannot be trusted.

Conditional parameters (a family's own, an optimizer's own) exist only in some trials;
fANOVA ranks the parameters every completed trial has, and the winning family's own
parameters are ranked again over that family's trials alone."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from autodl.report._data import ReportData

__all__ = ["MIN_TRIALS", "Importances", "compute_importances"]

MIN_TRIALS = 5  # fewer completed trials than this: no importances, a note instead

log = logging.getLogger("autodl.report")


@dataclass
class Importances:
    scores: dict[str, float] = field(default_factory=dict)  # over every completed trial
    within: dict[str, float] = field(default_factory=dict)  # over the winning family's
    family: str | None = None
    notes: list[str] = field(default_factory=list)

    def top(self) -> tuple[str, float] | None:
        return next(iter(self.scores.items()), None)


def compute_importances(data: ReportData, seed: int = 0) -> Importances:
    out = Importances()
    finished = {t.number for t in data.ranked()}
    frozen = [t for t in data.optuna_study.get_trials(deepcopy=False) if t.number in finished]
    label = f"val {data.metric}"
    if len(frozen) < MIN_TRIALS:
        out.notes.append(f"Importances need at least {MIN_TRIALS} completed trials; this "
                         f"study has {len(frozen)}.")
        return out
    if len({t.values[0] for t in frozen}) == 1:
        out.notes.append(f"Every completed trial scored the same {label}: nothing to explain.")
        return out
    out.scores = _fanova(frozen, _varying(frozen, exclude=()), seed)
    if not out.scores:
        out.notes.append("fANOVA could not rank the parameters of this study.")
    dropped = sorted({p for t in frozen for p in t.params} - set(out.scores))
    if dropped:
        out.notes.append("fANOVA ranks the parameters every completed trial has; conditional "
                         f"ones ({', '.join(dropped[:6])}{', ...' if len(dropped) > 6 else ''})"
                         " are ranked within the winning family only.")
    if len(data.objectives) > 1:
        out.notes.append(f"Importances are for the first objective ({label}) only.")
    if len(frozen) < 20:
        out.notes.append(f"Estimated from {len(frozen)} completed trials: a rough guide.")
    best_family = (data.winner() or data.ranked()[0]).family
    mine = [t for t in frozen if t.params.get("family", best_family) == best_family]
    if len(mine) >= MIN_TRIALS and len(data.families()) > 1:
        out.family = best_family
        out.within = _fanova(mine, _varying(mine, exclude=("family",)), seed)
    return out


def _varying(trials: list[Any], exclude: tuple[str, ...]) -> list[str]:
    """Parameters every trial has, that take more than one value, minus ``exclude``."""
    common = set.intersection(*(set(t.params) for t in trials))
    return sorted(p for p in common - set(exclude)
                  if len({repr(t.params[p]) for t in trials}) > 1)


def _fanova(trials: list[Any], params: list[str], seed: int) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    if not params:
        return {}
    study = optuna.create_study(directions=["minimize"] * len(trials[0].values))
    study.add_trials(trials)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = get_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=seed), params=params,
                target=lambda t: t.values[0])
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        log.warning("hyperparameter importances failed: %s", exc)
        return {}
    if not all(math.isfinite(v) for v in scores.values()):
        return {}
    return {k: float(v) for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}
