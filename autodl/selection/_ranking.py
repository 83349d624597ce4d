"""How a study's trials rank: by the first objective, ties broken on validation loss (the
lower, the more confident the right answers), then by trial number."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["best_trial", "top_trials"]


def best_trial(study: Any) -> Any | None:
    """The best COMPLETE trial; for several objectives, the Pareto-front trial that is best
    on the first objective. ``None`` when no trial completed."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False,
                                            states=(optuna.trial.TrialState.COMPLETE,))
                if t.values and all(math.isfinite(v) for v in t.values)]
    if not complete:
        return None
    candidates = study.best_trials if len(study.directions) > 1 else complete
    candidates = [t for t in candidates if t in complete] or complete
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(candidates, key=lambda t: (sign * t.values[0], -_val_loss(t), -t.number))


def _val_loss(trial: Any) -> float:
    """Ties on the objective (9 of 10 right, several times over) break on validation loss:
    the lower, the more confident the right answers."""
    loss = (trial.user_attrs.get("val_metrics") or {}).get("val_loss")
    return float(loss) if isinstance(loss, int | float) and math.isfinite(loss) else math.inf


def top_trials(study: Any, n: int = 5) -> list[Any]:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False,
                                            states=(optuna.trial.TrialState.COMPLETE,))
                if t.values and all(math.isfinite(v) for v in t.values)]
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return sorted(complete, key=lambda t: (-sign * t.values[0], _val_loss(t), t.number))[:n]
