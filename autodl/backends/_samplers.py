"""Optuna samplers and pruners by name (an Optuna object, from the Python API, is used as
it is: its own seed and settings)."""

from __future__ import annotations

from typing import Any

from autodl.errors import UsageError

__all__ = ["PRUNERS", "SAMPLERS", "first_rung", "make_pruner", "make_sampler"]

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2")
PRUNERS = ("hyperband", "successive_halving", "median", "percentile", "none")


def make_sampler(name: Any, seed: int | None, grid: dict[str, list[Any]] | None = None) -> Any:
    if not isinstance(name, str):
        return name
    import optuna.samplers as s

    if name == "tpe":
        return s.TPESampler(seed=seed, n_startup_trials=5)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False,
                              independent_sampler=s.TPESampler(seed=seed))
    if name == "gp":
        return s.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return s.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return s.GridSampler(grid or {}, seed=seed)
    if name == "nsga2":
        return s.NSGAIISampler(seed=seed)
    raise UsageError(f"--sampler: unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}",
                     key="sampler")


def first_rung(epochs: int) -> int:
    """The first epoch any pruner judges a trial at: a fifth of the budget. At epoch 1 (8-10
    optimizer steps on small data) a convolutional network with batch norm is still near
    chance where an MLP is not: on UCR GunPoint and OSULeaf, Hyperband with a first rung at
    epoch 1 pruned the portfolio's FCN and InceptionTime there, which at 30 epochs were the
    best models (0.98-1.00 and 0.88-0.96 cross-validated accuracy, the MLP's 0.90 and
    0.60)."""
    return max(1, epochs // 5)


def make_pruner(name: Any, epochs: int) -> Any:
    if not isinstance(name, str):
        return name
    import optuna.pruners as p

    rung = first_rung(epochs)
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=rung, max_resource=max(epochs, 1),
                                 reduction_factor=3)
    if name == "successive_halving":
        return p.SuccessiveHalvingPruner(min_resource=rung, reduction_factor=3)
    if name == "median":
        return p.MedianPruner(n_startup_trials=4, n_warmup_steps=rung)
    if name == "percentile":
        return p.PercentilePruner(33.0, n_startup_trials=4, n_warmup_steps=rung)
    if name == "none":
        return p.NopPruner()
    raise UsageError(f"--pruner: unknown pruner {name!r}; valid: {', '.join(PRUNERS)}",
                     key="pruner")
