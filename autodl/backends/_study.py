"""The Optuna study as the search's durable record: budget, ownership, re-queueing.

The trial budget lives in the storage as WAITING trials ("tokens"), enqueued once when the
study is created (one per family first, then empty ones that the sampler fills). Every
process that runs trials (the search's parent, ``autodl worker`` on other hosts) claims a
token atomically and never creates a trial of its own, so the budget is exact however many
processes share the study. Each claimed trial records its owner (host:pid); on resume a
RUNNING trial whose owner on this host is dead is failed and re-queued once.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["OWNER", "REQUEUED", "REQUEUED_FROM", "claim_member", "claim_trial", "counted_trials",
           "others_running", "owner_id", "owner_is_dead", "release", "requeue", "requeue_stale",
           "set_user_attrs",
           "top_up_budget"]

REQUEUED = "autodl.requeued"
REQUEUED_FROM = "autodl.requeued_from"
OWNER = "autodl.owner"


def _states(*names: str) -> tuple[Any, ...]:
    import optuna

    return tuple(optuna.trial.TrialState[n] for n in names)


def counted_trials(study: Any) -> list[Any]:
    """Finished trials that count against ``--trials`` (a killed trial that was re-queued
    does not; its re-run does)."""
    done = study.get_trials(deepcopy=False, states=_states("COMPLETE", "PRUNED", "FAIL"))
    return [t for t in done if not t.user_attrs.get(REQUEUED)]


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def top_up_budget(study: Any, trials: int, grid: dict[str, list[Any]] | None = None,
                  seed: int | None = None) -> int:
    """Enqueue tokens until finished + running + waiting trials reach ``trials``; returns
    how many trials are still to run (waiting ones included). Tokens are empty (the sampler
    fills them), or, for a grid search, the grid points not tried yet in a seeded order."""
    running = study.get_trials(deepcopy=False, states=_states("RUNNING"))
    waiting = study.get_trials(deepcopy=False, states=_states("WAITING"))
    counted = counted_trials(study)
    missing = max(0, trials - len(counted) - len(running) - len(waiting))
    if grid is None:
        tokens: list[dict[str, Any]] = [{}] * missing
    else:
        tokens = _untried_grid_points(grid, [*counted, *running, *waiting], missing, seed)
    for params in tokens:
        study.enqueue_trial(params, skip_if_exists=False)
    return max(0, len(waiting) + len(tokens))


def _untried_grid_points(grid: dict[str, list[Any]], trials: list[Any], n: int,
                         seed: int | None) -> list[dict[str, Any]]:
    """Up to ``n`` grid points (every name fixed, as GridSampler requires) no trial has."""
    import itertools
    import random

    names = sorted(grid)
    points = list(itertools.product(*(grid[k] for k in names)))
    random.Random(seed).shuffle(points)
    seen = {tuple(_fixed(t).get(k) for k in names) for t in trials}
    return [dict(zip(names, p, strict=True)) for p in points if p not in seen][:n]


def _fixed(trial: Any) -> dict[str, Any]:
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def claim_trial(study: Any) -> Any | None:
    """Take one WAITING trial (atomically, against every other process), or None when the
    budget is used up. The same claim ``Study.ask`` makes, without its fall-back of creating
    a new trial (which would overshoot the budget)."""
    trial_id = _pop_waiting(study)
    return None if trial_id is None else _owned_trial(study, trial_id)


def claim_member(study: Any, fixed: dict[str, Any]) -> tuple[Any | None, bool]:
    """Claim a trial for a batched group whose members share the parameters ``fixed``
    (the sampler draws the rest). Returns ``(trial, True)`` when an empty token was claimed
    and given ``fixed``; ``(trial, False)`` when the claimed trial has parameters of its own
    (a family's first trial, a grid point, a re-queued trial): it is the caller's to run on
    its own; ``(None, False)`` when the budget is used up."""
    trial_id = _pop_waiting(study)
    if trial_id is None:
        return None, False
    frozen = study._storage.get_trial(trial_id)
    joins = not frozen.system_attrs.get("fixed_params") and REQUEUED_FROM not in frozen.user_attrs
    if joins:
        study._storage.set_trial_system_attr(trial_id, "fixed_params", dict(fixed))
    return _owned_trial(study, trial_id), joins


def release(study: Any, trial: Any) -> None:
    """Put a claimed trial that never started back into the budget (as a re-queued copy with
    the same fixed parameters)."""
    fixed = trial._cached_frozen_trial.system_attrs.get("fixed_params", {})
    requeue(study, trial._trial_id, trial.number, {**fixed, **trial.params})


def _pop_waiting(study: Any) -> int | None:
    study._thread_local.cached_all_trials = None  # see every process's claims
    return study._pop_waiting_trial_id()


def _owned_trial(study: Any, trial_id: int) -> Any:
    import optuna

    trial = optuna.Trial(study, trial_id)
    trial.set_user_attr(OWNER, owner_id())
    return trial


def set_user_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    """``trial.set_user_attr`` for each item; on a journal file, one append (one fsync)
    for all of them instead of one each (a trial's outcome is about ten attributes)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal._storage import JournalOperation

    storage = trial.storage
    if not isinstance(storage, JournalStorage) or not hasattr(storage, "_backend"):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    with storage._thread_lock:
        worker = storage._replay_result.worker_id
        storage._backend.append_logs([
            {"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker,
             "trial_id": trial._trial_id, "user_attr": {key: value}}
            for key, value in attrs.items()])
        storage._sync_with_backend()
    trial._cached_frozen_trial.user_attrs.update(attrs)


def requeue(study: Any, trial_id: int, number: int, params: dict[str, Any]) -> None:
    """Fail a trial that was cut short (reason ``interrupted``) and enqueue its parameters
    once more; the re-run continues from the trial's checkpoint when there is one."""
    import optuna

    storage = study._storage
    storage.set_trial_user_attr(trial_id, REQUEUED, True)
    storage.set_trial_user_attr(trial_id, "fail_reason", "interrupted")
    storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    study.enqueue_trial(params, user_attrs={REQUEUED_FROM: number}, skip_if_exists=False)


def owner_is_dead(owner: str | None) -> bool:
    """A trial with no owner, or owned by a process of this host that no longer exists.
    Trials owned by other hosts are left to them."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def others_running(study: Any) -> bool:
    """Trials of this study running in other live processes (``autodl worker``)."""
    me = owner_id()
    study._thread_local.cached_all_trials = None
    return any(t.user_attrs.get(OWNER) != me and not owner_is_dead(t.user_attrs.get(OWNER))
               for t in study.get_trials(deepcopy=False, states=_states("RUNNING")))


def requeue_stale(study: Any) -> list[Any]:
    """Fail and re-queue RUNNING trials whose process died (kill -9, power loss); returns
    them (as they were before). Optuna's journal storage has no heartbeat, and RDB's only
    acts after a grace period, so autodl checks the owner itself."""
    stale = [t for t in study.get_trials(deepcopy=False, states=_states("RUNNING"))
             if owner_is_dead(t.user_attrs.get(OWNER))]
    for t in stale:
        requeue(study, t._trial_id, t.number, t.params)
    return stale
