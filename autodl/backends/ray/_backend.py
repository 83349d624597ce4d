"""The Ray Tune backend: the same YAML space, trials on a Ray cluster or a local instance.

Ray Tune proposes trials (``OptunaSearch`` over a define-by-run function that calls
``SearchSpace.sample``, so conditionals stay conditional), a Tune scheduler stops or
perturbs them (``--ray-scheduler asha|hyperband|pbt|median``) and Ray's workers train them
with the Optuna backend's trial code. The driver turns Tune's events into autodl's (the
progress display, MLflow's parent and child runs) and records every trial in the Optuna
study, so ``summary.json``, ``autodl best`` and ``autodl export`` work unchanged.

Tune's experiment lives in ``<out>/ray/exp-<k>/``; ``--resume`` continues the latest one
with ``Tuner.restore`` and starts a new one if ``--trials`` asks for more. Without a trial
budget (``--timeout`` alone) the experiment's ``num_samples`` is -1 and the searcher stops
at the timeout; PBT's population needs ``--trials`` (refused in settings). On a cluster,
``--out`` must be on storage every node can read and write (Ray requires it for the
experiment's checkpoints; workers read the data and write weights there too).
``import ray`` happens here: a missing ray gives create_backend's install hint.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback

from autodl.backends._base import Backend, BackendResult, SearchContext
from autodl.backends._optuna import (
    DeferredSignals,
    record_budget,
    record_strategies,
    record_study_attrs,
    runtime,
    study_storage,
)
from autodl.backends._samplers import first_rung
from autodl.backends._storage import DEFAULT_STORAGE
from autodl.backends._study import STOPPED, counted_trials, study_direction
from autodl.backends.ray._driver import Driver, Gate, StopOnFatal, TuneEvents
from autodl.backends.ray._space import DefineByRun, PbtMutations, sample_population
from autodl.backends.ray._trainable import RayJob, evaluate_best, train_trial
from autodl.errors import Interrupted, SearchFailed, UsageError

__all__ = ["RayBackend"]

_TUNE_ENV = {
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # Ctrl-C / SIGTERM go through _TuneSignals
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # the outcome report of a failed trial
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: no tables; autodl's display reports
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # num_to_keep's cost
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # TensorBoard/CSV per result: costly; JSON kept
}


class RayBackend(Backend):
    name = "ray"

    def run(self, ctx: SearchContext) -> BackendResult:
        study = _open_study(ctx)
        with _ray_session(ctx.settings) as resources:
            job = _job(ctx, resources)
            device = "cuda" if resources["gpu"] else "cpu"
            with Driver(ctx, study, _scheduler_name(ctx), device) as driver:
                received = _run_experiments(ctx, job, resources, driver)
                driver.finish()
                study.set_user_attr(STOPPED, _stop_reason(ctx, driver, received))
            if received:
                code = 143 if received == signal.SIGTERM else 130
                raise Interrupted("interrupted: finished trials are saved; rerun with --resume "
                                  f"--study {ctx.study} to continue", code)
            if driver.fatal:
                raise SearchFailed(driver.fatal)
            test, model = _evaluate(ctx, job, resources, study, ran=bool(driver.records))
        return BackendResult(ctx.study, ctx.settings.storage or DEFAULT_STORAGE,
                             {"test": test, "model": model,
                              "refit": {"skipped": "--backend ray"}}, driver.ended)


def _open_study(ctx: SearchContext) -> Any:
    """The Optuna study the trials are recorded in (created, or loaded with --resume)."""
    import optuna

    storage, exists = study_storage(ctx)
    study = optuna.create_study(study_name=ctx.study, storage=storage, load_if_exists=True,
                                directions=[study_direction(d) for _, d in ctx.objectives])
    if exists:
        record_budget(study, ctx)
    else:
        record_study_attrs(study, ctx)
        study.set_user_attr("autodl.backend", "ray")
        study.set_user_attr("autodl.ray_scheduler", _scheduler_name(ctx))
    return study


def _stop_reason(ctx: SearchContext, driver: Driver, received: int) -> str:
    """What ended the search (the study's ``autodl.stopped``, as the Optuna backend's)."""
    if received:
        return "interrupted"
    if driver.fatal:
        return "failed"
    left = ctx.trials is None or len(counted_trials(driver.study)) < ctx.trials
    timed_out = driver.deadline is not None and time.monotonic() >= driver.deadline
    return "timeout" if left and timed_out else "trials"


def _scheduler_name(ctx: SearchContext) -> str:
    """Tune's schedulers rank trials on one metric: several objectives run to the end."""
    return ctx.settings.ray_scheduler if len(ctx.objectives) == 1 else "fifo"


@contextmanager
def _ray_session(settings: Any) -> Iterator[dict[str, float]]:
    """Join ``--ray-address`` or start a quiet local instance on the available cores;
    yields the resources one trial asks for."""
    started = not ray.is_initialized()
    if started:
        _init_ray(settings)
    try:
        yield _trial_resources(settings)
    finally:
        if started:
            ray.shutdown()


def _init_ray(settings: Any) -> None:
    from autodl.workers import cpu_count

    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                             "ignore_reinit_error": True}
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")  # as `ray` reads it
    if not address:
        gpus: dict[str, Any] = {"num_gpus": 0} if settings.devices == "cpu" else {}
        ray.init(num_cpus=cpu_count(), include_dashboard=False, **gpus, **quiet)
        return
    try:  # joining a cluster: its resources are its own (no num_cpus / num_gpus here)
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        origin = "--ray-address" if settings.ray_address else "RAY_ADDRESS"
        raise UsageError(f"{origin} {address}: cannot join the Ray cluster ({exc})",
                         key="ray_address") from None


def _trial_resources(settings: Any) -> dict[str, float]:
    """``--cpus-per-trial`` (default 1) and ``--gpus-per-trial`` (default: one GPU per
    ``--trials-per-device`` trials when the cluster has GPUs); a request no node can meet
    would leave Tune waiting forever, so it is refused here."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most = {k: max((n.get(k.upper(), 0.0) for n in nodes), default=0.0) for k in ("cpu", "gpu")}
    cpus = settings.cpus_per_trial or 1.0
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 / settings.trials_per_device if most["gpu"] and settings.devices != "cpu" \
            else 0.0
    for key, want in (("cpu", cpus), ("gpu", gpus)):
        if want > most[key]:
            raise UsageError(f"--{key}s-per-trial {want:g}: no node of the Ray cluster has "
                             f"that many {key.upper()}s (largest: {most[key]:g})",
                             key=f"{key}s_per_trial")
    return {"cpu": cpus, "gpu": gpus}


def _job(ctx: SearchContext, resources: dict[str, float]) -> RayJob:
    base = ctx.seed if ctx.seed is not None else int.from_bytes(os.urandom(3), "little")
    every_epoch = _scheduler_name(ctx) in ("pbt", "hyperband")  # they resume from checkpoints
    return RayJob(space=ctx.space, data_path=str(ctx.data_path.resolve()),
                  out_dir=str(ctx.out_dir.resolve()), epochs=ctx.epochs,
                  objectives=[(metric, goal) for metric, goal in ctx.objectives], seed_base=base,
                  checkpoint_every_s=0.0 if every_epoch else 2.0, cpus=resources["cpu"],
                  amp=ctx.settings.amp, runtime=runtime(ctx.settings))


def _run_experiments(ctx: SearchContext, job: RayJob, resources: dict[str, float],
                     driver: Driver) -> int:
    """Continue the latest experiment (--resume), then start one for the trials still
    missing from the budget. Returns the signal that stopped the search, or 0."""
    root = (ctx.out_dir / "ray").resolve()
    earlier = sorted((p for p in root.glob("exp-*") if p.name[4:].isdigit()),
                     key=lambda p: int(p.name[4:]))
    with _tune_env(_fitting(resources)), _TuneSignals(driver) as signals:
        try:
            if ctx.settings.resume and earlier and tune.Tuner.can_restore(earlier[-1]):
                tune.Tuner.restore(str(earlier[-1]), trainable=_trainable(job, resources),
                                   resume_errored=True).fit()
            # no trial budget: Tune's num_samples=-1, until Gate stops at --timeout
            remaining = -1 if ctx.trials is None else ctx.trials - len(counted_trials(
                driver.study))
            if remaining != 0 and driver.may_launch():
                path = root / f"exp-{len(earlier) + 1}"
                _new_tuner(ctx, job, resources, driver, remaining, path).fit()
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, without Tune's cleanup
            signals.received = signals.received or signal.SIGINT
            driver.stopping = True
        return signals.received


def _fitting(resources: dict[str, float]) -> int:
    """How many trials the cluster runs at once (at least one)."""
    total = ray.cluster_resources()
    fits = [total.get("CPU", 0.0) / resources["cpu"]]
    if resources["gpu"]:
        fits.append(total.get("GPU", 0.0) / resources["gpu"])
    return max(1, int(min(fits)))


@contextmanager
def _tune_env(pending: int) -> Iterator[None]:
    """Tune's switches; at most ``pending`` trials queued for resources (Tune's default is
    the searcher's concurrency limit: the whole budget, or with no budget as many as it can
    suggest before ``--timeout``, and every queued trial starts, after it if need be)."""
    env = {**_TUNE_ENV, "TUNE_MAX_PENDING_TRIALS_PG": str(pending)}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _TuneSignals(DeferredSignals):
    """The first Ctrl-C / SIGTERM starts no new trial and asks Tune to stop through its
    SIGUSR1 handler (Tune then saves the experiment, so --resume continues the trials that
    were running); a second one raises KeyboardInterrupt at once."""

    def __init__(self, driver: Driver) -> None:
        super().__init__()
        self.driver = driver

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        super()._handle(signum, frame)
        self.driver.stopping = True
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if callable(tune_handler):
            tune_handler(signal.SIGUSR1, frame)


def _trainable(job: RayJob, resources: dict[str, float]) -> Any:
    return tune.with_resources(tune.with_parameters(train_trial, job=job), resources)


def _new_tuner(ctx: SearchContext, job: RayJob, resources: dict[str, float], driver: Driver,
               trials: int, path: Path) -> tune.Tuner:
    """An experiment of ``trials`` more trials (-1: until ``--timeout``)."""
    name = _scheduler_name(ctx)
    search_alg, param_space = _searcher(ctx, driver, trials)
    tune_config = tune.TuneConfig(
        search_alg=search_alg, scheduler=_scheduler(ctx, name),
        num_samples=trials, reuse_actors=True, trial_name_creator=_TrialName(),
        trial_dirname_creator=_TrialName(), time_budget_s=ctx.timeout if name == "pbt" else None,
    )
    run_config = tune.RunConfig(
        name=path.name, storage_path=str(path.parent),
        callbacks=[TuneEvents(), JsonLoggerCallback()],  # result.json: Tune's own record
        stop=StopOnFatal(), verbose=0, failure_config=tune.FailureConfig(max_failures=0),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if name == "pbt" else 2),
    )
    return tune.Tuner(_trainable(job, resources), param_space=param_space,
                      tune_config=tune_config, run_config=run_config)


class _TrialName:
    """Short, config-free trial names and directories (Tune's default embeds the params)."""

    def __call__(self, trial: Any) -> str:
        return f"trial-{trial.trial_id}"


def _searcher(ctx: SearchContext, driver: Driver,
              trials: int) -> tuple[Any, dict[str, Any]]:
    """``(search_alg, param_space)``: OptunaSearch over the YAML space, seeded from --seed
    (offset by the trials already in the study, so a resumed seeded search does not replay
    itself); every family is tried first when the budget has room. PBT cannot take a
    searcher: its population is sampled up front the same way, as preset points (Tune
    wants each of their keys in ``param_space``)."""
    import optuna
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    from autodl.backends._samplers import make_sampler

    seed = None if ctx.seed is None else ctx.seed + len(driver.study.trials)
    sampler = make_sampler(ctx.sampler, seed,
                           ctx.space.grid() if ctx.sampler == "grid" else None)
    record_strategies(driver.study, sampler, None)  # Tune's scheduler does the pruning
    families = list(ctx.space.families.options)
    room = trials < 0 or len(families) <= trials  # trials -1: no budget
    first = [{"family": f} for f in families] if len(families) > 1 and room else []
    if _scheduler_name(ctx) == "pbt":
        local = optuna.create_study(sampler=sampler,
                                    direction=study_direction(ctx.objectives[0][1]))
        for point in first:
            local.enqueue_trial(point)
        population = sample_population(ctx.space, local, trials, PbtMutations(ctx.space))
        keys = {k: None for point in population for k in point}
        return BasicVariantGenerator(points_to_evaluate=population,
                                     max_concurrent=ctx.settings.workers or 0), keys
    single = len(ctx.objectives) == 1
    metric = "objective" if single else [f"objective_{i}" for i in range(len(ctx.objectives))]
    modes = [d[:3] for _, d in ctx.objectives]
    search = OptunaSearch(DefineByRun(ctx.space), metric=metric,
                          mode=modes[0] if single else modes, sampler=sampler,
                          points_to_evaluate=first if ctx.sampler != "grid" else None)
    limit = ctx.settings.workers or (trials if trials > 0 else 1 << 30)  # else Ray's resources
    return Gate(search, max_concurrent=limit), {}


def _scheduler(ctx: SearchContext, name: str) -> Any:
    """Tune's scheduler by name, on the per-epoch validation metric. Trials that reach the
    last epoch are never stopped by it (``stop_last_trials=False``), so their final report
    (the outcome and the saved weights) always arrives."""
    from ray.tune import schedulers as s

    if name == "fifo":
        return s.FIFOScheduler()
    metric, direction = ctx.objectives[0]
    key = "val_" + ("loss" if metric in ("params", "latency_ms") else metric)
    mode = "min" if key == "val_loss" else direction[:3]
    common: dict[str, Any] = {"time_attr": "epoch", "metric": f"metrics/{key}", "mode": mode}
    epochs = ctx.epochs
    if name == "asha":
        return s.ASHAScheduler(max_t=epochs, grace_period=first_rung(epochs),
                               reduction_factor=3, stop_last_trials=False, **common)
    if name == "hyperband":
        return s.HyperBandScheduler(max_t=epochs, reduction_factor=3, stop_last_trials=False,
                                    **common)
    if name == "median":
        return s.MedianStoppingRule(grace_period=first_rung(epochs), min_samples_required=3,
                                    **common)
    mutations = PbtMutations(ctx.space)
    return s.PopulationBasedTraining(
        perturbation_interval=max(1, epochs // 4), hyperparam_mutations=mutations.domains(),
        custom_explore_fn=mutations, quantile_fraction=0.25, **common)


def _evaluate(ctx: SearchContext, job: RayJob, resources: dict[str, float], study: Any,
              ran: bool) -> tuple[dict[str, float], dict[str, Any] | None]:
    """The best trial on the test split (once, never for selection) and its export to
    ``<out>/model/``, as a Ray task with one trial's resources."""
    from autodl.selection import best_trial

    best = best_trial(study)
    test = (ran or ctx.settings.resume) and ctx.data.X_test is not None
    dest = str((ctx.out_dir / "model").resolve()) if ctx.settings.export else None
    if best is None or not (test or dest):
        return {}, None
    task = ray.remote(evaluate_best).options(num_cpus=resources["cpu"],
                                             num_gpus=resources["gpu"])
    metrics, reply = ray.get(task.remote(job, best.number, best.user_attrs["config"], dest,
                                         test))
    model = None if reply is None else {"trial": best.number, "dir": dest, **reply}
    return metrics, model
