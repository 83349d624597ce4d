"""Resume checkpoints: what a killed or interrupted trial needs to continue where it stopped.

``checkpoint.pt`` holds the model, optimizer, schedule and shuffling-RNG state, the epoch
history and the best epoch so far; it loads with ``weights_only=True``. A small
``checkpoint.json`` beside it (epoch, epochs, history) lets the torch-free parent replay the
finished epochs to the pruner and to MLflow. Both are written atomically (temp + rename).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from autodl._faults import writing
from autodl.train._callbacks import Callback

if TYPE_CHECKING:
    from autodl.train._trainer import Trainer

__all__ = ["ResumeCheckpoint", "load_checkpoint", "remove_checkpoint", "save_checkpoint"]

CHECKPOINT = "checkpoint.pt"
SIDECAR = "checkpoint.json"


def save_checkpoint(trainer: Trainer, epoch: int, trial_dir: Path) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    state = trainer.checkpoint_state(epoch)
    tmp = trial_dir / (CHECKPOINT + ".tmp")
    with writing(tmp):
        torch.save(state, tmp)
    tmp.replace(trial_dir / CHECKPOINT)
    side = {"epoch": epoch, "epochs": trainer.epochs, "history": trainer.history[:epoch]}
    tmp_json = trial_dir / (SIDECAR + ".tmp")
    with writing(tmp_json):
        tmp_json.write_text(json.dumps(side))
    tmp_json.replace(trial_dir / SIDECAR)


def load_checkpoint(trial_dir: Path, device: torch.device | str) -> dict[str, Any] | None:
    """The checkpoint in ``trial_dir``, or None when there is none (or it is unreadable)."""
    path = trial_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
        return state
    except Exception:  # a torn or foreign file: start the trial afresh
        return None


def remove_checkpoint(trial_dir: Path) -> None:
    for name in (CHECKPOINT, SIDECAR):
        (trial_dir / name).unlink(missing_ok=True)


class ResumeCheckpoint(Callback):
    """Saves a resume checkpoint at most every ``every_s`` seconds (always after the first
    epoch), so a kill loses at most that much training; for a large model the gap grows so
    that saving never takes more than about a tenth of the training time."""

    def __init__(self, trial_dir: Path, every_s: float = 2.0) -> None:
        self.trial_dir, self.every_s = trial_dir, every_s
        self._next = 0.0

    # Only a Trainer gets this callback (a cross-validated trial is not resumable), so it
    # narrows Callback's trainer type, which mypy can only see as an incompatible override.
    def on_epoch_end(self, trainer: Trainer, epoch: int,  # type: ignore[override]
                     metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if now >= self._next and epoch < trainer.epochs:
            save_checkpoint(trainer, epoch, self.trial_dir)
            took = time.monotonic() - now
            self._next = now + max(self.every_s, 10 * took)
