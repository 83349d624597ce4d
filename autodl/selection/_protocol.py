"""The evaluation protocol: stratified k-fold cross-validation for small training sets,
one validation split for large ones.

On 50 training samples a 20% validation split is 10 samples: many trials tie at 9 of 10
and the winner among them is chance. Below ``CV_MAX_SAMPLES`` (train + validation) every
trial is scored by k-fold cross-validation over train + validation instead, k =
``DEFAULT_FOLDS`` or fewer when the rarest class has fewer samples. ``--cv K`` and
``--holdout`` force either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from autodl.errors import UsageError

__all__ = ["CV_MAX_SAMPLES", "DEFAULT_FOLDS", "Protocol", "choose_protocol"]

CV_MAX_SAMPLES = 1000
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class Protocol:
    """How every trial of a study is scored; the same for every process of the study."""

    kind: str  # "cv" | "holdout"
    k: int  # folds (1 for holdout)
    seed: int  # the folds' shuffle
    samples: int  # train + validation samples
    reason: str

    def trial_spec(self) -> dict[str, int] | None:
        """What a worker needs to build the folds (None: train on the training split)."""
        return {"k": self.k, "seed": self.seed} if self.kind == "cv" else None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def choose_protocol(data: Any, cv: int | None = None, holdout: bool = False,
                    seed: int | None = None) -> Protocol:
    """``data`` is the prepared data (train and validation splits, the task)."""
    y = np.concatenate([np.asarray(data.y_train), np.asarray(data.y_val)])
    n, seed = len(y), int(seed or 0)
    if holdout:
        return Protocol("holdout", 1, seed, n, "--holdout")
    if cv is None and n >= CV_MAX_SAMPLES:
        return Protocol("holdout", 1, seed, n, f"{n} samples >= {CV_MAX_SAMPLES}: one "
                        "validation split")
    smallest = int(np.unique(y, return_counts=True)[1].min()) if (
        data.task == "classification") else n
    if cv is not None:
        if cv < 2 or cv > smallest:
            raise UsageError(f"--cv: expected 2 <= K <= {smallest} (the "
                             f"{'rarest class' if data.task == 'classification' else 'data'}"
                             f" has {smallest} training samples), got {cv}", key="cv")
        return Protocol("cv", cv, seed, n, f"--cv {cv}")
    k = min(DEFAULT_FOLDS, smallest)
    if k < 2:
        return Protocol("holdout", 1, seed, n, "a class has a single training sample")
    return Protocol("cv", k, seed, n, f"{n} samples < {CV_MAX_SAMPLES}: {k}-fold "
                    "cross-validation")
