"""The refit: the chosen configuration retrained on train + validation, in a worker.

It trains the trial's model from the trial's seed with the trial's schedule (sized for the
search's epochs) and stops after the trial's best epoch, so it follows the trajectory the
search chose, with each epoch over the larger set (more steps, as the data grew). Its
weights, not the search's, are then tested once and exported.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from autodl._faults import writing
from autodl.selection import refit_dir
from autodl.train import Callback, NonFiniteGuard, TensorData, TrialFailed
from autodl.workers._messages import TrialSpec
from autodl.workers._trial import make_trial_trainer

__all__ = ["run_refit"]


class _StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        if epoch >= self.epochs:
            trainer.should_stop = True


def run_refit(spec: TrialSpec, data: TensorData, out_dir: Path) -> dict[str, Any]:
    """Train ``spec`` (a trial spec plus ``best_epoch``) on every training sample; write
    ``<out_dir>/refit/<trial>/{weights.pt,config.json,refit.json}``. Returns what summary.json
    records; ``error`` when it could not be done (the search's weights are used then)."""
    start = time.perf_counter()
    n_train, n_val = data.X_train.shape[0], data.X_val.shape[0]
    everything = data.split(torch.arange(n_train + n_val), torch.arange(n_train, n_train + n_val))
    epochs = max(1, int(spec["best_epoch"]))
    info: dict[str, Any] = {"trial": spec["number"], "epochs": epochs,
                            "samples": n_train + n_val}
    try:
        trainer = make_trial_trainer(spec, everything, int(spec.get("seed", 0)),
                                     [NonFiniteGuard(), _StopAfter(epochs)])
        fit = trainer.fit()
    except TrialFailed as exc:
        return {**info, "error": f"{exc.reason}: {exc.detail}"}
    except Exception as exc:  # reported; the search's own weights are exported instead
        return {**info, "error": f"{type(exc).__name__}: {exc}"}
    info["steps"] = epochs * trainer.data.steps_per_epoch(trainer.batch_size)
    info["train_loss"] = float(fit.history[-1]["train_loss"])
    if not math.isfinite(info["train_loss"]):
        return {**info, "error": "non-finite training loss"}
    dest = refit_dir(out_dir, int(spec["number"]))
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "weights.pt.tmp"
    with writing(tmp):
        torch.save(trainer.model.state_dict(), tmp)
    tmp.replace(dest / "weights.pt")
    (dest / "config.json").write_text(json.dumps(spec["config"], indent=2, sort_keys=True))
    info["duration_s"] = time.perf_counter() - start
    info["dir"] = str(dest)
    (dest / "refit.json").write_text(json.dumps(info, indent=2))
    return info
