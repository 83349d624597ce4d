"""Every use of Optuna's private API in autodl, each guarded, with the public way noted.

autodl claims trials across processes within an exact budget (``autodl.backends._study``)
and reports a batched group's epochs without a storage write per member. Optuna's public
API covers most of it; what it does not is here, each access written so that an Optuna
release that renames or removes the member falls back to public calls (slower, or one
write more) or, where there is none, raises an error that says which member is gone.
pyproject bounds optuna below 6; CI runs the tests on the lowest and on the newest
version it allows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["append_user_attrs", "forget_cached_trials", "frozen_study_id", "journal_lock",
           "journal_replay", "latest_trial", "next_study_id", "pop_waiting_trial_id",
           "replayed_studies", "replayed_trials", "storage_of", "study_id", "system_attrs",
           "trial_id"]


def _gone(what: str) -> RuntimeError:
    import optuna

    return RuntimeError(f"optuna {optuna.__version__} has no {what}, which autodl uses; "
                        "install a version that pyproject.toml accepts")


def storage_of(study: Any) -> BaseStorage:
    """``Study._storage``. Public way: none on ``Study`` (``optuna.load_study`` takes a
    storage but never hands it back); ``Trial.storage`` is public, and is preferred where
    a trial is at hand."""
    storage: BaseStorage | None = getattr(study, "_storage", None)
    if storage is None:
        raise _gone("Study._storage")
    return storage


def study_id(study: Any) -> int:
    """``Study._study_id``. Public way: ``storage.get_study_id_from_name(study_name)``,
    one storage read, used when the attribute is gone."""
    value = getattr(study, "_study_id", None)
    if value is None:
        return storage_of(study).get_study_id_from_name(study.study_name)
    return int(value)


def trial_id(trial: Any, study: Any = None) -> int:
    """``Trial._trial_id`` / ``FrozenTrial._trial_id``: the storage's key of a trial.
    Public way: ``storage.get_trial_id_from_study_id_trial_number`` (one read), used when
    the attribute is gone and ``study`` is given."""
    value = getattr(trial, "_trial_id", None)
    if value is not None:
        return int(value)
    study = study if study is not None else getattr(trial, "study", None)
    if study is None:
        raise _gone("Trial._trial_id")
    return storage_of(study).get_trial_id_from_study_id_trial_number(study_id(study),
                                                                     trial.number)


def forget_cached_trials(study: Any) -> None:
    """``study._thread_local.cached_all_trials = None``: the next read sees the trials
    other processes created since. Public way: none (``Study.get_trials`` may answer from
    that cache); where the member is gone there is no cache to clear, nothing to do."""
    local = getattr(study, "_thread_local", None)
    if local is not None:
        with contextlib.suppress(AttributeError):
            local.cached_all_trials = None


def pop_waiting_trial_id(study: Any) -> int | None:
    """``Study._pop_waiting_trial_id()``: take a WAITING trial with the storage's
    compare-and-set WAITING -> RUNNING, as ``Study.ask`` does. Public way: ``Study.ask``,
    which also creates a trial when none waits (autodl creates trials only within the
    budget); when the method is gone, the same loop over public storage calls."""
    pop = getattr(study, "_pop_waiting_trial_id", None)
    if pop is not None:
        popped: int | None = pop()
        return popped
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    storage = storage_of(study)
    waiting = storage.get_all_trials(study_id(study), deepcopy=False,
                                     states=(optuna.trial.TrialState.WAITING,))
    for frozen in waiting:
        tid = trial_id(frozen, study)
        with contextlib.suppress(UpdateFinishedTrialError):
            if storage.set_trial_state_values(tid, optuna.trial.TrialState.RUNNING):
                return tid
    return None


def system_attrs(trial: Any) -> dict[str, Any]:
    """A claimed trial's system attributes (``fixed_params``). Public way: none on
    ``Trial`` (its ``system_attrs`` is deprecated); ``_cached_frozen_trial`` when present,
    else one storage read."""
    frozen = getattr(trial, "_cached_frozen_trial", None)
    if frozen is None:
        frozen = trial.storage.get_trial(trial_id(trial))
    return dict(frozen.system_attrs)


def latest_trial(trial: Any) -> Any:
    """``Trial._get_latest_trial()``: the trial as its pruner sees it, a copy the caller
    may change (autodl adds an epoch's value to ask the pruner without a storage write).
    Public way: ``trial.report`` then ``trial.should_prune()``, one write per epoch per
    member of a batched group; when the method is gone, a copy read from the storage."""
    get = getattr(trial, "_get_latest_trial", None)
    if get is not None:
        return get()
    import copy

    return copy.deepcopy(trial.storage.get_trial(trial_id(trial)))


def append_user_attrs(trial: Any, attrs: dict[str, Any]) -> bool:
    """On a journal file, set all of ``attrs`` in one append (one lock and fsync) instead
    of one each: a trial's outcome is about ten attributes. Public way: one
    ``trial.set_user_attr`` per item, which the caller does when this returns False (not a
    journal storage, or its internals differ: ``_backend``, ``_thread_lock``,
    ``_replay_result``, ``_sync_with_backend``, ``JournalOperation``)."""
    from optuna.storages import JournalStorage

    storage = trial.storage
    needed = ("_backend", "_thread_lock", "_replay_result", "_sync_with_backend")
    if not isinstance(storage, JournalStorage) or not all(hasattr(storage, n) for n in needed):
        return False
    try:
        from optuna.storages.journal._storage import JournalOperation
    except ImportError:
        return False
    with storage._thread_lock:
        worker = storage._replay_result.worker_id
        storage._backend.append_logs([
            {"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker,
             "trial_id": trial_id(trial), "user_attr": {key: value}}
            for key, value in attrs.items()])
        storage._sync_with_backend()
    frozen = getattr(trial, "_cached_frozen_trial", None)
    if frozen is not None:  # the trial's own view, as set_user_attr keeps it
        frozen.user_attrs.update(attrs)
    return True


# ---------------------------------------------------------------- the journal's replay
# ``autodl doctor`` rebuilds a journal file from its intact records and checks each with
# Optuna's own replay, what JournalStorage runs when it opens the file. Public way: none
# (JournalStorage replays the whole file or raises); without these the doctor cannot
# tell which record breaks the file, and says so.


def journal_replay(worker_id: str) -> Any:
    """``optuna.storages.journal._storage.JournalStorageReplayResult``: a replay that
    records are applied to one at a time (``apply_logs``)."""
    try:
        from optuna.storages.journal._storage import JournalStorageReplayResult
    except ImportError:
        raise _gone("optuna.storages.journal._storage.JournalStorageReplayResult") from None
    return JournalStorageReplayResult(worker_id)


def replayed_studies(replay: Any) -> dict[int, Any]:
    """The replay's studies by id (``_studies``)."""
    studies: dict[int, Any] | None = getattr(replay, "_studies", None)
    if studies is None:
        raise _gone("JournalStorageReplayResult._studies")
    return studies


def replayed_trials(replay: Any) -> list[Any]:
    """The replay's trials by id (``_trials``)."""
    trials: list[Any] | None = getattr(replay, "_trials", None)
    if trials is None:
        raise _gone("JournalStorageReplayResult._trials")
    return trials


def next_study_id(replay: Any) -> int:
    """The id the replay gives the next study it creates (``_next_study_id``)."""
    value = getattr(replay, "_next_study_id", None)
    if value is None:
        return len(replayed_studies(replay))  # ids are handed out 0, 1, 2... and never reused
    return int(value)


def frozen_study_id(study: Any) -> int:
    """``FrozenStudy._study_id``. Public way: none on FrozenStudy (a replay has no
    lookup by name), so a clear error when the attribute is gone."""
    value = getattr(study, "_study_id", None)
    if value is None:
        raise _gone("FrozenStudy._study_id")
    return int(value)


@contextlib.contextmanager
def journal_lock(path: str) -> Iterator[None]:
    """Optuna's own lock on a journal file, so that no process appends while it is
    rewritten: ``optuna.storages.journal._file.get_lock_file`` (which also honours a
    lock's grace period); the public ``acquire``/``release`` of the lock when it is gone."""
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    try:
        from optuna.storages.journal._file import get_lock_file
    except ImportError:
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    with get_lock_file(lock):
        yield
