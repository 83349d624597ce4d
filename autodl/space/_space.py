"""The one typed form of a search space; YAML maps onto it, both backends translate from it.

Sampling is define-by-run against anything with Optuna's ``suggest_*`` methods (an
``optuna.Trial``, which Ray Tune's OptunaSearch also hands over), so conditional
sub-spaces stay conditional: a family's parameters are suggested only when that family is
chosen, an optimizer's only for that optimizer.

Sampler-side names are namespaced so that two options' parameters never share a
distribution (``mlp.depth``, ``optimizer.sgd.momentum``); the *resolved config* a trial
trains with is nested and uses the short names::

    {"family": "mlp", "model": {...}, "optimizer": {"name": "sgd", "lr": ..., ...},
     "schedule": {"name": "cosine", ...}, "training": {"batch_size": 64, ...}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from autodl.params import Categorical, Distribution, Fixed, Float, Int

__all__ = ["Defaults", "Objective", "SearchSpace", "Section", "Suggester", "flatten_config"]

_T = TypeVar("_T")

# metric -> direction; "params" (parameter count) and "latency_ms" are model costs.
METRIC_DIRECTIONS = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1_macro": "maximize",
    "loss": "minimize",
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
    "params": "minimize",
    "latency_ms": "minimize",
}
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "loss")
REGRESSION_METRICS = ("rmse", "mae", "r2", "loss")
COST_METRICS = ("params", "latency_ms")


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that sampling needs."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = ...,
                      log: bool = ...) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = ...,
                    log: bool = ...) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" | "minimize"


@dataclass(frozen=True)
class Section:
    """A choice among named options, each with its own parameters, plus shared ones.

    ``families`` has no shared parameters; ``optimizer`` and ``schedule`` may.
    """

    options: Mapping[str, Mapping[str, Distribution]]
    shared: Mapping[str, Distribution] = field(default_factory=dict)


@dataclass(frozen=True)
class Defaults:
    """Run settings a space may carry; CLI flags override them."""

    data: str | None = None
    trials: int | None = None  # None: 20, or none when a timeout is given (settings.budget)
    epochs: int = 20
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int | None = None
    cv: int | None = None  # folds; None: by data size (autodl.selection)
    holdout: bool = False


@dataclass(frozen=True)
class SearchSpace:
    name: str
    families: Section
    optimizer: Section
    schedule: Section
    training: Mapping[str, Distribution]
    objectives: tuple[Objective, ...] = ()
    defaults: Defaults = Defaults()
    description: str = ""
    source: str = "<memory>"
    source_text: str = ""

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def with_families(self, names: Iterable[str]) -> SearchSpace:
        keep = {n: self.families.options[n] for n in names if n in self.families.options}
        return replace(self, families=replace(self.families, options=keep))

    def sample(self, trial: Suggester) -> dict[str, Any]:
        """Suggest every active parameter; return the resolved (nested) config."""
        family, model = _sample_section(trial, "family", "", self.families)
        opt_name, opt = _sample_section(trial, "optimizer", "optimizer", self.optimizer)
        sched_name, sched = _sample_section(trial, "schedule", "schedule", self.schedule)
        training = {k: _suggest(trial, f"training.{k}", d) for k, d in self.training.items()}
        return with_defaults({
            "family": family,
            "model": model,
            "optimizer": {"name": opt_name, **opt},
            "schedule": {"name": sched_name, **sched},
            "training": training,
        })

    def fixed_params(self, hint: Mapping[str, Any]) -> dict[str, Any]:
        """The sampler-side values (``enqueue_trial`` params) of a nested config ``hint``
        such as ``sample`` returns, keeping only the values this space admits: what the
        space cannot take (a value out of range, a family it leaves out) is left to the
        sampler."""
        recorder = _HintSuggester(_flat_hint(hint))
        self.sample(recorder)
        return recorder.taken

    def grid(self, max_points: int = 10) -> dict[str, list[Any]]:
        """Every sampler-side name with a finite list of values, for Optuna's GridSampler.

        Floats without ``step`` are split into ``max_points`` points (log-spaced for log).
        """
        out: dict[str, list[Any]] = {}
        _grid_section(out, "family", "", self.families, max_points)
        _grid_section(out, "optimizer", "optimizer", self.optimizer, max_points)
        _grid_section(out, "schedule", "schedule", self.schedule, max_points)
        for k, d in self.training.items():
            _grid_leaf(out, f"training.{k}", d, max_points)
        return out


def _flat_hint(hint: Mapping[str, Any]) -> dict[str, Any]:
    """A nested config's values under every name ``sample`` may suggest them by."""
    flat: dict[str, Any] = {}
    family = hint.get("family")
    if family:
        flat["family"] = family
        flat.update({f"{family}.{k}": v for k, v in hint.get("model", {}).items()})
    for section in ("optimizer", "schedule"):
        values = dict(hint.get(section, {}))
        name = values.pop("name", None)
        if name:
            flat[section] = name
        for k, v in values.items():
            flat[f"{section}.{k}"] = v
            if name:
                flat[f"{section}.{name}.{k}"] = v
    flat.update({f"training.{k}": v for k, v in hint.get("training", {}).items()})
    return flat


class _HintSuggester:
    """Answers ``sample`` with the hint's value where the distribution admits it (and
    records it), else with any admissible value, which is not recorded."""

    def __init__(self, flat: dict[str, Any]) -> None:
        self.flat = flat
        self.taken: dict[str, Any] = {}

    def _take(self, name: str, ok: bool, fallback: _T) -> _T:
        if name in self.flat and ok:
            self.taken[name] = self.flat[name]
            hint: _T = self.flat[name]  # ok: it fits the distribution
            return hint
        return fallback

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        v = self.flat.get(name)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high
        return self._take(name, ok, low)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        v = self.flat.get(name)
        ok = isinstance(v, int) and not isinstance(v, bool) and low <= v <= high and (
            (v - low) % step == 0)
        return self._take(name, ok, low)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._take(name, self.flat.get(name) in list(choices), next(iter(choices)))


def _choice_name(prefix: str, option: str, key: str) -> str:
    return f"{prefix}.{option}.{key}" if prefix else f"{option}.{key}"


def _sample_section(
    trial: Suggester, choice_name: str, prefix: str, section: Section
) -> tuple[str, dict[str, Any]]:
    names = list(section.options)
    chosen = names[0] if len(names) == 1 else trial.suggest_categorical(choice_name, names)
    own = section.options[chosen]  # an option's own range overrides a shared one
    values = {k: _suggest(trial, f"{prefix}.{k}", d) for k, d in section.shared.items()
              if k not in own}
    for k, d in own.items():
        values[k] = _suggest(trial, _choice_name(prefix, chosen, k), d)
    return chosen, values


def _suggest(trial: Suggester, name: str, dist: Distribution) -> Any:
    if isinstance(dist, Fixed):
        return dist.value
    if isinstance(dist, Float):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, Int):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, Categorical):
        if len(dist.choices) == 1:
            return dist.choices[0]
        return trial.suggest_categorical(name, list(dist.choices))
    raise TypeError(f"not a distribution: {dist!r}")


def _grid_section(out: dict[str, Any], choice_name: str, prefix: str, section: Section,
                  n: int) -> None:
    if len(section.options) > 1:
        out[choice_name] = list(section.options)
    for k, d in section.shared.items():
        _grid_leaf(out, f"{prefix}.{k}", d, n)
    for option, params in section.options.items():
        for k, d in params.items():
            _grid_leaf(out, _choice_name(prefix, option, k), d, n)


def _grid_leaf(out: dict[str, Any], name: str, dist: Distribution, n: int) -> None:
    if isinstance(dist, Fixed):
        return
    if isinstance(dist, Categorical):
        if len(dist.choices) > 1:
            out[name] = list(dist.choices)
        return
    if isinstance(dist, Int):
        values = list(range(dist.low, dist.high + 1, dist.step))
        if len(values) > n:
            values = sorted({values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)})
        out[name] = values
        return
    if dist.step:
        count = math.floor((dist.high - dist.low) / dist.step + 1e-9) + 1
        out[name] = [dist.low + i * dist.step for i in range(count)][: max(n, 1) * 10]
        return
    if dist.log:
        lo, hi = math.log(dist.low), math.log(dist.high)
        out[name] = [math.exp(lo + (hi - lo) * i / (n - 1)) for i in range(n)]
    else:
        out[name] = [dist.low + (dist.high - dist.low) * i / (n - 1) for i in range(n)]


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every parameter the space left out set to its spec default, so a
    trial's config alone rebuilds and retrains it (and MLflow shows every value)."""
    from autodl.models import get_family
    from autodl.train import (
        OPTIMIZER_COMMON,
        OPTIMIZER_OPTIONS,
        SCHEDULE_COMMON,
        SCHEDULE_OPTIONS,
        TRAINING,
        option_defaults,
    )

    def fill(values: Mapping[str, Any], *tables: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: p.default for table in tables for k, p in table.items()}
        out.update(values)
        return out

    def option(values: Mapping[str, Any], common: Mapping[str, Any],
               options: Mapping[str, Any]) -> dict[str, Any]:
        own = option_defaults(options[values["name"]], {})
        return {**fill({}, common), **own, **values}

    return {
        "family": config["family"],
        "model": fill(config["model"], get_family(config["family"]).params),
        "optimizer": option(config["optimizer"], OPTIMIZER_COMMON, OPTIMIZER_OPTIONS),
        "schedule": option(config["schedule"], SCHEDULE_COMMON, SCHEDULE_OPTIONS),
        "training": fill(config["training"], TRAINING),
    }


def flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as MLflow-style params: ``family``, ``model.depth``,
    ``optimizer.name``, ``optimizer.lr``, ``training.batch_size``..."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            for k, v in flatten_config(value).items():
                flat[f"{key}.{k}"] = v
        else:
            flat[key] = value
    return flat
