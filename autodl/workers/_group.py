"""Run a group of trials of one architecture inside a worker (``autodl.train.batched``
trains them as one stacked model; this module turns its members into trial outcomes).

The parent sends a group only when it chose to batch; the worker still checks that the
stacked models fit (device memory, ``--trial-memory-gb`` per member) and otherwise trains
the members one after the other, each with ``run_trial``, so batching never fails a trial
that would have run on its own.

Contract, for whoever schedules trials:

``autodl.train.batched.group_key(config) -> tuple | None``
    Configs (resolved, as ``SearchSpace.sample`` returns them) with equal keys may be
    trained by one ``train_group`` call; ``None`` means "train it with ``run_trial``".
    Supported: family ``mlp`` (any depth, width, activation, norm, residual) with
    optimizer ``sgd``, ``adam``, ``adamw`` or ``rmsprop``. The key holds the family, every
    model parameter except ``dropout``, the optimizer name, ``training.batch_size`` and
    ``training.augment``/``hflip``. Members may differ in everything else: lr, weight decay,
    momentum/nesterov, betas, eps, alpha, the whole ``schedule`` section, dropout, label
    smoothing, gradient clipping, early stopping, and their spec's ``epochs`` and ``seed``.

``train_group(specs, data, out_dir, report) -> list[outcome]``
    ``specs`` are ``run_trial`` specs (``number``, ``config``, ``epochs``, ``objectives``,
    ``seed``) whose configs share one non-None key (else ``ValueError``). Returns one
    outcome per spec, in order, with ``run_trial``'s fields (``state`` COMPLETE / PRUNED /
    FAIL, ``values``, ``reason``, ``detail``, ``best_epoch``, ``epochs_run``, ``metrics`` of
    the best epoch, ``params_count``, ``stop_reason`` when complete, ``duration_s``,
    ``worker_rss_mb``) plus ``batched``: the group's size. Completed members' best-epoch
    weights and configs are saved where ``run_trial`` saves them (``trials/N/weights.pt``,
    same ``state_dict`` keys), so ``autodl export`` and the test evaluation work unchanged.

    ``report(number, epoch, metrics) -> bool`` is called after every epoch for every
    member still training (in spec order), with the metrics ``run_trial`` reports
    (``train_loss``, ``val_*``, ``lr``, ``epoch_time_s``); True prunes that member, which
    then leaves the stacked state. It may raise ``TrialStopped``: every member still
    training ends as FAIL / ``interrupted``. A non-finite loss or objective fails only its
    member (``non_finite``); early stopping is per member. A group-level error (including
    out of memory) fails the members still training with ``run_trial``'s reasons.

    Equivalence: member k starts from ``run_trial``'s initial weights for its seed and
    sees the same batches in the same order (its own seeded permutation), with its own
    schedule, so without dropout its metrics and weights equal a sequential run's up to
    floating-point rounding. Dropout masks come from one group generator (same rates,
    different draws: equal in distribution only).

    ``group_outcomes(specs, data, out_dir, report)`` runs the same training and yields
    the outcomes of the members that end together, after the epoch they end in, so a
    worker hands each outcome on at once. Not supported:
    ``resume_from`` (members start from scratch) and resume checkpoints (an interrupted
    member restarts when re-queued).
    ``duration_s`` and ``epoch_time_s`` are the member's share of the group's wall time
    (over the members they add up to about the group's time). Like ``run_trial``, it
    seeds torch's global RNG (``torch.manual_seed(seed)`` before each member's model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from autodl.models import create_model
from autodl.train import TensorData, TrialFailed, TrialStopped, remove_checkpoint
from autodl.train.batched import GroupTrainer, Member, Report, group_key
from autodl.workers._memory import check_memory, release_memory, resident_mb
from autodl.workers._messages import Outcome, TrialSpec
from autodl.workers._trial import error_fields, latency_ms, run_trial, save_weights

__all__ = ["group_outcomes", "run_group", "train_group"]

GroupReport = Callable[[int, int, dict[str, float]], bool | str]  # -> prune? or "finish"


def run_group(specs: Sequence[TrialSpec], data: TensorData, out_dir: Path,
              report: GroupReport) -> Iterator[list[Outcome]]:
    """The outcomes of the members that ended together (``run_trial``'s dict, plus
    ``batched``: the group's size), as soon as they end: a stacked group's members by the
    epoch they ended in, trials trained one after the other one by one. Never raises for a
    trial-level problem."""
    if len(specs) > 1 and _fits(specs, data):
        yield from group_outcomes(specs, data, out_dir, report)
        return
    for spec in specs:
        yield [run_trial(spec, data, out_dir, partial(report, spec["number"]))]


def _fits(specs: Sequence[TrialSpec], data: TensorData) -> bool:
    limit = specs[0].get("memory_limit_gb")
    try:
        check_memory(specs[0]["config"], data, None if limit is None else limit * len(specs),
                     models=len(specs))
    except TrialFailed:
        return False
    return True


def train_group(
    specs: Sequence[TrialSpec], data: TensorData, out_dir: Path, report: Report
) -> list[Outcome]:
    """Train ``specs`` together; never raises for a trial-level problem (see the module)."""
    order = {s["number"]: i for i, s in enumerate(specs)}
    outcomes = [o for ended in group_outcomes(specs, data, out_dir, report) for o in ended]
    return sorted(outcomes, key=lambda o: order[o["number"]])


def group_outcomes(
    specs: Sequence[TrialSpec], data: TensorData, out_dir: Path, report: Report
) -> Iterator[list[Outcome]]:
    """``train_group``, yielding the outcomes of the members that end together as soon as
    their epoch is over, so a caller can hand them on at once."""
    start = time.perf_counter()
    keys = {group_key(s["config"]) for s in specs}
    if not specs or len(keys) != 1 or None in keys:
        raise ValueError("train_group needs specs whose configs share one non-None group_key")
    members = [_member(s) for s in specs]
    trainer, out, reported = None, Path(out_dir), set[int]()
    try:
        check_memory(members[0].config, data, models=len(members))
        trainer = GroupTrainer(members, data)
        for m in members:
            m.time_s += (time.perf_counter() - start) / len(members)
        for ended in trainer.fit(report):
            reported.update(id(m) for m in ended)
            yield [_outcome(m, data, out, trainer.params_count, len(members)) for m in ended]
    except TrialStopped:
        _end_rest(members, {"reason": "interrupted", "detail": "the search was stopped"})
    except TrialFailed as exc:
        _end_rest(members, {"reason": exc.reason, "detail": exc.detail})
    except Exception as exc:
        _end_rest(members, error_fields(exc))
    params_count = 0 if trainer is None else trainer.params_count
    rest = [_outcome(m, data, out, params_count, len(members)) for m in members
            if id(m) not in reported]
    del trainer
    if any(m.reason == "oom" for m in members):  # before the caller moves on
        release_memory(data.device)
    if rest:
        yield rest


def _member(spec: TrialSpec) -> Member:
    metric, direction = spec["objectives"][0]
    if metric in ("params", "latency_ms"):  # a cost as first objective: select on val loss
        metric, direction = "loss", "minimize"
    return Member(spec=spec, metric=metric, maximize=direction == "maximize")


def _end_rest(members: list[Member], fields: Outcome) -> None:
    for m in members:
        if not m.state:
            m.end("FAIL", fields["reason"], fields.get("detail", ""))
            m.extra = {k: v for k, v in fields.items() if k not in ("reason", "detail")}


@dataclass
class _TrainerView:
    """The part of a ``Trainer`` that ``_trial``'s weight saving and latency helpers read."""

    model: torch.nn.Module | None
    data: TensorData
    best_state: dict[str, torch.Tensor] | None
    best_predictions: torch.Tensor | None = None


def _outcome(m: Member, data: TensorData, out_dir: Path, params_count: int,
             group_size: int) -> Outcome:
    """``run_trial``'s outcome dict for member ``m``; completed members' weights saved."""
    start = time.perf_counter()
    out: Outcome = {"number": m.spec["number"], "state": m.state or "FAIL", "values": None,
                    "reason": m.reason, "detail": m.detail, "best_epoch": 0,
                    "epochs_run": len(m.history), "metrics": {}, "params_count": params_count}
    if "traceback" in m.extra:  # error_fields beyond reason and detail (see _end_rest)
        out["traceback"] = m.extra["traceback"]
    if "fault" in m.extra:
        out["fault"] = m.extra["fault"]
    if m.state == "COMPLETE":
        try:
            out.update(_complete(m, data, out_dir, params_count))
        except Exception as exc:
            out.update({"state": "FAIL", "values": None, **error_fields(exc)})
    if out["reason"] != "interrupted":
        remove_checkpoint(out_dir / "trials" / str(m.spec["number"]))
    out["duration_s"] = m.time_s + time.perf_counter() - start
    out["worker_rss_mb"] = resident_mb()
    out["batched"] = group_size
    return out


def _complete(m: Member, data: TensorData, out_dir: Path, params_count: int) -> Outcome:
    if m.best_state is None:
        raise RuntimeError("a completed member has no best-epoch weights")
    best = m.history[m.best_epoch - 1]
    view = _TrainerView(None, data, m.best_state, m.best_predictions)
    values = []
    for metric, _direction in m.spec["objectives"]:
        if metric == "params":
            values.append(float(params_count))
        elif metric == "latency_ms":
            view.model = _load_model(m, data)
            values.append(latency_ms(view))
        else:  # the selection metric's value is its best window's mean (update_best)
            values.append(float(m.best_value if metric == m.metric else best[f"val_{metric}"]))
    save_weights(out_dir, m.spec, view)
    return {"best_epoch": m.best_epoch, "epochs_run": len(m.history), "metrics": dict(best),
            "stop_reason": m.stop_reason, "values": values, "state": "COMPLETE"}


def _load_model(m: Member, data: TensorData) -> torch.nn.Module:
    """The sequential model with member ``m``'s best-epoch weights (for latency)."""
    c = m.config
    model = create_model(c["family"], c["model"], data.input_shape, data.n_outputs,
                         data.modality).to(data.device)
    assert m.best_state is not None
    model.load_state_dict(m.best_state)
    return model
