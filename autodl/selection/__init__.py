"""Model selection: the configurations tried first (the portfolio), how trials are
scored (cross-validation or one validation split), and how the chosen configuration becomes
the model that is tested and exported (the refit on all training data)."""

import json
from pathlib import Path
from typing import Any

from autodl.selection._portfolio import PORTFOLIO, portfolio
from autodl.selection._protocol import CV_MAX_SAMPLES, DEFAULT_FOLDS, Protocol, choose_protocol

REFIT_DIR = "refit"  # <out>/refit/: the refit's weights.pt, config.json and refit.json


def saved_refit(out_dir: Path, trial: int) -> dict[str, Any] | None:
    """What ``<out>/refit/refit.json`` records, when it is a successful refit of ``trial``."""
    try:
        info = json.loads((Path(out_dir) / REFIT_DIR / "refit.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("trial") == trial and not info.get("error") else None

__all__ = ["CV_MAX_SAMPLES", "DEFAULT_FOLDS", "PORTFOLIO", "REFIT_DIR", "Protocol",
           "choose_protocol", "portfolio", "saved_refit"]
