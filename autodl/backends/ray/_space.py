"""The YAML search space in Ray Tune's terms: a define-by-run function for OptunaSearch, a
pre-sampled population and continuous mutations for PBT, and the way back to Optuna.

A Ray trial's ``config`` is always the *flat* sampler-side parameters (``family``,
``mlp.depth``, ``optimizer.lr``...), exactly what ``SearchSpace.sample`` suggests; the nested
config a trial trains with is rebuilt from them with ``optuna.trial.FixedTrial``. So
conditionals stay conditional (a family's parameters exist only for that family), PBT can
mutate a parameter by its flat name, and recording into the Optuna study needs no mapping.

Everything here is pickled into Ray's experiment state (``Tuner.restore``), so the
callables are module-level classes, not closures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autodl.space import Float

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["DefineByRun", "PbtMutations", "resolve_trial", "sample_population"]


class DefineByRun:
    """OptunaSearch's ``space``: suggest every active parameter, keep only what was
    suggested (Ray merges the captured suggestions into the trial config)."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def __call__(self, trial: Any) -> None:
        self.space.sample(trial)


def resolve_trial(space: Any, params: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, Any], dict[str, BaseDistribution]]:
    """``(nested config, params, distributions)`` for a trial's flat params: the params that
    are active for its choices (PBT may have added inactive ones) and their Optuna
    distributions, ready for ``optuna.trial.create_trial``."""
    import optuna

    fixed = optuna.trial.FixedTrial(dict(params))
    config = space.sample(fixed)
    return config, dict(fixed.params), dict(fixed.distributions)


def sample_population(space: Any, study: Any, size: int,
                      mutations: PbtMutations) -> list[dict[str, Any]]:
    """PBT cannot run with a search algorithm, so its population is sampled up front from
    an in-memory study (seeded sampler, every family first when there is room). Every
    point carries every parameter PBT mutates (PBT multiplies them, and may copy them to a
    trial of another optimizer); one a point's optimizer does not use is inactive."""
    points = []
    for _ in range(size):
        trial = study.ask()
        space.sample(trial)
        points.append({**mutations.placeholders(), **trial.params})
    return points


@dataclass(frozen=True)
class _Bounds:
    low: float
    high: float
    step: float | None


class PbtMutations:
    """The continuous optimizer parameters PBT may perturb (``lr``, ``momentum``,
    ``weight_decay``...), by flat name, and ``explore``: PBT multiplies values by 0.8/1.2,
    which can leave the range the YAML allows, so results are clipped (and snapped to
    ``step``) back into it."""

    def __init__(self, space: Any) -> None:
        self.dists: dict[str, Float] = {}
        section = space.optimizer
        for key, dist in section.shared.items():
            if isinstance(dist, Float):
                self.dists[f"optimizer.{key}"] = dist
        for option, params in section.options.items():
            for key, dist in params.items():
                if isinstance(dist, Float):
                    self.dists[f"optimizer.{option}.{key}"] = dist
        self.bounds = {k: _Bounds(d.low, d.high, d.step) for k, d in self.dists.items()}

    def placeholders(self) -> dict[str, float]:
        """A value in range for each mutated parameter (the geometric or plain midpoint)."""
        return {k: math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2
                for k, d in self.dists.items()}

    def domains(self) -> dict[str, Any]:
        """Ray Tune domains PBT resamples from (``resample_probability``)."""
        from ray import tune

        return {k: tune.loguniform(d.low, d.high) if d.log else tune.uniform(d.low, d.high)
                for k, d in self.dists.items()}

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, bounds in self.bounds.items():
            value = config.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                config[key] = _clip(float(value), bounds)
        return config


def _clip(value: float, b: _Bounds) -> float:
    value = min(max(value, b.low), b.high)
    if b.step:
        value = b.low + round((value - b.low) / b.step) * b.step
        value = min(value, b.high)
    return value
