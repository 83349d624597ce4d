"""The Optuna study as the search's durable record: budget, ownership, re-queueing.

The trial budget is the study's user attribute ``autodl.trials`` (``--trials``, the total
across resumes; ``None``: no limit, ``--timeout`` ends the search). Trials are created as
they are claimed, never ahead: every process that runs trials (the search's parent,
``autodl worker`` on other hosts) claims one through :class:`Slots`, which keeps the budget
exact however many processes share the study (the proof is in its docstring). Each claimed
trial records its owner (host:pid); on resume a RUNNING trial whose owner on this host is
dead is failed and re-queued once. A waiting trial is claimed in two writes (Optuna's
WAITING -> RUNNING, then the owner), so a RUNNING trial with no owner yet counts as dead
only once it has been running for :data:`CLAIM_GRACE_S`. Why the search stopped is
``autodl.stopped``; a process that joins a stopped study claims nothing.
"""

from __future__ import annotations

import math
import os
import socket
from typing import TYPE_CHECKING, Any, Literal

from autodl.backends import _optuna_private as private

if TYPE_CHECKING:
    import datetime

__all__ = ["BUDGET", "CLAIM_GRACE_S", "OWNER", "REQUEUED", "REQUEUED_FROM", "SALVAGED",
           "STOPPED", "TIMEOUT", "UNUSED", "Slots", "counted_trials", "is_orphaned", "is_void",
           "others_running", "owner_id", "owner_is_dead", "release", "requeue", "requeue_stale",
           "set_user_attrs", "study_direction"]

REQUEUED = "autodl.requeued"
REQUEUED_FROM = "autodl.requeued_from"
OWNER = "autodl.owner"
UNUSED = "autodl.unused"  # a trial claimed for the budget but never run: counted nowhere
BUDGET = "autodl.trials"  # study: the trial budget, None for none (until --timeout)
TIMEOUT = "autodl.timeout"  # study: the search's --timeout (seconds), for summary.json
STOPPED = "autodl.stopped"  # study: why the search stopped: trials|timeout|interrupted|failed
SALVAGED = "autodl.salvaged"  # trial: a placeholder `autodl doctor` made for a lost record
# A claim of a waiting trial is two writes: WAITING -> RUNNING (compare-and-set), then the
# owner. Between them the trial is RUNNING with no owner; it is judged dead only after this
# many seconds of running (the second write follows the first at once in a live process).
CLAIM_GRACE_S = 60.0


def study_direction(name: str) -> Literal["minimize", "maximize"]:
    """An objective's direction as Optuna's ``create_study`` takes it (the same string)."""
    if name == "minimize":
        return "minimize"
    if name == "maximize":
        return "maximize"
    raise ValueError(f"an objective's direction is minimize or maximize, not {name!r}")


def _states(*names: str) -> tuple[Any, ...]:
    import optuna

    return tuple(optuna.trial.TrialState[n] for n in names)


def is_void(trial: Any) -> bool:
    """A trial that is no trial of the search: an unused budget slot, or a failed trial that
    was re-queued (its re-run counts). Counts, reports and the budget leave it out."""
    attrs = trial.user_attrs
    return bool(attrs.get(UNUSED) or (trial.state.name == "FAIL" and attrs.get(REQUEUED)))


def counted_trials(study: Any) -> list[Any]:
    """Finished trials that count against ``--trials`` (a killed trial that was re-queued
    does not; its re-run does)."""
    done = study.get_trials(deepcopy=False, states=_states("COMPLETE", "PRUNED", "FAIL"))
    return [t for t in done if not is_void(t)]


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Slots:
    """Claims the study's trials one at a time, within its budget, creating them as they are
    claimed (``autodl.trials``; none recorded, by an older autodl: waiting trials only).

    Every trial holds a *slot* of the budget, named by its number (a re-queued copy holds
    the slot of the trial it re-runs), unless it is marked unused. To claim, a process takes
    a WAITING trial (a family's first trial, a re-queued one) with Optuna's compare-and-set
    WAITING -> RUNNING, as ``Study.ask`` does, or, when none waits and it sees fewer than
    ``budget`` slots held, creates a RUNNING trial (one write). It runs the trial only if
    fewer than ``budget`` held slots are smaller than the trial's; otherwise it marks the
    trial unused (FAIL, ``autodl.unused``) and claims again.

    Why no more than ``budget`` slots ever run, however many processes share the study:
    both storages number a study's trials in the order they are created, one at a time (the
    journal file's lock, RDB's row lock on the study), so whoever sees a trial sees every
    trial with a smaller number. A trial's slot never changes, and a slot that ran stays
    held (re-queueing keeps it). Were more than ``budget`` slots to run, the largest of
    them was checked after all the others existed, so it saw at least ``budget`` held slots
    below its own and was not run. Processes that create the last free slots at once leave
    the larger ones unused (at most one per process but one: once the budget is held, none
    creates). A trial numbered below ``budget`` needs no check (at most that many slots are
    smaller), so a large or no budget costs one write a claim.
    """

    def __init__(self, study: Any, grid: dict[str, list[Any]] | None = None,
                 seed: int | None = None) -> None:
        self.study, self.grid, self.seed = study, grid, seed
        self.storage, self.study_id = private.storage_of(study), private.study_id(study)
        self._points: list[tuple[Any, ...]] | None = None  # the grid, in a seeded order

    def budget(self) -> int | None:
        """The study's trial budget; None: none (until ``--timeout``) or none recorded."""
        return self.storage.get_study_user_attrs(self.study_id).get(BUDGET)

    def remaining(self) -> float:
        """Trials still to run, waiting ones included (``math.inf``: no budget)."""
        budget = self.budget()
        if budget is None:
            return math.inf
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        used = [t for t in trials if t.state.name != "WAITING" and not is_void(t)]
        return max(0, budget - len(used))

    def claim(self) -> Any | None:
        """A trial to run (RUNNING, owned here), or None when the budget is used up, the
        grid is done, or the study has stopped."""
        return self._claim(None)[0]

    def claim_member(self, fixed: dict[str, Any]) -> tuple[Any | None, bool]:
        """A trial for a batched group whose members share the parameters ``fixed`` (the
        sampler draws the rest): ``(trial, True)`` when it was given ``fixed``; ``(trial,
        False)`` when it has parameters of its own (a family's first trial, a grid point, a
        re-queued trial): it is the caller's to run on its own; ``(None, False)`` when
        nothing is left to claim."""
        return self._claim(fixed)

    def _claim(self, fixed: dict[str, Any] | None) -> tuple[Any | None, bool]:
        import optuna

        attrs = self.storage.get_study_user_attrs(self.study_id)
        if attrs.get(STOPPED):
            return None, False
        budget = attrs.get(BUDGET)
        private.forget_cached_trials(self.study)  # see every process's claims
        while True:
            trial_id, joins = private.pop_waiting_trial_id(self.study), False
            if trial_id is not None:
                self.storage.set_trial_user_attr(trial_id, OWNER, owner_id())
            elif BUDGET in attrs:
                trial_id = self._create(budget, fixed)
                joins = fixed is not None and self.grid is None
            if trial_id is None:
                return None, False
            if self._within(trial_id, budget):
                return optuna.Trial(self.study, trial_id), joins
            self.retire(trial_id)

    def _create(self, budget: int | None, fixed: dict[str, Any] | None) -> int | None:
        """A new RUNNING trial owned here (with ``fixed``, or the next grid point), when this
        process sees a free slot and, for a grid search, a point no trial has; else None."""
        params = fixed or {}
        if budget is not None or self.grid is not None:
            trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
            if budget is not None and len(trials) >= budget and len(_held(trials)) >= budget:
                return None
            if self.grid is not None:
                point = self._next_point(trials)
                if point is None:
                    return None
                params = point
        return self.storage.create_new_trial(self.study_id, _running(params))

    def _within(self, trial_id: int, budget: int | None) -> bool:
        """Fewer than ``budget`` held slots below this trial's and, for a grid search, no
        earlier trial at its point (two processes created the same one)."""
        number = self.storage.get_trial(trial_id).number
        if (budget is None or number < budget) and self.grid is None:
            return True
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        trial = next(t for t in trials if t.number == number)
        if budget is not None and number >= budget:
            slots = _slots(trials)
            if len({s for s in _held(trials, slots) if s < slots[number]}) >= budget:
                return False
        return self.grid is None or not self._repeats_a_point(trial, trials)

    def _repeats_a_point(self, trial: Any, trials: list[Any]) -> bool:
        if REQUEUED_FROM in trial.user_attrs:
            return False
        names = sorted(self.grid or {})
        point = _point(trial, names)
        return any(t.number < trial.number and not t.user_attrs.get(UNUSED)
                   and _point(t, names) == point for t in trials)

    def _next_point(self, trials: list[Any]) -> dict[str, Any] | None:
        """The first grid point (every name fixed, as GridSampler requires) in a seeded
        order that no trial has."""
        import itertools
        import random

        names = sorted(self.grid or {})
        if self._points is None:
            self._points = list(itertools.product(*((self.grid or {})[k] for k in names)))
            random.Random(self.seed).shuffle(self._points)
        seen = {_point(t, names) for t in trials if not t.user_attrs.get(UNUSED)}
        return next((dict(zip(names, p, strict=True)) for p in self._points if p not in seen),
                    None)

    def retire(self, trial_id: int) -> None:
        """Mark a claimed trial that never started unused: it gives its slot back."""
        import optuna

        self.storage.set_trial_user_attr(trial_id, UNUSED, True)
        self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)

    def retire_waiting(self) -> None:
        """At a clean end (budget used, ``--timeout``, a fatal error): the WAITING trials
        nobody claimed (a family's first trial the timeout left unrun) are marked unused;
        re-queued ones stay for ``--resume`` to run first."""
        from optuna.exceptions import UpdateFinishedTrialError

        for t in self.storage.get_all_trials(self.study_id, deepcopy=False,
                                             states=_states("WAITING")):
            if REQUEUED_FROM in t.user_attrs:
                continue
            try:
                taken = self.storage.set_trial_state_values(private.trial_id(t, self.study),
                                                            _states("RUNNING")[0])
            except UpdateFinishedTrialError:
                continue
            if taken:
                self.retire(private.trial_id(t, self.study))


def _running(fixed: dict[str, Any]) -> Any:
    """A new trial's template: RUNNING, owned here, with ``fixed`` parameters."""
    import datetime

    import optuna

    return optuna.trial.FrozenTrial(
        number=-1, state=optuna.trial.TrialState.RUNNING, value=None,
        datetime_start=datetime.datetime.now(), datetime_complete=None, params={},
        distributions={}, user_attrs={OWNER: owner_id()},
        system_attrs={"fixed_params": dict(fixed)} if fixed else {}, intermediate_values={},
        trial_id=-1)


def _slots(trials: list[Any]) -> dict[int, int]:
    """Each trial's budget slot by number: its own number, or for a re-queued copy the slot
    of the trial it re-runs."""
    slots: dict[int, int] = {}
    for t in sorted(trials, key=lambda t: t.number):
        source = t.user_attrs.get(REQUEUED_FROM)
        slots[t.number] = t.number if source is None else slots.get(source, source)
    return slots


def _held(trials: list[Any], slots: dict[int, int] | None = None) -> set[int]:
    """The slots held: those of every trial not marked unused."""
    slots = _slots(trials) if slots is None else slots
    return {slots[t.number] for t in trials if not t.user_attrs.get(UNUSED)}


def _point(trial: Any, names: list[str]) -> tuple[Any, ...]:
    fixed = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    return tuple(fixed.get(k) for k in names)


def release(study: Any, trial: Any) -> None:
    """Put a claimed trial that never started back into the budget (as a re-queued copy with
    the same fixed parameters)."""
    fixed = private.system_attrs(trial).get("fixed_params", {})
    requeue(study, private.trial_id(trial), trial.number, {**fixed, **trial.params})


def set_user_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    """``trial.set_user_attr`` for each item; on a journal file, one append (one fsync)
    for all of them instead of one each (a trial's outcome is about ten attributes)."""
    if private.append_user_attrs(trial, attrs):
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def requeue(study: Any, trial_id: int, number: int, params: dict[str, Any]) -> None:
    """Fail a trial that was cut short (reason ``interrupted``) and enqueue its parameters
    once more; the re-run continues from the trial's checkpoint when there is one."""
    import optuna

    storage = private.storage_of(study)
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


def is_orphaned(trial: Any, now: datetime.datetime | None = None) -> bool:
    """A RUNNING trial nobody runs: its owner on this host is dead, it has had no owner for
    longer than :data:`CLAIM_GRACE_S` (a claim in progress has none for an instant), or
    ``autodl doctor`` re-created it from a corrupt journal."""
    import datetime

    owner = trial.user_attrs.get(OWNER)
    if trial.user_attrs.get(SALVAGED):  # re-created by `autodl doctor`: nobody runs it
        return True
    if owner:
        return owner_is_dead(owner)
    started: datetime.datetime | None = trial.datetime_start
    if started is None:
        return True
    now = now or datetime.datetime.now()
    return (now - started).total_seconds() > CLAIM_GRACE_S


def others_running(study: Any) -> bool:
    """Trials of this study running in other live processes (``autodl worker``), or being
    claimed by one."""
    me = owner_id()
    private.forget_cached_trials(study)
    return any(t.user_attrs.get(OWNER) != me and not is_orphaned(t)
               for t in study.get_trials(deepcopy=False, states=_states("RUNNING")))


def requeue_stale(study: Any, now: datetime.datetime | None = None) -> list[Any]:
    """Fail and re-queue RUNNING trials whose process died (kill -9, power loss); returns
    them (as they were before). Optuna's journal storage has no heartbeat, and RDB's only
    acts after a grace period, so autodl checks the owner itself. A trial with no owner
    yet is left alone for :data:`CLAIM_GRACE_S` (another process may be claiming it)."""
    stale = [t for t in study.get_trials(deepcopy=False, states=_states("RUNNING"))
             if is_orphaned(t, now)]
    for t in stale:
        if t.user_attrs.get(UNUSED):  # killed while giving its slot back: nothing to re-run
            private.storage_of(study).set_trial_state_values(private.trial_id(t, study),
                                                             _states("FAIL")[0])
        else:
            requeue(study, private.trial_id(t, study), t.number, t.params)
    return [t for t in stale if not t.user_attrs.get(UNUSED)]
