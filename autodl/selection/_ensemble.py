"""Greedy ensemble selection with replacement (Caruana, Niculescu-Mizil, Crew and Ksikes,
"Ensemble selection from libraries of models", ICML 2004), as auto-sklearn and AutoGluon
use it: start from nothing; each round, add the candidate (possibly one already in) whose
addition makes the averaged predictions score best; keep the best round's ensemble.

The predictions are the trials' out-of-fold (cross-validation) or validation predictions
at their best epoch, so the ensemble is chosen on data no member trained on. The score is
``(objective, loss)``: the search's objective first, the loss breaking its ties (on 50
samples many ensembles tie on accuracy; the loss still tells them apart). Torch-free: the
caller gives the averaging and the scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ENSEMBLE_ROUNDS", "MAX_CANDIDATES", "Selection", "greedy_selection"]

DEFAULT_ENSEMBLE_ROUNDS = 20  # rounds of selection: weights are multiples of 1/20
MAX_CANDIDATES = 20  # the best trials considered (by the search's ranking)

Score = tuple[float, float]  # (objective, loss), each "higher is better" after signing


@dataclass(frozen=True)
class Selection:
    """The chosen multiset of candidates (index -> times chosen), its score, and the best
    single candidate's (round 1) for comparison."""

    counts: dict[int, int]
    score: Score
    single: int
    single_score: Score
    rounds: int

    @property
    def weights(self) -> dict[int, float]:
        total = sum(self.counts.values())
        return {i: c / total for i, c in self.counts.items()}

    @property
    def beats_single(self) -> bool:
        return len(self.counts) > 1 and better(self.score, self.single_score)


def better(a: Score, b: Score, tol: float = 1e-9) -> bool:
    """``a`` beats ``b``: a higher objective, or an equal one and a lower loss, each by
    more than ``tol`` (averaging a model with itself changes the loss in the last bits)."""
    if abs(a[0] - b[0]) > tol:
        return a[0] > b[0]
    return a[1] > b[1] + tol


def greedy_selection(predictions: Sequence[Any], score: Callable[[Any], Score],
                     rounds: int = DEFAULT_ENSEMBLE_ROUNDS) -> Selection:
    """``predictions``: one array per candidate (same shape; anything supporting ``+`` and
    ``/``), best-ranked first, so that ties go to the better-ranked candidate. ``score``
    maps averaged predictions to a tuple where higher is better."""
    if not predictions:
        raise ValueError("no candidates to select from")
    total: Any = None
    counts: dict[int, int] = {}
    best: tuple[Score, dict[int, int]] | None = None
    first: tuple[int, Score] | None = None
    for size in range(1, max(1, rounds) + 1):
        pick, pick_score = 0, None
        for i, p in enumerate(predictions):
            s = score(p if total is None else (total + p) / size)
            if pick_score is None or better(s, pick_score):
                pick, pick_score = i, s
        assert pick_score is not None
        total = predictions[pick] if total is None else total + predictions[pick]
        counts[pick] = counts.get(pick, 0) + 1
        if first is None:
            first = (pick, pick_score)
        if best is None or better(pick_score, best[0]):  # ties keep the smaller ensemble
            best = (pick_score, dict(counts))
    assert best is not None and first is not None
    return Selection(best[1], best[0], first[0], first[1], rounds)
