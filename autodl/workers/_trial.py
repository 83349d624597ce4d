"""Run one trial inside a worker: build the model, train it, measure the objectives.

Returns a plain, picklable outcome dict so the parent never needs torch:
``state`` (COMPLETE | PRUNED | FAIL), ``values`` (one per objective), ``reason``,
``detail``, ``best_epoch``, ``epochs_run``, ``metrics`` (best epoch's), ``params_count``.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from autodl._faults import machine_fault, writing
from autodl.models import create_model
from autodl.train import (
    BestCheckpoint,
    Callback,
    EarlyStopping,
    EpochReporter,
    FoldTrainer,
    NonFiniteGuard,
    ResumeCheckpoint,
    TensorData,
    Trainer,
    TrialFailed,
    TrialPruned,
    TrialStopped,
    fold_splits,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from autodl.workers._memory import check_memory, is_out_of_memory, release_memory, resident_mb
from autodl.workers._messages import Outcome, TrialSpec

__all__ = ["TrainedModel", "error_fields", "latency_ms", "make_trial_trainer",
           "run_trial", "save_weights"]

PREDICTIONS_FILE = "predictions.npy"
MAX_PREDICTIONS = 4_000_000  # 16 MB per trial: larger validation sets are not ensembled



class TrainedModel(Protocol):
    """What saving a trial's weights and timing its model read: a ``Trainer``, a
    ``FoldTrainer``, or a batched member's view."""

    model: Any
    data: TensorData
    best_state: dict[str, torch.Tensor] | None


def run_trial(
    spec: TrialSpec, data: TensorData, out_dir: Path,
    report: Callable[[int, dict[str, float]], bool | str],
) -> Outcome:
    """Train ``spec['config']``; never raises for a trial-level problem."""
    start = time.perf_counter()
    outcome: Outcome = {"number": spec["number"], "state": "FAIL", "values": None,
                               "reason": None, "detail": "", "best_epoch": 0, "epochs_run": 0,
                               "metrics": {}, "params_count": 0}
    trainer = None
    trial_dir = out_dir / "trials" / str(spec["number"])
    try:
        check_memory(spec["config"], data, spec.get("memory_limit_gb"))
        trainer = _make_trainer(spec, data, report, outcome, trial_dir)
        fit = trainer.fit()
        outcome.update({"best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
                        "metrics": fit.best_metrics, "stop_reason": fit.stop_reason})
        outcome["values"] = _objective_values(spec, trainer, fit.best_metrics, outcome)
        save_weights(out_dir, spec, trainer)
        outcome["state"] = "COMPLETE"
    except TrialPruned as exc:
        outcome.update({"state": "PRUNED", "reason": "pruned", "detail": str(exc)})
    except TrialStopped:
        outcome.update({"reason": "interrupted", "detail": "the search was stopped"})
        if isinstance(trainer, Trainer) and trainer.history and trainer.resumable:
            save_checkpoint(trainer, len(trainer.history), trial_dir)
    except TrialFailed as exc:
        outcome.update({"reason": exc.reason, "detail": exc.detail})
    except Exception as exc:
        outcome.update(error_fields(exc))
    if trainer is not None and outcome["state"] != "COMPLETE":
        outcome["epochs_run"] = len(trainer.history)
    if outcome["reason"] != "interrupted":
        remove_checkpoint(trial_dir)
    del trainer
    if outcome["reason"] == "oom":
        release_memory(data.device)
    outcome["duration_s"] = time.perf_counter() - start
    outcome["worker_rss_mb"] = resident_mb()
    if hasattr(os, "sched_getaffinity"):
        outcome["cores"] = sorted(os.sched_getaffinity(0))
    return outcome


def error_fields(exc: Exception) -> Outcome:
    """A failed trial's reason: ``oom`` for any allocation failure (CUDA or CPU);
    ``environment`` for a fault of the machine (a full disk...: the search re-queues it)."""
    if (fault := machine_fault(exc)) is not None:
        return {"reason": fault["reason"], "detail": fault["detail"], "fault": fault["fault"]}
    if is_out_of_memory(exc):
        return {"reason": "oom", "detail": str(exc).strip().splitlines()[0] if str(exc) else ""}
    return {"reason": "error", "detail": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8)}


def _make_trainer(
    spec: TrialSpec, data: TensorData,
    report: Callable[[int, dict[str, float]], bool | str], outcome: Outcome, trial_dir: Path,
) -> Trainer | FoldTrainer:
    """One model on the training split, or (``spec['cv']``: {k, seed}) k fold models over
    train + validation whose mean metrics the callbacks see."""
    config = spec["config"]
    seed = int(spec.get("seed", 0))
    cv = spec.get("cv")
    callbacks = [
        NonFiniteGuard(),
        BestCheckpoint(),
        EarlyStopping(int(config["training"].get("early_stopping", 0))),
        *([] if cv else [ResumeCheckpoint(trial_dir, float(spec.get("checkpoint_every_s",
                                                                    2.0)))]),
        EpochReporter(report),
    ]
    trainer: Trainer | FoldTrainer
    if not cv:
        trainer = make_trial_trainer(spec, data, seed, callbacks)
        _resume(trainer, spec, outcome)
    else:
        folds = fold_splits(data, int(cv["k"]), int(cv["seed"]))
        trainer = FoldTrainer([make_trial_trainer(spec, fold, seed + i, ())
                               for i, (fold, _) in enumerate(folds)], callbacks,
                              [rows for _, rows in folds])
        outcome["folds"] = len(folds)
    outcome["params_count"] = sum(p.numel() for p in trainer.model.parameters())
    outcome["device"], outcome["precision"] = str(data.device), trainer.precision.name
    return trainer


def make_trial_trainer(spec: TrialSpec, data: TensorData, seed: int,
                       callbacks: Sequence[Callback]) -> Trainer:
    """The trial's model, seeded, and its trainer on ``data``."""
    config = spec["config"]
    torch.manual_seed(seed)
    model = create_model(config["family"], config["model"], data.input_shape, data.n_outputs,
                         data.modality).to(data.device)
    metric, direction = spec["objectives"][0]
    if metric in ("params", "latency_ms"):  # a cost as first objective: select on val loss
        metric, direction = "loss", "minimize"
    return Trainer(model, data, config, epochs=int(spec["epochs"]), metric=metric,
                   maximize=direction == "maximize", callbacks=callbacks, seed=seed,
                   amp=bool(spec.get("amp", True)))


def _resume(trainer: Trainer, spec: TrialSpec, outcome: Outcome) -> None:
    """Continue a re-queued trial from the killed run's checkpoint (same config and epochs)."""
    if not spec.get("resume_from"):
        return
    state = load_checkpoint(Path(spec["resume_from"]), trainer.data.device)
    if state is None or int(state["epochs"]) != trainer.epochs:
        return
    trainer.restore(state)
    outcome["resumed_from_epoch"] = trainer.start_epoch


def _objective_values(
    spec: TrialSpec, trainer: Trainer | FoldTrainer, best: Mapping[str, float],
    outcome: Outcome,
) -> list[float]:
    values = []
    for metric, _direction in spec["objectives"]:
        if metric == "params":
            values.append(float(outcome["params_count"]))
        elif metric == "latency_ms":
            values.append(latency_ms(trainer))
        else:  # the selection metric's value is its best window's mean (update_best)
            values.append(float(trainer.best_value if metric == trainer.metric
                                else best[f"val_{metric}"]))
    return values


@torch.inference_mode()
def latency_ms(trainer: TrainedModel, repeats: int = 20) -> float:
    """Median time of one forward pass on a batch of one (the serving case)."""
    model, x = trainer.model.eval(), trainer.data.X_val[:1]
    for _ in range(3):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def save_weights(out_dir: Path, spec: Mapping[str, Any], trainer: TrainedModel) -> None:
    """Best-epoch weights + the config that rebuilds the model, so export never retrains.
    ``spec``: a ``TrialSpec``, or a batched member's (its ``number`` and ``config``)."""
    trial_dir = out_dir / "trials" / str(spec["number"])
    trial_dir.mkdir(parents=True, exist_ok=True)
    state = trainer.best_state or trainer.model.state_dict()
    tmp = trial_dir / "weights.pt.tmp"
    with writing(tmp):
        torch.save(state, tmp)
    tmp.replace(trial_dir / "weights.pt")
    save_predictions(trial_dir, getattr(trainer, "best_predictions", None))
    (trial_dir / "config.json").write_text(json.dumps(spec["config"], indent=2, sort_keys=True))


def save_predictions(trial_dir: Path, predictions: torch.Tensor | None) -> None:
    """The best epoch's validation (or out-of-fold) predictions, ``predictions.npy``, for
    ensemble selection; skipped above ``MAX_PREDICTIONS`` values."""
    if predictions is None or predictions.numel() > MAX_PREDICTIONS:
        return
    import numpy as np

    tmp = trial_dir / "predictions.tmp.npy"
    with writing(tmp):
        np.save(tmp, predictions.numpy().astype(np.float32, copy=False))
    tmp.replace(trial_dir / PREDICTIONS_FILE)


def weights_path(out_dir: Path, number: int) -> Path:
    return out_dir / "trials" / str(number) / "weights.pt"


