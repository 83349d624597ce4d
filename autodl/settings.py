"""Run settings: CLI flags / API arguments, then the space's defaults, then built-ins."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from autodl.errors import UsageError

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

__all__ = ["DEFAULT_TRIALS", "SearchSettings", "budget", "check_name", "strategy_name"]

DEFAULT_TRIALS = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(value: str, what: str) -> str:
    """Study / experiment names end up in paths: letters, digits, ``.``, ``_``, ``-`` only."""
    if not _NAME.match(value) or ".." in value:
        raise UsageError(
            f"{what} name {value!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', '..', '#' or spaces)", key=what,
        )
    return value


@dataclass(frozen=True)
class SearchSettings:
    space: str = "quickstart"
    data: str | None = None
    target: str | None = None
    text_column: str | None = None
    task: str = "auto"
    trials: int | None = None
    epochs: int | None = None
    timeout: float | None = None
    backend: str = "optuna"
    sampler: str | BaseSampler | None = None  # a name (YAML, CLI) or an Optuna object (API)
    pruner: str | BasePruner | None = None
    study: str | None = None
    storage: str | None = None
    tracking_uri: str | None = None
    tracking: bool = True
    workers: int | None = None
    devices: str = "auto"
    trials_per_device: int = 1
    seed: int | None = None
    out: str | None = None
    resume: bool = False
    export: bool = True
    cv: int | None = None  # k-fold cross-validation (None: by data size, see autodl.selection)
    holdout: bool = False  # one validation split whatever the data size
    refit: bool = True  # retrain the chosen configuration on train + validation
    ensemble: int | None = None  # greedy selection rounds (0: none; None: the default)
    register: str | None = None
    max_consecutive_failures: int = 5
    trial_memory_gb: float | None = None
    batch_trials: int | None = None  # trials of one architecture trained at once (None: auto)
    amp: bool = True  # mixed precision on GPUs (bf16 where supported, else fp16)
    tf32: bool = True  # TF32 matmuls and convolutions on Ampere+ GPUs
    cudnn_benchmark: bool = True  # cuDNN autotuning
    quiet: bool = False
    max_yaml_mb: float = 1.0  # a space file larger than this is refused before parsing
    ray_address: str | None = None  # --backend ray: join this cluster (default: start one)
    ray_scheduler: str = "asha"  # asha | hyperband | pbt | median
    cpus_per_trial: float | None = None  # --backend ray (default 1)
    gpus_per_trial: float | None = None  # --backend ray, fractions share a GPU

    def check(self) -> SearchSettings:
        for key in ("trials", "epochs", "workers", "trials_per_device", "max_consecutive_failures",
                    "batch_trials"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"--{key.replace('_', '-')}: expected a positive integer, "
                                 f"got {value!r}", key=key)
        if self.ensemble is not None and (not isinstance(self.ensemble, int)
                                          or self.ensemble < 0):
            raise UsageError(f"--ensemble: expected N >= 0 selection rounds (0: no "
                             f"ensemble), got {self.ensemble!r}", key="ensemble")
        if self.trial_memory_gb is not None and self.trial_memory_gb <= 0:
            raise UsageError(f"--trial-memory-gb: expected GB > 0, got {self.trial_memory_gb}",
                             key="trial_memory_gb")
        if not self.max_yaml_mb > 0:
            raise UsageError(f"--max-yaml-mb: expected MB > 0, got {self.max_yaml_mb}",
                             key="max_yaml_mb")
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"--timeout: expected seconds > 0, got {self.timeout}", key="timeout")
        if self.task not in ("auto", "classification", "regression"):
            raise UsageError(f"--task: expected auto, classification or regression, "
                             f"got {self.task!r}", key="task")
        if self.backend not in ("optuna", "ray"):
            raise UsageError(f"--backend: expected optuna or ray, got {self.backend!r}",
                             key="backend")
        if self.study is not None:
            check_name(self.study, "study")
        if self.cv is not None and self.holdout:
            raise UsageError("--cv and --holdout exclude each other: give one", key="cv")
        self._check_ray()
        self._check_strategies()
        return self

    def _check_ray(self) -> None:
        if self.ray_scheduler not in ("asha", "hyperband", "pbt", "median"):
            raise UsageError(f"--ray-scheduler: expected asha, hyperband, pbt or median, "
                             f"got {self.ray_scheduler!r}", key="ray_scheduler")
        if self.cpus_per_trial is not None and not self.cpus_per_trial > 0:
            raise UsageError(f"--cpus-per-trial: expected CPUs > 0, got {self.cpus_per_trial!r}",
                             key="cpus_per_trial")
        if self.backend == "ray" and self.ray_scheduler == "pbt" and self.trials is None \
                and self.timeout is not None:  # --timeout alone: no trial budget (budget())
            raise UsageError("--ray-scheduler pbt evolves a population of --trials trials: "
                             "pass --trials N (with --timeout, the search stops at whichever "
                             "comes first)", key="trials")
        if self.gpus_per_trial is not None and not self.gpus_per_trial >= 0:
            raise UsageError("--gpus-per-trial: expected GPUs >= 0 (a fraction shares a GPU), "
                             f"got {self.gpus_per_trial!r}", key="gpus_per_trial")

    def with_defaults(self, defaults: Any) -> SearchSettings:
        """The space's ``defaults`` where no flag was given (``--trials`` and ``--timeout``
        as :func:`budget` says)."""
        trials, timeout = budget(self.trials, self.timeout, defaults.trials, defaults.timeout)
        return self.with_(
            data=self.data or defaults.data, trials=trials, timeout=timeout,
            epochs=self.epochs or defaults.epochs,
            sampler=defaults.sampler if self.sampler is None else self.sampler,
            pruner=defaults.pruner if self.pruner is None else self.pruner,
            seed=self.seed if self.seed is not None else defaults.seed,
            # a flag beats the space: --cv K over `holdout: true`, --holdout over `cv: K`
            cv=self.cv if self.cv is not None or self.holdout else defaults.cv,
            holdout=self.holdout or (self.cv is None and defaults.holdout))

    def _check_strategies(self) -> None:
        """``sampler`` / ``pruner``: a name, or an object of Optuna's base class (only the
        Python API can pass one; names are checked where they are built)."""
        for key in ("sampler", "pruner"):
            value = getattr(self, key)
            if value is None or isinstance(value, str):
                continue
            import optuna

            base = optuna.samplers.BaseSampler if key == "sampler" else optuna.pruners.BasePruner
            if not isinstance(value, base):
                raise UsageError(f"{key}: expected a name or an optuna.{key}s.{base.__name__}, "
                                 f"got {value!r}", key=key)

    def with_(self, **changes: Any) -> SearchSettings:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, as recorded (study attrs, MLflow) and sent to other processes:
        a sampler or pruner object as its class name."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(sampler=strategy_name(self.sampler), pruner=strategy_name(self.pruner))
        return out


def strategy_name(value: Any) -> str | None:
    """A sampler's or pruner's name: the name it was given, or its object's class name."""
    return value if value is None or isinstance(value, str) else type(value).__name__


def budget(trials: int | None, timeout: float | None, default_trials: int | None,
           default_timeout: float | None) -> tuple[int | None, float | None]:
    """``(trials, timeout)`` of a search, ``None`` for no limit; the search stops at whichever
    comes first. ``--timeout`` without ``--trials`` runs until the time is up (the space's
    ``defaults.trials`` does not apply), and so does a space whose defaults give a timeout
    and no trial count; with neither anywhere, :data:`DEFAULT_TRIALS`."""
    if trials is not None:
        return trials, timeout or default_timeout
    if timeout is not None:
        return None, timeout
    if default_trials is None and default_timeout is not None:
        return None, default_timeout
    return default_trials or DEFAULT_TRIALS, default_timeout
