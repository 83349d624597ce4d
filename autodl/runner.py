"""One search from settings to summary: load and check everything, then run the backend.

This is what ``autodl search`` and ``autodl.search()`` call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import Interrupted, UsageError
from autodl.events import SearchListener, StudyInfo
from autodl.settings import SearchSettings, check_name

__all__ = ["SearchResult", "prepare", "run_search"]


@dataclass
class SearchResult:
    """What a search produced; ``summary`` is the content of summary.json."""

    study: str
    out_dir: Path
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def best_value(self) -> float | None:
        best = self.summary.get("best")
        return None if best is None else best["value"]

    @property
    def best_params(self) -> dict[str, Any] | None:
        best = self.summary.get("best")
        return None if best is None else best["params"]

    @property
    def best_trial(self) -> int | None:
        best = self.summary.get("best")
        return None if best is None else best["trial"]

    @property
    def test_metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = self.summary.get("test", {})
        return metrics

    @property
    def trial_counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.summary.get("trials", {})
        return counts

    def __repr__(self) -> str:
        return (f"SearchResult(study={self.study!r}, best_value={self.best_value}, "
                f"trials={self.trial_counts}, test={self.test_metrics})")


def prepare(settings: SearchSettings) -> tuple[Any, Any, list[str], SearchSettings]:
    """Load the space and the data, keep the families that fit: (space, data, notes, settings
    with the space's defaults filled in). Raises UsageError before anything runs."""
    from autodl.data import load_data
    from autodl.models import check_family, get_family
    from autodl.space import load_space

    settings.check()
    space = load_space(settings.space, max_bytes=int(settings.max_yaml_mb * 2**20))
    settings = settings.with_defaults(space.defaults).check()
    if not settings.data:
        raise UsageError(f"{space.source}: no data: pass --data SPEC or set defaults.data",
                         key="data")
    data = load_data(settings.data, target=settings.target, task=settings.task,
                     seed=settings.seed or 0, text=_text_settings(settings, space))
    fits = [n for n in space.families.options if get_family(n).supports(data.modality)]
    for name in fits:  # e.g. every local backbone the space names exists
        check_family(name, space.families.options[name], space.source)
    notes = [f"family {n!r} does not take {data.modality} data: left out of this search"
             for n in space.families.options if n not in fits]
    if not fits:
        raise UsageError(f"{space.source}: none of the families {list(space.families.options)} "
                         f"takes {data.modality} data", file=space.source, key="families")
    return space.with_families(fits), data, notes, settings


def _text_settings(settings: SearchSettings, space: Any) -> Any:
    """Text data is tokenised with the space's one pretrained backbone unless the data spec
    names a tokenizer; token arrays are cached in ``<out>/tokens`` (or runs/.cache)."""
    from autodl.data import TextSettings

    params = space.families.options.get("pretrained", {})
    dist = params.get("backbone")
    backbones = [dist.value] if hasattr(dist, "value") else list(getattr(dist, "choices", []))
    cache = Path(settings.out) / "tokens" if settings.out else Path("runs") / ".cache" / "tokens"
    return TextSettings(settings.text_column, backbones[0] if len(backbones) == 1 else None,
                        cache, space.source, "families.pretrained.backbone")


def run_search(settings: SearchSettings,
               listeners: Sequence[SearchListener] = ()) -> SearchResult:
    """The search; Optuna's per-trial log lines are quiet while it runs (the caller's
    logging is as it was after it)."""
    from autodl._quiet import quiet_optuna

    started = time.monotonic()  # --timeout is the whole command's budget, from here
    workers = _early_workers(settings)
    try:
        tracker = _early_tracker(settings)
    except BaseException:  # a corrupt MLflow store: the workers go, nothing ran
        if workers is not None:
            workers.close()
        raise
    try:
        with quiet_optuna():
            return _run(settings, [*listeners, *([tracker] if tracker else [])], workers,
                        started)
    finally:
        if tracker is not None:  # bad input: its process goes, nothing was written
            tracker.close()
        if workers is not None:
            workers.close()


def _early_workers(settings: SearchSettings) -> Any:
    """The Optuna backend's workers, spawned before the data is prepared: each imports torch
    and warms up on its own core while this process loads and splits the data."""
    if settings.check().backend != "optuna":
        return None
    from autodl.backends import worker_pool

    return worker_pool(settings).spawn()


def _early_tracker(settings: SearchSettings) -> Any:
    """The MLflow tracker, its process started beside the workers' (it writes nothing before
    ``study_start``, after the data is prepared: bad input leaves no store behind)."""
    if not settings.check().tracking:
        return None
    from autodl.tracking import MlflowTracker

    return MlflowTracker(settings.tracking_uri, settings.register)


def _run(settings: SearchSettings, listeners: Sequence[SearchListener], workers: Any,
         started: float | None = None) -> SearchResult:
    from autodl.space import resolve_objectives

    space, data, notes, settings = prepare(settings)
    objectives = [(o.metric, o.direction) for o in resolve_objectives(space, data.task)]
    study = settings.study or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_name(study, "study")
    out_dir = Path(settings.out or Path("runs") / study)
    try:
        return _search(settings, listeners, workers, space, data, notes, objectives, study,
                       out_dir, started)
    except Exception as exc:
        error = _machine_fault(exc, settings, study)
        if error is None:
            raise
        raise error from exc


def _search(settings: SearchSettings, listeners: Sequence[SearchListener], workers: Any,
            space: Any, data: Any, notes: list[str], objectives: list[tuple[str, str]],
            study: str, out_dir: Path, started: float | None = None) -> SearchResult:
    from autodl._faults import check_writable
    from autodl.backends import SearchContext, create_backend
    from autodl.report import write_search_report
    from autodl.summary import write_summary

    check_writable(out_dir, "the output folder", "--out")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / "data.npz"
    data.save(data_path)
    backend = create_backend(settings.backend)
    assert settings.epochs is not None  # the space's default filled it in (with_defaults)
    listeners = list(listeners)
    ctx = SearchContext(
        study=study, space=space, data=data, data_path=data_path, objectives=objectives,
        trials=settings.trials, epochs=settings.epochs, timeout=settings.timeout,
        sampler=settings.sampler, pruner=settings.pruner, seed=settings.seed,
        settings=settings, out_dir=out_dir, listeners=list(listeners), workers=workers,
        protocol=_protocol(data, settings), started=started,
    )
    ctx.emit("study_start", _study_info(ctx, notes))
    try:
        result = backend.run(ctx)
        if result.summary.get("model"):
            ctx.emit("model_exported", result.summary["model"])
        summary = _finish(ctx, result)
        write_summary(summary, out_dir)
        write_search_report(summary, out_dir, settings,  # before study_end: MLflow logs it
                            study=result.optuna_study)
        ctx.emit("study_end", summary)
    except Interrupted as exc:
        ctx.emit("abort" if exc.urgent else "close")
        raise
    except BaseException:
        ctx.emit("close")
        raise
    else:
        ctx.emit("close")
        ctx.raise_failure()  # tracking that failed at the end: the run is not all recorded
    return SearchResult(study, out_dir, summary, notes)


def _machine_fault(exc: Exception, settings: SearchSettings, study: str) -> Any:
    """A full or read-only disk, an I/O error, a corrupt database, as the one-line
    ``StorageError`` naming the file (the study storage when the error names none); None
    for any other error."""
    from autodl._faults import filename, sqlite_path, storage_error
    from autodl.backends import DEFAULT_STORAGE, storage_fault
    from autodl.errors import AutodlError

    if isinstance(exc, AutodlError):
        return None
    url = settings.storage or DEFAULT_STORAGE
    file = filename(exc)
    if file is None or Path(file).name.startswith(Path(sqlite_path(url) or url).name):
        return storage_fault(exc, settings.storage, study)
    return storage_error(exc, file, "a file of the search", "--out", study)


def _protocol(data: Any, settings: SearchSettings) -> Any:
    """How trials are scored (see ``autodl.selection``); Ray Tune trials train on the
    validation split as they are (no folds there yet)."""
    from autodl.selection import Protocol, choose_protocol

    if settings.backend == "ray":
        if settings.cv is not None:
            raise UsageError("--cv needs --backend optuna (Ray Tune trials score on one "
                             "validation split)", key="cv")
        n = len(data.y_train) + len(data.y_val)
        return Protocol("holdout", 1, int(settings.seed or 0), n, "--backend ray")
    return choose_protocol(data, settings.cv, settings.holdout, settings.seed)


def _study_info(ctx: Any, notes: list[str]) -> StudyInfo:
    return StudyInfo(
        study=ctx.study, space_name=ctx.space.name, space_source=ctx.space.source,
        space_text=ctx.space.source_text, data=ctx.data.summary(), objectives=ctx.objectives,
        families=list(ctx.space.families.options), total_trials=ctx.trials, finished_before=0,
        epochs=ctx.epochs, out_dir=str(ctx.out_dir), settings=ctx.settings.as_dict(),
        workers=[{"notes": notes}], timeout=ctx.timeout,
    )


def _finish(ctx: Any, result: Any) -> dict[str, Any]:
    import optuna

    from autodl.backends import open_storage
    from autodl.summary import summarize

    study = result.optuna_study or optuna.load_study(
        study_name=ctx.study, storage=open_storage(ctx.settings.storage))
    mlflow: dict[str, Any] = {}
    for listener in ctx.listeners:
        if hasattr(listener, "summary_fields"):
            mlflow.update(listener.summary_fields())
    return summarize(study, storage=result.storage, test=result.summary.get("test"),
                     mlflow=mlflow, model=result.summary.get("model"),
                     refit=result.summary.get("refit"),
                     ensemble=result.summary.get("ensemble"))
