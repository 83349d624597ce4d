"""``autodl worker``: join a running study from this or another machine.

A study started by ``autodl search ... --storage postgresql://...`` (or any storage every
machine reaches) holds what a worker needs: the search space's YAML, the data spec, the
epochs and objectives, and the trial budget. A worker claims trials until the budget is used
up or the search has stopped (its ``--timeout``, Ctrl-C), trains them on its own devices, and
logs each to MLflow as a child run of the study's parent run. It claims as the search does
(``autodl.backends._study.Slots``), so the budget stays exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autodl.errors import UsageError
from autodl.events import SearchListener, TrialEnd

__all__ = ["join_study"]


def _await_study(name: str, storage_url: str | None, wait: float) -> Any:
    import optuna

    from autodl.backends import DEFAULT_STORAGE, open_storage

    storage = open_storage(storage_url)
    deadline = time.monotonic() + wait
    while True:
        if name in optuna.get_all_study_names(storage):
            study = optuna.load_study(study_name=name, storage=storage)
            if "autodl.settings" in study.user_attrs:  # written last by `autodl search`
                return study
        if time.monotonic() >= deadline:
            raise UsageError(f"no study {name!r} in {storage_url or DEFAULT_STORAGE}; start it "
                             "with `autodl search ... --study NAME --storage URL` (or pass "
                             "--wait SECONDS to wait for it)", key="study")
        time.sleep(0.5)


def _context(study: Any, settings: Any, listeners: Sequence[SearchListener]) -> Any:
    """The SearchContext the study was started with, rebuilt from its user attrs."""
    from autodl.backends import BUDGET, SearchContext, study_out_dir
    from autodl.runner import prepare
    from autodl.selection import choose_protocol

    attrs = study.user_attrs
    if "autodl.space_text" not in attrs:
        raise UsageError(f"study {study.study_name!r} was not started by `autodl search` "
                         "(or by an autodl too old to be joined)", key="study")
    out_dir = Path(settings.out or Path("runs") / study.study_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    space_file = out_dir / "space.yaml"
    space_file.write_text(attrs["autodl.space_text"])
    joined = _joined_settings(study, settings)
    space, data, _notes, full = prepare(settings.with_(space=str(space_file), **joined))
    data_path = study_out_dir(study) / "data.npz"
    if settings.data or not data_path.is_file():  # another machine: its own copy
        data_path = out_dir / "data.npz"
        data.save(data_path)
    return SearchContext(
        study=study.study_name, space=space, data=data, data_path=data_path,
        objectives=[tuple(o) for o in attrs["autodl.objectives"]], trials=attrs.get(BUDGET),
        epochs=int(attrs["autodl.epochs"]), timeout=settings.timeout, sampler=full.sampler,
        pruner=full.pruner, seed=None, settings=full, out_dir=out_dir, listeners=listeners,
        protocol=choose_protocol(data, full.cv, full.holdout, full.seed))


def _joined_settings(study: Any, settings: Any) -> dict[str, Any]:
    """The search's settings (its seed: the same data split), with this worker's ``--data``,
    ``--sampler`` and ``--pruner``. A study searched with a sampler or pruner object
    (``autodl.search(sampler=...)``) recorded only its class name, which cannot be rebuilt
    here: the user names one."""
    from autodl.backends import PRUNERS, SAMPLERS

    joined = dict(study.user_attrs["autodl.settings"])
    joined.update({k: getattr(settings, k) for k in ("data", "sampler", "pruner")
                   if getattr(settings, k)})
    for key, names in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        value = joined.get(key)
        if value is not None and value not in names:
            raise UsageError(
                f"study {study.study_name!r} was searched with a {value} object "
                f"(autodl.search({key}=...)), which `autodl worker` cannot rebuild here: pass "
                f"--{key} NAME to join it with one of {', '.join(names)}", key=key)
    return joined


def join_study(study_name: str, settings: Any, listeners: Sequence[SearchListener] = (),
               wait: float = 0.0) -> list[TrialEnd]:
    """Run the study's remaining trials here until none is left; returns the trials run."""
    from autodl._quiet import quiet_optuna

    with quiet_optuna():
        return _join(study_name, settings, listeners, wait)


def _join(study_name: str, settings: Any, listeners: Sequence[SearchListener],
          wait: float) -> list[TrialEnd]:
    import optuna

    from autodl.backends import Slots, TrialLoop, make_pruner, make_sampler, storage_of, worker_pool
    from autodl.runner import _study_info

    study = _await_study(study_name, settings.storage, wait)
    _joined_settings(study, settings)  # a study this worker cannot join: before any process
    listeners = list(listeners)
    if settings.tracking:
        from autodl.tracking import MlflowTracker

        listeners.append(MlflowTracker(settings.tracking_uri, joining=True))
    ctx = _context(study, settings, listeners)
    study = optuna.load_study(
        study_name=study_name, storage=storage_of(study),
        sampler=make_sampler(ctx.sampler, None, ctx.space.grid() if ctx.sampler == "grid"
                             else None),
        pruner=make_pruner(ctx.pruner if len(ctx.objectives) == 1 else "none", ctx.epochs))
    pool = worker_pool(settings)
    grid = ctx.space.grid() if ctx.sampler == "grid" else None
    loop = TrialLoop(study, pool, ctx, Slots(study, grid), math.inf)  # until nothing is left
    loop.is_search = False
    ctx.emit("study_start", _study_info(ctx, []))
    try:
        pool.start(str(ctx.data_path), str(ctx.out_dir))
        loop.run()
    finally:
        pool.close()
        ctx.emit("close")
    ended: list[TrialEnd] = loop.ended
    return ended

