"""The records that cross process boundaries, each defined once.

- ``TrialSpec``: what the parent (or Ray's trainable) asks a worker to train;
- ``Outcome``: how a trial ended, as a worker reports it (also the JSON Ray's trainable
  sends and the driver reads);
- the pipe messages between the search's parent process and its workers, one frozen
  dataclass per kind. Parent -> worker: ``LoadData`` once, then ``RunTrial``,
  ``RunGroup`` (trials of one architecture trained together), ``Refit``,
  ``ChooseEnsemble``, ``AssembleEnsemble``, ``TestModel``, ``ExportModel``, ``Stop``;
  ``EpochAnswer`` answers each ``EpochReport``. Worker -> parent: ``Ready``,
  ``EpochReport``, ``Done`` (the outcomes of trials that ended together: one trial, or
  group members that ended in one epoch), and one ``Reply`` per end-phase request
  (``Refitted``, ``EnsembleChosen``, ``EnsembleAssembled``, ``Tested``, ``Exported``).
  The pool itself yields ``Died`` for a worker whose process ended. The export worker
  (``_exporter``) speaks ``ExportModel``/``Exported`` too, and ``Warm`` once.

Specs and outcomes stay plain dicts at run time (TypedDicts): they are stored as Optuna
user attributes and sent through Ray as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

__all__ = [
    "AssembleEnsemble",
    "ChooseEnsemble",
    "Died",
    "Done",
    "EnsembleAssembled",
    "EnsembleChosen",
    "EpochAnswer",
    "EpochReport",
    "ExportModel",
    "Exported",
    "FromWorker",
    "LoadData",
    "Outcome",
    "Ready",
    "Refit",
    "Refitted",
    "Reply",
    "RunGroup",
    "RunTrial",
    "Stop",
    "TestModel",
    "Tested",
    "ToWorker",
    "TrialSpec",
    "Warm",
]


class _SpecBase(TypedDict):
    number: Any  # the trial's number (Ray: its directory name, ``ray-<id>``)
    config: dict[str, Any]  # the nested config: family, model, optimizer, training
    epochs: int  # the budget
    objectives: list[tuple[str, str]] | list[list[str]]  # [(metric, direction)]


class TrialSpec(_SpecBase, total=False):
    seed: int
    memory_limit_gb: float | None  # --trial-memory-gb
    amp: bool
    cv: dict[str, Any]  # {"k", "seed"}: cross-validate (selection.Protocol.trial_spec)
    resume_from: str  # the trial directory whose checkpoint it continues
    checkpoint_every_s: float
    best_epoch: int  # a refit: train this many epochs (the search's best)


class Outcome(TypedDict, total=False):
    number: Any
    state: str  # COMPLETE | PRUNED | FAIL
    values: list[float] | None  # one per objective (COMPLETE only)
    reason: str | None  # pruned, oom, error, environment, interrupted, timeout, ...
    detail: str
    traceback: str
    fault: dict[str, Any]  # the machine's fault: {kind, file} (reason "environment")
    best_epoch: int
    epochs_run: int
    stop_reason: str | None
    metrics: dict[str, float]  # the best epoch's
    params_count: int
    duration_s: float
    worker_rss_mb: float
    cores: list[int]
    folds: int
    device: str
    precision: str
    resumed_from_epoch: int
    batched: int  # the size of the stacked group it trained in (autodl.workers._group)


# --- parent -> worker -----------------------------------------------------------------
@dataclass(frozen=True)
class LoadData:
    path: str  # the prepared data (.npz)
    out_dir: str
    threads: int
    cores: tuple[int, ...]


@dataclass(frozen=True)
class RunTrial:
    spec: TrialSpec


@dataclass(frozen=True)
class RunGroup:
    specs: list[TrialSpec]


@dataclass(frozen=True)
class Refit:
    spec: TrialSpec  # with ``best_epoch``


@dataclass(frozen=True)
class ChooseEnsemble:
    spec: dict[str, Any]  # candidates, rounds, metric, direction, cv


@dataclass(frozen=True)
class AssembleEnsemble:
    spec: dict[str, Any]  # members [{trial, weight, weights_dir}], dest, best


@dataclass(frozen=True)
class TestModel:
    number: int
    config: dict[str, Any]
    weights: str | None = None  # a refit's weights.pt; None: the trial's own


@dataclass(frozen=True)
class ExportModel:
    number: int
    dest: str
    formats: list[str]
    weights_dir: str | None = None  # a refit's or ensemble's folder; None: the trial's
    out_dir: str | None = None  # the study's folder (the export worker serves any)


@dataclass(frozen=True)
class EpochAnswer:
    action: Literal["continue", "prune", "finish"]  # finish: time is up, end it now


@dataclass(frozen=True)
class Stop:
    """Stop serving (between trials) or checkpoint and stop (the answer to an epoch)."""


# --- worker -> parent -----------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    worker: int
    pid: int
    device: str
    threads: int
    cores: list[int]


@dataclass(frozen=True)
class EpochReport:
    number: Any
    epoch: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Done:
    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True)
class Died:
    exitcode: int | None


@dataclass(frozen=True)
class Reply:
    """The answer to one end-phase request: ``result`` is what the request produced."""

    number: int
    result: Any


@dataclass(frozen=True)
class Refitted(Reply):
    pass


@dataclass(frozen=True)
class EnsembleChosen(Reply):
    pass


@dataclass(frozen=True)
class EnsembleAssembled(Reply):
    pass


@dataclass(frozen=True)
class Tested(Reply):
    pass


@dataclass(frozen=True)
class Exported(Reply):
    pass


@dataclass(frozen=True)
class Warm:
    seconds: float  # the export worker's warm-up took this long


ToWorker = (LoadData | RunTrial | RunGroup | Refit | ChooseEnsemble | AssembleEnsemble
            | TestModel | ExportModel | EpochAnswer | Stop)
FromWorker = Ready | EpochReport | Done | Died | Reply
