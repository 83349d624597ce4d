"""The Optuna backend: the parent asks and tells, workers train.

Only the parent touches the study storage and makes pruning decisions; workers send one
message per epoch and get back "prune or not". Storage writes never race between
processes of one search, and several searches (or ``autodl worker``) may share a storage.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from autodl.backends import _optuna_private as private
from autodl.backends._base import Backend, BackendResult, SearchContext
from autodl.backends._end_phase import EndPhase, end_phase_estimate
from autodl.backends._paths import stored_out_dir
from autodl.backends._samplers import make_pruner, make_sampler
from autodl.backends._storage import DEFAULT_STORAGE, open_storage, study_names
from autodl.backends._study import (
    BUDGET,
    REQUEUED_FROM,
    STOPPED,
    TIMEOUT,
    Slots,
    counted_trials,
    others_running,
    release,
    requeue,
    requeue_stale,
    set_user_attrs,
    study_direction,
)
from autodl.errors import Interrupted, SearchFailed, UsageError
from autodl.events import FinishedTrial, TrialEnd
from autodl.train.batched import group_key, structural_params
from autodl.workers import (
    Died,
    Done,
    EpochAnswer,
    EpochReport,
    ExportWorker,
    FromWorker,
    Outcome,
    RunGroup,
    RunTrial,
    Stop,
    TrialSpec,
    WorkerPool,
    plan_slots,
    workers_that_fit,
)

__all__ = ["DeferredSignals", "OptunaBackend", "counted_trials", "open_study",
           "record_budget", "record_strategies", "record_study_attrs", "runtime",
           "study_storage", "trial_end", "worker_pool"]

def study_storage(ctx: SearchContext) -> tuple[Any, bool]:
    """The storage and whether the study is already in it; an existing study without
    ``--resume`` is a usage error (never silently appended to)."""
    storage = open_storage(ctx.settings.storage)
    exists = ctx.study in study_names(storage, ctx.settings.storage)
    if exists and not ctx.settings.resume:
        raise UsageError(f"study {ctx.study!r} already exists in "
                         f"{ctx.settings.storage or DEFAULT_STORAGE}; pass --resume to continue "
                         "it, or choose another --study", key="study")
    return storage, exists


def open_study(ctx: SearchContext) -> Any:
    """Create the study, or load it with ``--resume``; stale RUNNING trials are failed
    and re-queued once with the same parameters."""
    import optuna

    storage, exists = study_storage(ctx)
    previous = 0
    if exists:
        previous = len(optuna.load_study(study_name=ctx.study, storage=storage).trials)
    seed = None if ctx.seed is None else ctx.seed + previous  # never replay a seeded stream
    study = optuna.create_study(
        study_name=ctx.study, storage=storage, load_if_exists=True,
        directions=[study_direction(d) for _, d in ctx.objectives],
        sampler=make_sampler(ctx.sampler, seed,
                             ctx.space.grid() if ctx.sampler == "grid" else None),
        pruner=make_pruner(ctx.pruner if len(ctx.objectives) == 1 else "none", ctx.epochs),
    )
    if exists:
        record_budget(study, ctx)
    else:
        record_study_attrs(study, ctx)
        _enqueue_each_family(study, ctx)
    record_strategies(study, study.sampler, study.pruner)
    for trial in requeue_stale(study):  # trackers record it, even if it never reached them
        ctx.emit("trial_start", trial.number, trial.user_attrs.get("config", {}),
                 {"device": trial.user_attrs.get("device")})
        ctx.emit("trial_end", trial_end({"number": trial.number, "reason": "interrupted",
                                          "detail": "its search process was killed; "
                                          "re-queued"}, "FAIL"))
    if exists:  # trackers record what they missed (a full disk, a new --tracking-uri)
        ctx.emit("earlier_trials", [_finished(t) for t in counted_trials(study)])
    return study


def _finished(trial: Any) -> FinishedTrial:
    """A finished trial of the study as listeners get it on ``--resume``."""
    attrs = trial.user_attrs
    end = trial_end({"number": trial.number, "values": trial.values,
                      "reason": attrs.get("fail_reason"), "detail": attrs.get("fail_detail") or "",
                      "metrics": attrs.get("val_metrics"), "best_epoch": attrs.get("best_epoch"),
                      "epochs_run": attrs.get("epochs_run"),
                      "params_count": attrs.get("params_count"),
                      "duration_s": attrs.get("duration_s")}, trial.state.name)
    return FinishedTrial(end, attrs.get("config") or {}, _ms(trial.datetime_start),
                         _ms(trial.datetime_complete))


def _ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000) if moment is not None else int(time.time() * 1000)


_JOIN = ("data", "target", "text_column", "task", "seed", "sampler", "pruner", "epochs",
         "trial_memory_gb", "cv", "holdout")


def record_budget(study: Any, ctx: SearchContext) -> None:
    """This run's ``--trials`` (the total across resumes; None: until ``--timeout``) and
    ``--timeout``; the study runs again (``autodl worker`` may join it)."""
    for key, value in ((BUDGET, ctx.trials), (TIMEOUT, ctx.timeout), (STOPPED, None)):
        study.set_user_attr(key, value)


def record_study_attrs(study: Any, ctx: SearchContext) -> None:
    record_budget(study, ctx)
    attrs = {
        "autodl.space": ctx.space.name, "autodl.space_source": ctx.space.source,
        "autodl.data": ctx.data.name, "autodl.objectives": ctx.objectives,
        "autodl.epochs": ctx.epochs,
        "autodl.out_dir": stored_out_dir(ctx.out_dir, private.storage_of(study)),
        "autodl.task": ctx.data.task, "autodl.modality": ctx.data.modality,
        "autodl.protocol": ctx.protocol.summary() if ctx.protocol else None,
        # what `autodl worker` on another host needs to join: the space itself, the data spec
        # (settings last: a joining worker waits for it)
        "autodl.space_text": ctx.space.source_text,
        "autodl.settings": {k: v for k, v in ctx.settings.as_dict().items() if k in _JOIN},
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def record_strategies(study: Any, sampler: Any, pruner: Any) -> None:
    """The class names of the sampler and pruner this run searches with (summary.json's
    ``sampler`` and ``pruner``), for a name and for an object alike."""
    for key, value in (("autodl.sampler", sampler), ("autodl.pruner", pruner)):
        name = None if value is None else type(value).__name__
        if study.user_attrs.get(key) != name:
            study.set_user_attr(key, name)


def _enqueue_each_family(study: Any, ctx: SearchContext) -> None:
    """Try every family first, each with its best-known configuration for the data's
    modality where there is one (``autodl.selection.portfolio``; what the space does not
    admit is sampled), so that the best-so-far is strong from the first trials and no
    family is left out by chance. The portfolio takes at most half of the budget."""
    families = list(ctx.space.families.options)
    few = ctx.trials is not None and ctx.trials < len(families)
    if ctx.sampler == "grid" or few:
        return
    from autodl.selection import portfolio

    hints = portfolio(ctx.data.modality, families)
    if ctx.trials is not None:
        hints = hints[: max(len(families), ctx.trials // 2)]
    seen: list[dict[str, Any]] = []
    for hint in hints:
        params = ctx.space.fixed_params(hint)
        if params and params not in seen:  # a space narrower than the hint may merge two
            seen.append(params)
            study.enqueue_trial(params)


def runtime(settings: Any) -> dict[str, Any]:
    """Per-worker backend switches (``--no-tf32``, ``--no-cudnn-benchmark``)."""
    return {"tf32": settings.tf32, "cudnn_benchmark": settings.cudnn_benchmark}


def worker_pool(settings: Any) -> WorkerPool:
    """The search's worker pool (not started): one worker per device slot."""
    slots = plan_slots(settings.devices, settings.workers, settings.trials_per_device,
                       one_cpu_worker=settings.seed is not None or _large_models(settings))
    return WorkerPool(slots, runtime(settings))


def _data_bytes(data: Any) -> int:
    """What a worker holds of the prepared data: its arrays."""
    return sum(int(getattr(getattr(data, name, None), "nbytes", 0) or 0)
               for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"))


def _large_models(settings: Any) -> bool:
    """A space that fine-tunes pretrained backbones (millions of parameters a trial): one
    CPU worker with every core rather than a worker per core."""
    from autodl.space import load_space

    try:
        return "pretrained" in load_space(settings.space).families.options
    except Exception:  # the search reports a bad space itself, with its line
        return False


class OptunaBackend(Backend):
    name = "optuna"

    def run(self, ctx: SearchContext) -> BackendResult:
        study = open_study(ctx)
        slots = Slots(study, ctx.space.grid() if ctx.sampler == "grid" else None, ctx.seed)
        remaining = slots.remaining()
        pool = ctx.workers or worker_pool(ctx.settings)
        pool.keep(min(remaining, workers_that_fit(_data_bytes(ctx.data))))
        pool.use_data(str(ctx.data_path), str(ctx.out_dir))
        loop = TrialLoop(study, pool, ctx, slots, remaining)
        exporter = None
        try:
            if remaining:
                pool.start(str(ctx.data_path), str(ctx.out_dir))
            if ctx.settings.export:
                exporter = ExportWorker()  # warms up while the trials run
            loop.run()
            ran = bool(remaining or ctx.settings.resume)
            end = EndPhase(study, pool, ctx, loop.seed_base, loop.deadline, exporter)
            final = end.final_model(again=ran)
            test = end.test(final) if ran and final else {}
            model = end.export(final) if ctx.settings.export and final else None
        except Interrupted as exc:
            pool.close(timeout=0.2 if exc.urgent else 5.0)
            raise
        finally:
            pool.close()
            if exporter is not None:
                exporter.close()
        extra = {"refit": final.refit, "ensemble": final.ensemble} if final else {}
        return BackendResult(ctx.study, ctx.settings.storage or DEFAULT_STORAGE,
                             {"test": test, "model": model, **extra}, loop.ended, study)


class TrialLoop:
    """Dispatch trials to idle workers, answer epoch reports, record outcomes."""

    def __init__(self, study: Any, pool: WorkerPool, ctx: SearchContext, slots: Slots,
                 remaining: float) -> None:
        self.study, self.pool, self.ctx, self.slots = study, pool, ctx, slots
        self.to_launch = remaining  # an upper bound: other processes may claim some
        self.running: dict[int, tuple[Any, int]] = {}  # trial number -> (trial, worker id)
        start = ctx.started if ctx.started is not None else time.monotonic()
        self.deadline = start + ctx.timeout if ctx.timeout else None
        self.failures_in_a_row = 0
        self.fatal: str | None = None
        self.halt: Exception | None = None  # the machine's fault: stop, re-queue, exit 1
        self.ended: list[TrialEnd] = []
        base = ctx.seed if ctx.seed is not None else int.from_bytes(os.urandom(3), "little")
        self.seed_base = base * 1_000_003
        metric = ctx.objectives[0][0]
        self.prune_metric = "loss" if metric in ("params", "latency_ms") else metric
        self.single = len(ctx.objectives) == 1
        self.signals: DeferredSignals | None = None
        # the search's own process (not `autodl worker`): records why the study stopped and
        # waits for the trials of `autodl worker` processes to end
        self.is_search = True
        self.backlog: list[Any] = []  # claimed for a group, but with parameters of its own
        self.budget = slots.budget()
        self._reserve = (-1, 0.0)  # (trials ended when computed, seconds)

    def run(self) -> None:
        """Ctrl-C / SIGTERM are handled between messages, never half-way through recording
        a trial; a second one stops at once."""
        with DeferredSignals() as signals:
            self.signals = signals
            try:
                while not signals.received and not self._halted():
                    self._launch()
                    if not self.running:
                        break
                    for wid, msg in self.pool.poll(0.5):
                        self._handle(wid, msg)
                if self.halt is None:
                    self._stop()
                while (self.is_search and not signals.received and self.halt is None
                       and others_running(self.study)):
                    time.sleep(1.0)  # `autodl worker` processes finishing their trials
            except KeyboardInterrupt:
                signals.received = signals.received or signal.SIGINT
            if signals.received or self.halt is not None:
                self._interrupt()
            if self.halt is not None and not signals.received:
                raise self.halt  # the machine broke: the study is saved for --resume
            if signals.received:
                code = 143 if signals.received == signal.SIGTERM else 130
                raise Interrupted("interrupted: finished trials are saved; rerun with --resume "
                                  f"--study {self.ctx.study} to continue", code,
                                  urgent=signals.count > 1) from None
        if self.fatal:
            raise SearchFailed(self.fatal)

    def _halted(self) -> bool:
        """Whether the search must stop for the machine: a trial's disk filled, or a
        listener's store broke (MLflow tracking); ``halt`` is the error to exit with."""
        if self.halt is None:
            self.halt = self.ctx.failure()
        return self.halt is not None

    def _can_launch(self, group_of_a_launch: bool = False) -> bool:
        """Budget left, no fatal error, not stopping, and before ``--timeout`` (checked once
        a trial has started, as ``study.optimize(timeout=...)`` does: a search never ends
        empty because starting the workers took longer than the timeout). A launch's
        group-mates go with it whatever the time: they train in the same steps."""
        timed_out = (self._timed_out() and bool(self.running or self.ended)
                     and not group_of_a_launch)
        stopping = (self.signals is not None and self.signals.received) or self._halted()
        return self.to_launch > 0 and not timed_out and self.fatal is None and not stopping

    def _timed_out(self) -> bool:
        """Past ``--timeout``, less the time the end phase will need (``_end_reserve``)."""
        return self.deadline is not None and (
            time.monotonic() >= self.deadline - self._end_reserve())

    def _end_reserve(self) -> float:
        """The end phase's estimated seconds (refits, test, export), at most a quarter of
        ``--timeout``; updated as trials end."""
        if self._reserve[0] != len(self.ended):
            s, protocol = self.ctx.settings, self.ctx.protocol
            folds = protocol.k if protocol is not None and protocol.kind == "cv" else 1
            estimate = end_phase_estimate(self.ended, folds, len(self.pool.slots), s.refit,
                                          s.ensemble != 0, s.export,
                                          self.ctx.objectives[0][1] == "maximize")
            self._reserve = (len(self.ended), min(estimate, 0.25 * (self.ctx.timeout or 0)))
        return self._reserve[1]

    def _stop(self) -> None:
        """The loop ended on its own: the search records why (``autodl worker`` processes
        then claim nothing more); trials claimed but never started give their slot back."""
        if self.is_search:
            reason = "failed" if self.fatal else (
                "timeout" if self.to_launch > 0 and self._timed_out() else "trials")
            self.study.set_user_attr(STOPPED, reason)
        self._release_backlog(clean=True)
        if self.is_search:
            self.slots.retire_waiting()

    def _launch(self) -> None:
        for wid in self.pool.idle():
            if not self._can_launch():
                return
            leader = self.backlog.pop(0) if self.backlog else self.slots.claim()
            if leader is None:  # the budget is used up (other processes may share it)
                self.to_launch = 0
                return
            specs = [self._start(leader, wid)]
            if "resume_from" not in specs[0]:
                specs += [self._start(t, wid) for t in self._claim_members(leader, specs[0], wid)]
            if len(specs) == 1:
                self.pool.send(wid, RunTrial(specs[0]), busy=True)
            else:
                self.pool.send(wid, RunGroup(specs), busy=True)

    def _start(self, trial: Any, wid: int) -> TrialSpec:
        """Sample the trial's config; its spec for the worker."""
        config = self.ctx.space.sample(trial)
        trial.set_user_attr("config", config)
        spec: TrialSpec = {
            "number": trial.number, "config": config, "epochs": self.ctx.epochs,
            "objectives": self.ctx.objectives, "seed": self.seed_base + trial.number,
            "memory_limit_gb": self.ctx.settings.trial_memory_gb, "amp": self.ctx.settings.amp}
        if self.ctx.protocol is not None and self.ctx.protocol.trial_spec():
            spec["cv"] = self.ctx.protocol.trial_spec()
        self.running[trial.number] = (trial, wid)
        self.to_launch -= 1
        self.ctx.emit("trial_start", trial.number, config, self.pool.slots[wid].info)
        self._continue_from_checkpoint(trial, spec)
        return spec

    def group_size(self, wid: int) -> int:
        """How many trials worker ``wid`` trains at once: ``--batch-trials``, or by default
        up to 8 on a CPU worker (never more than a quarter of the budget, so a search still
        tries several architectures), 1 on GPUs."""
        if self.ctx.protocol is not None and self.ctx.protocol.kind == "cv":
            return 1  # a stacked group trains on one split; folds train trial by trial
        if self.ctx.settings.batch_trials is not None:
            return self.ctx.settings.batch_trials
        if self.pool.slots[wid].device != "cpu":
            return 1
        return 8 if self.budget is None else max(1, min(8, self.budget // 4))

    def _claim_members(self, leader: Any, spec: TrialSpec, wid: int) -> list[Any]:
        """More trials sharing the leader's architecture, optimizer and batch size (the
        sampler draws their other parameters), when its config can be batched."""
        config = spec["config"]
        size = min(self.group_size(wid) - 1, self.to_launch)
        if size < 1 or group_key(config, self.ctx.data.modality) is None:
            return []
        fixed = structural_params(leader.params, config["family"])
        members: list[Any] = []
        while len(members) < size and self._can_launch(group_of_a_launch=True):
            trial, joins = self.slots.claim_member(fixed)
            if trial is None:
                self.to_launch = len(members)
                break
            if not joins:
                self.backlog.append(trial)
                break
            members.append(trial)
        return members

    def _release_backlog(self, clean: bool = False) -> None:
        """Trials claimed for a group but never started: re-queued trials are queued again
        (``--resume`` runs them first); at a clean end the others give their slot back."""
        while self.backlog:
            trial = self.backlog.pop()
            if clean and REQUEUED_FROM not in trial.user_attrs:
                self.slots.retire(private.trial_id(trial))
            else:
                release(self.study, trial)

    def _continue_from_checkpoint(self, trial: Any, spec: TrialSpec) -> None:
        """A re-queued trial continues from the killed run's checkpoint: its finished epochs
        are replayed to the pruner and the trackers, then the worker trains the rest."""
        source = trial.user_attrs.get(REQUEUED_FROM)
        if source is None:
            return
        trial_dir = self.ctx.out_dir / "trials" / str(source)
        try:
            saved = json.loads((trial_dir / "checkpoint.json").read_text())
        except (OSError, ValueError):
            return
        if saved.get("epochs") != self.ctx.epochs:
            return
        spec["resume_from"] = str(trial_dir)
        for epoch, metrics in enumerate(saved["history"], start=1):
            if self.single:
                trial.report(float(metrics.get(f"val_{self.prune_metric}", float("nan"))), epoch)
            self.ctx.emit("epoch", trial.number, epoch, metrics)

    def _handle(self, wid: int, msg: FromWorker) -> None:
        match msg:
            case EpochReport(number, epoch, metrics):
                self._on_epoch(wid, number, epoch, metrics)
            case Done(outcomes):
                for outcome in outcomes:
                    self._finish(outcome)
                self._set_busy(wid)
            case Died(exitcode):
                self._on_worker_died(wid, exitcode)

    def _set_busy(self, wid: int) -> None:
        """A worker is idle once every trial it was given (a group has several) has ended."""
        self.pool.slots[wid].busy = any(w == wid for _, w in self.running.values())

    def _on_worker(self, wid: int) -> list[int]:
        return [n for n, (_, w) in self.running.items() if w == wid]

    def _on_epoch(self, wid: int, number: int, epoch: int, metrics: dict[str, float]) -> None:
        """Answer first, then record: the worker trains on while the report is written
        (the pruner sees exactly what ``report`` + ``should_prune`` would show it)."""
        trial, _ = self.running[number]
        value = float(metrics.get(f"val_{self.prune_metric}", float("nan")))
        prune = self.single and self._should_prune(trial, value, epoch)
        if not prune and self._timed_out():
            self.pool.send(wid, EpochAnswer("finish"))  # time is up: end with its best epoch
        else:
            self.pool.send(wid, EpochAnswer("prune" if prune else "continue"))
        if self.single:
            trial.report(value, epoch)
        self.ctx.emit("epoch", number, epoch, metrics)

    def _should_prune(self, trial: Any, value: float, epoch: int) -> bool:
        """``trial.should_prune()`` as if ``trial.report(value, epoch)`` had been stored."""
        latest = private.latest_trial(trial)
        latest.intermediate_values = {**latest.intermediate_values, epoch: value}
        return bool(self.study.pruner.prune(self.study, latest))

    def _finish(self, outcome: Outcome) -> None:
        import math

        import optuna

        if outcome.get("reason") == "environment":
            self._machine_failed(outcome)
            return
        trial, _ = self.running.pop(outcome["number"])
        values = outcome.get("values")
        state = outcome["state"]
        if state == "COMPLETE":
            assert values is not None  # a COMPLETE outcome carries one value per objective
            if not all(math.isfinite(v) for v in values):
                state, outcome["reason"] = "FAIL", "non_finite"
        attrs: dict[str, Any] = {key: outcome.get(key) for key in (
            "best_epoch", "epochs_run", "params_count", "duration_s", "worker_rss_mb",
            "resumed_from_epoch", "device", "precision", "cores", "batched", "stop_reason",
            "folds") if key in outcome}
        attrs["val_metrics"] = outcome.get("metrics", {})
        if state != "COMPLETE":
            attrs["fail_reason"] = outcome.get("reason")
            if outcome.get("detail"):
                attrs["fail_detail"] = str(outcome["detail"])[:500]
        set_user_attrs(trial, attrs)
        if state == "COMPLETE":
            self.study.tell(trial, values)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState[state])
        self._count_failure(state, outcome)
        self.ended.append(trial_end(outcome, state))
        self.ctx.emit("trial_end", self.ended[-1])

    def _count_failure(self, state: str, outcome: Outcome) -> None:
        self.failures_in_a_row = self.failures_in_a_row + 1 if state == "FAIL" else 0
        limit = self.ctx.settings.max_consecutive_failures
        if self.failures_in_a_row >= limit and self.fatal is None:
            self.fatal = (f"{limit} trials failed in a row; last: trial {outcome['number']} "
                          f"({outcome.get('reason')}: {outcome.get('detail')})")

    def _machine_failed(self, outcome: Outcome) -> None:
        """The machine failed the trial (its disk is full...): it is re-queued like an
        interrupted trial, not counted, and the search stops with the error for the user
        to fix before ``--resume`` runs it again."""
        from autodl._faults import storage_error

        fault = outcome.get("fault") or {}
        self._stopped(outcome["number"], f"re-queued: {outcome.get('detail')}")
        if self.halt is None:
            self.halt = storage_error(
                None, fault.get("file") or str(self.ctx.out_dir), "a file of the search",
                "--out", self.ctx.study, kind=fault.get("kind")) or SearchFailed(
                f"trial {outcome['number']}: {outcome.get('detail')}")

    def _on_worker_died(self, wid: int, exitcode: int | None) -> None:
        """A worker that died takes its trials with it: each is re-queued once (a re-run
        that kills its worker again fails), or, when the disk is full, as a fault of the
        machine."""
        from autodl._faults import FULL, disk_is_full

        full = disk_is_full(self.ctx.out_dir)
        detail = f"worker {wid} exited with code {exitcode}"
        for number in self._on_worker(wid):
            trial, _ = self.running[number]
            if full:
                self._finish({"number": number, "state": "FAIL", "reason": "environment",
                              "detail": f"{detail} (no space left on the device)",
                              "fault": {"kind": FULL, "file": str(self.ctx.out_dir)}})
            elif REQUEUED_FROM not in trial.user_attrs:
                self._stopped(number, f"re-queued: {detail}")
                self.to_launch += 1
            else:
                reason = "oom" if exitcode == -9 else "worker_died"
                self._finish({"number": number, "state": "FAIL", "values": None,
                              "reason": reason, "detail": detail})
        self.pool.slots[wid].busy = False
        self.pool.restart(wid)

    def _interrupt(self, grace: float = 3.0) -> None:
        """Ask running trials to checkpoint at their next epoch end (for up to ``grace``
        seconds; a second Ctrl-C cuts it short), then fail and re-queue each of them."""
        deadline = time.monotonic() + grace
        try:
            while self.running and time.monotonic() < deadline:
                for wid, msg in self.pool.poll(0.1):
                    if isinstance(msg, EpochReport):
                        self.pool.send(wid, Stop())
                    elif isinstance(msg, Done):
                        for outcome in msg.outcomes:
                            if outcome["reason"] == "interrupted":
                                self._stopped(outcome["number"])
                            else:  # it ended on its own within the grace period
                                self._finish(outcome)
                        self._set_busy(wid)
                    elif isinstance(msg, Died):
                        for number in self._on_worker(wid):
                            self._stopped(number)
        except KeyboardInterrupt:
            pass
        if self.signals is not None:
            self.signals.shielded = True  # a few storage writes; never half of one
        self._release_backlog()
        for number in list(self.running):
            self._stopped(number)
        if self.is_search:
            self.study.set_user_attr(STOPPED, "interrupted")

    def _stopped(self, number: int, detail: str = "") -> None:
        """A trial cut short (Ctrl-C, its worker died, a full disk): failed and re-queued,
        counted nowhere; its re-run counts."""
        if number not in self.running:
            return
        trial, _ = self.running.pop(number)
        requeue(self.study, private.trial_id(trial), number, trial.params)
        self.ended.append(trial_end({"number": number, "reason": "interrupted",
                                      "detail": detail}, "FAIL"))
        self.ctx.emit("trial_end", self.ended[-1])


class DeferredSignals:
    """While active (main thread only), the first SIGINT/SIGTERM is recorded in
    ``received`` for the loop to act on at a safe point; a second one raises at once."""

    def __init__(self) -> None:
        self.received: int = 0
        self.count = 0  # signals seen; a second one means "now"
        self.shielded = False  # recording trials: count signals, never break the write
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.received and not self.shielded:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def trial_end(outcome: Outcome, state: str) -> TrialEnd:
    return TrialEnd(
        number=outcome["number"], state=state, values=outcome.get("values"),
        reason=outcome.get("reason"), detail=str(outcome.get("detail", "")),
        best_epoch=int(outcome.get("best_epoch") or 0),
        epochs_run=int(outcome.get("epochs_run") or 0), metrics=outcome.get("metrics") or {},
        params_count=int(outcome.get("params_count") or 0),
        duration_s=float(outcome.get("duration_s") or 0.0),
    )
