"""The driver side of a Ray search: Tune's trial events become autodl's events and Optuna
trials.

Tune calls ``TuneEvents`` on the driver's main thread. The driver numbers Ray trials
0..N-1 in the order they start (continuing after the trials already in the study), sends
``trial_start`` / ``epoch`` / ``trial_end`` to the listeners (the progress display, the
MLflow tracker), and adds each finished trial to the Optuna study with
``optuna.trial.create_trial`` + ``study.add_trial``, in number order, so that Optuna's trial
numbers are autodl's (the ``trials/<number>/`` directories and MLflow's ``autodl.trial``).

Tune pickles its callbacks, stopper and searcher into the experiment state, and
``Tuner.restore`` brings those copies back; so they hold no state and find the running
search's driver through ``live()`` when called.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.search import ConcurrencyLimiter, Searcher

from autodl.backends import _optuna_private as private
from autodl.backends._base import SearchContext
from autodl.backends._optuna import trial_end
from autodl.backends._study import REQUEUED, REQUEUED_FROM
from autodl.backends.ray._space import resolve_trial
from autodl.backends.ray._trainable import trial_dir_name
from autodl.events import TrialEnd
from autodl.workers import Outcome

__all__ = ["Driver", "Gate", "StopOnFatal", "TuneEvents", "live"]

_SIDECAR = "checkpoint.json"  # autodl.train._checkpoint.SIDECAR (that module imports torch)
_LIVE: list[Driver] = []
log = logging.getLogger("autodl")


def live() -> Driver:
    if not _LIVE:
        raise RuntimeError("no Ray search is running in this process")
    return _LIVE[-1]


class TuneEvents(Callback):
    """Tune's trial hooks, forwarded to the running search's driver."""

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        live().trial_started(trial)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        live().trial_result(trial, result)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        live().trial_completed(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        live().trial_errored(trial)


class StopOnFatal(Stopper):
    """Stops the whole experiment once too many trials failed in a row."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return live().fatal is not None


class Gate(ConcurrencyLimiter):
    """The searcher, limited to ``--workers`` concurrent trials, that starts no trial after
    ``--timeout``, a fatal error or Ctrl-C; running trials finish, as with the Optuna
    backend."""

    # Ray annotates ``Searcher.suggest`` as ``Optional[Dict]``, yet documents and handles
    # ``Searcher.FINISHED`` (a str) as a return value: the override is right, the stub not.
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if not live().may_launch():
            return Searcher.FINISHED
        return super().suggest(trial_id)


@dataclass
class _Record:
    number: int
    ray_id: str
    params: dict[str, Any]
    started: float = field(default_factory=time.time)
    epochs: dict[int, dict[str, float]] = field(default_factory=dict)
    outcome: Outcome | None = None
    node: str | None = None
    end: TrialEnd | None = None
    requeued_from: int | None = None


class Driver:
    def __init__(self, ctx: SearchContext, study: Any, scheduler: str, device: str) -> None:
        self.ctx, self.study, self.scheduler, self.device = ctx, study, scheduler, device
        self.next_number = self.recorded = len(study.trials)
        self.records: dict[str, _Record] = {}
        self.by_number: dict[int, _Record] = {}
        self.ended: list[TrialEnd] = []
        self.fatal: str | None = None
        self.stopping = False  # Ctrl-C / SIGTERM received
        self.failures_in_a_row = 0
        self.deadline = time.monotonic() + ctx.timeout if ctx.timeout else None
        metric = ctx.objectives[0][0]
        self.prune_key = "val_" + ("loss" if metric in ("params", "latency_ms") else metric)
        self.maximize = self.prune_key != "val_loss" and ctx.objectives[0][1] == "maximize"
        self.single = len(ctx.objectives) == 1
        self.previous = {t.user_attrs["autodl.ray_trial_id"]: t for t in study.trials
                         if "autodl.ray_trial_id" in t.user_attrs}

    def __enter__(self) -> Driver:
        _LIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _LIVE.remove(self)

    def may_launch(self) -> bool:
        timed_out = self.deadline is not None and time.monotonic() >= self.deadline
        return not (timed_out or self.stopping or self.fatal)

    # --- Tune's hooks --------------------------------------------------------------------
    def trial_started(self, trial: Any) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is not None:  # a PBT exploit or a HyperBand unpause: same trial, same number
            rec.params = dict(trial.config)
            return
        rec = _Record(self.next_number, trial.trial_id, dict(trial.config))
        self.next_number += 1
        self.records[rec.ray_id] = self.by_number[rec.number] = rec
        self._requeue_previous(rec)
        config = resolve_trial(self.ctx.space, rec.params)[0]
        self.ctx.emit("trial_start", rec.number, config,
                      {"device": self.device, "backend": "ray", "ray_trial_id": rec.ray_id})
        self._replay(trial, rec)

    def _requeue_previous(self, rec: _Record) -> None:
        """A Ray trial recorded as failed by an earlier run (interrupted, or errored and
        resumed by ``resume_errored``) runs again under a new number; its old record stops
        counting, as with the Optuna backend's re-queued trials."""
        old = self.previous.get(rec.ray_id)
        if old is None or old.state.name != "FAIL":
            return
        rec.requeued_from = old.number
        if not old.user_attrs.get(REQUEUED):
            private.storage_of(self.study).set_trial_user_attr(
                private.trial_id(old, self.study), REQUEUED, True)

    def trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            return
        rec.node = result.get("autodl_node") or rec.node
        if "autodl_outcome" in result:
            rec.outcome = json.loads(result["autodl_outcome"])
        metrics, epoch = result.get("metrics"), result.get("epoch")
        if isinstance(metrics, dict) and epoch is not None and int(epoch) >= 1 and \
                int(epoch) not in rec.epochs:  # the outcome's result repeats the last epoch
            rec.epochs[int(epoch)] = metrics
            self.ctx.emit("epoch", rec.number, int(epoch), metrics)

    def trial_completed(self, trial: Any) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is None or rec.end is not None:
            return
        rec.params = dict(trial.config)
        if rec.outcome is not None:
            self._end(rec, rec.outcome)
        elif self.fatal:
            self._end(rec, self._cut_short(rec, "FAIL", "stopped", self.fatal))
        else:
            last = max(rec.epochs, default=0)
            self._end(rec, self._cut_short(rec, "PRUNED", "pruned", f"stopped by the "
                                           f"{self.scheduler} scheduler at epoch {last}"))

    def trial_errored(self, trial: Any) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is None or rec.end is not None:
            return
        error = trial.get_error()
        detail = str(error).strip().splitlines()[-1] if error else "the trial's actor died"
        self._end(rec, self._cut_short(rec, "FAIL", "worker_died", detail))

    # --- ending and recording ------------------------------------------------------------
    def finish(self) -> None:
        """After Tune returns: trials it left unfinished end here (Ctrl-C: re-run on
        ``--resume``), then every trial is in the study."""
        for rec in list(self.records.values()):
            if rec.end is not None:
                continue
            if self.stopping:
                outcome = self._cut_short(rec, "FAIL", "interrupted", "the search was stopped")
            elif self.fatal:
                outcome = self._cut_short(rec, "FAIL", "stopped", self.fatal)
            else:
                outcome = self._cut_short(rec, "PRUNED", "timeout", "stopped by --timeout")
            self._end(rec, outcome)
        self._flush()

    def _cut_short(self, rec: _Record, state: str, reason: str, detail: str) -> Outcome:
        """The outcome of a trial that did not report one: its best epoch so far."""
        scored = {e: m.get(self.prune_key, math.nan) for e, m in rec.epochs.items()}
        scored = {e: v for e, v in scored.items() if math.isfinite(v)}
        sign = 1.0 if self.maximize else -1.0
        best = max(scored, key=lambda e: (sign * scored[e], -e)) if scored else 0
        return {"state": state, "values": None, "reason": reason, "detail": detail,
                "best_epoch": best, "epochs_run": max(rec.epochs, default=0),
                "metrics": rec.epochs.get(best, {}), "params_count": 0,
                "duration_s": time.time() - rec.started}

    def _end(self, rec: _Record, outcome: Outcome) -> None:
        outcome = {**outcome, "number": rec.number}
        state = outcome["state"]
        values = outcome.get("values")
        if state == "COMPLETE" and not (values and all(math.isfinite(v) for v in values)):
            state, outcome["reason"] = "FAIL", "non_finite"
        rec.outcome = outcome
        self._place_files(rec, state)
        rec.end = trial_end(outcome, state)
        self.ended.append(rec.end)
        self.ctx.emit("trial_end", rec.end)
        self._count_failure(state, outcome)
        self._flush()

    def _place_files(self, rec: _Record, state: str) -> None:
        """``trials/ray-<id>/`` -> ``trials/<number>/`` for a completed trial (weights and
        config, as the Optuna backend leaves them); other trials keep nothing."""
        trials = self.ctx.out_dir.resolve() / "trials"
        src, dst = trials / trial_dir_name(rec.ray_id), trials / str(rec.number)
        if state != "COMPLETE" or not (src / "weights.pt").is_file():
            shutil.rmtree(src, ignore_errors=True)
            return
        shutil.rmtree(dst, ignore_errors=True)
        src.rename(dst)

    def _count_failure(self, state: str, outcome: Outcome) -> None:
        self.failures_in_a_row = self.failures_in_a_row + 1 if state == "FAIL" else 0
        limit = self.ctx.settings.max_consecutive_failures
        if self.failures_in_a_row >= limit and self.fatal is None and not self.stopping:
            self.fatal = (f"{limit} trials failed in a row; last: trial {outcome['number']} "
                          f"({outcome.get('reason')}: {outcome.get('detail')})")

    def _flush(self) -> None:
        """Add ended trials to the study in number order (a trial still running holds back
        the ones after it, so that Optuna numbers them the same)."""
        while (rec := self.by_number.get(self.recorded)) is not None and rec.end is not None:
            self.study.add_trial(self._frozen(rec))
            if self.study.trials[-1].number != rec.number:
                log.warning("study %s: trial %d was stored as number %d (another process "
                            "is adding trials to it)", self.ctx.study, rec.number,
                            self.study.trials[-1].number)
            self.recorded += 1

    def _frozen(self, rec: _Record) -> Any:
        import optuna

        end, outcome = rec.end, rec.outcome or {}
        assert end is not None  # _flush records ended trials only
        config, params, dists = resolve_trial(self.ctx.space, rec.params)
        attrs = {"config": config, "best_epoch": end.best_epoch, "epochs_run": end.epochs_run,
                 "params_count": end.params_count, "duration_s": end.duration_s,
                 "val_metrics": dict(end.metrics), "autodl.ray_trial_id": rec.ray_id,
                 "node_ip": rec.node}
        if end.state != "COMPLETE":
            attrs["fail_reason"] = end.reason
            if end.detail:
                attrs["fail_detail"] = end.detail[:500]
        if end.reason == "interrupted":
            attrs[REQUEUED] = True  # its Ray trial re-runs on --resume, under a new number
        if rec.requeued_from is not None:
            attrs[REQUEUED_FROM] = rec.requeued_from
        if outcome.get("resumed_from_epoch"):
            attrs["resumed_from_epoch"] = outcome["resumed_from_epoch"]
        steps = {e: float(m[self.prune_key]) for e, m in rec.epochs.items()
                 if math.isfinite(m.get(self.prune_key, math.nan))} if self.single else {}
        values = end.values if end.state == "COMPLETE" else None
        if end.state == "PRUNED" and steps:
            values = [steps[max(steps)]]  # as Optuna's tell(PRUNED): the last reported value
        return optuna.trial.create_trial(
            state=optuna.trial.TrialState[end.state], values=values, params=params,
            distributions=dists, user_attrs=attrs, intermediate_values=steps)

    def _replay(self, trial: Any, rec: _Record) -> None:
        """A trial that ``Tuner.restore`` continues from its checkpoint: its earlier epochs
        go to the listeners too, so its MLflow run has every epoch."""
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        try:
            with checkpoint.as_directory() as path:
                history = json.loads((Path(path) / _SIDECAR).read_text())["history"]
        except (OSError, ValueError, KeyError):
            return
        for epoch, metrics in enumerate(history, 1):
            rec.epochs[epoch] = metrics
            self.ctx.emit("epoch", rec.number, epoch, metrics)
