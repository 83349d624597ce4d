"""Model selection: the configurations tried first (the portfolio), how trials are
scored (cross-validation or one validation split), and how the chosen configuration becomes
the model that is tested and exported (the refit on all training data)."""

from autodl.selection._portfolio import PORTFOLIO, portfolio
from autodl.selection._protocol import CV_MAX_SAMPLES, DEFAULT_FOLDS, Protocol, choose_protocol

REFIT_DIR = "refit"  # <out>/refit/: the refit's weights.pt, config.json and refit.json

__all__ = ["CV_MAX_SAMPLES", "DEFAULT_FOLDS", "PORTFOLIO", "REFIT_DIR", "Protocol",
           "choose_protocol", "portfolio"]
