"""Model selection: the configurations tried first (the portfolio), how trials are
scored (cross-validation or one validation split), which trials are combined (greedy
ensemble selection), and how the chosen models become the one that is tested and exported
(each refit on all training data)."""

import json
from pathlib import Path
from typing import Any

from autodl.selection._ensemble import (
    DEFAULT_ENSEMBLE_ROUNDS,
    MAX_CANDIDATES,
    Selection,
    greedy_selection,
)
from autodl.selection._portfolio import PORTFOLIO, portfolio
from autodl.selection._protocol import CV_MAX_SAMPLES, DEFAULT_FOLDS, Protocol, choose_protocol
from autodl.selection._ranking import best_trial, top_trials

REFIT_DIR = "refit"  # <out>/refit/<trial>/: a refit's weights.pt, config.json, refit.json
ENSEMBLE_DIR = "ensemble"  # <out>/ensemble/: the ensemble's weights.pt, config.json, ...


def refit_dir(out_dir: Path, trial: int) -> Path:
    return Path(out_dir) / REFIT_DIR / str(trial)


def saved_refit(out_dir: Path, trial: int) -> dict[str, Any] | None:
    """What ``<out>/refit/<trial>/refit.json`` records, when it is a successful refit."""
    try:
        info = json.loads((refit_dir(out_dir, trial) / "refit.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("trial") == trial and not info.get("error") else None


def final_model_dir(out_dir: Path, best: int) -> Path | None:
    """Where the search's final model for best trial ``best`` is (``config.json`` and
    ``weights.pt``): the ensemble built around it, else its refit; None: the trial's own
    weights."""
    ensemble = Path(out_dir) / ENSEMBLE_DIR
    try:
        if json.loads((ensemble / "ensemble.json").read_text()).get("best") == best:
            return ensemble
    except (OSError, ValueError):
        pass
    return refit_dir(out_dir, best) if saved_refit(out_dir, best) else None

__all__ = ["CV_MAX_SAMPLES", "DEFAULT_ENSEMBLE_ROUNDS", "DEFAULT_FOLDS", "ENSEMBLE_DIR",
           "MAX_CANDIDATES", "PORTFOLIO", "REFIT_DIR", "Protocol", "Selection",
           "best_trial", "choose_protocol", "final_model_dir", "greedy_selection",
           "portfolio", "refit_dir", "saved_refit", "top_trials"]
