"""Run a group of trials of one architecture inside a worker (see ``autodl.train._batched``).

The parent sends a group only when it chose to batch; the worker still checks that the
stacked models fit (device memory, ``--trial-memory-gb`` per member) and otherwise trains
the members one after the other, each with ``run_trial``, so batching never fails a trial
that would have run on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from autodl.train import TensorData, TrialFailed
from autodl.workers._memory import check_memory
from autodl.workers._trial import run_trial

__all__ = ["run_group"]

GroupReport = Callable[[int, int, dict[str, float]], bool | str]  # -> prune? or "finish"


def run_group(specs: Sequence[Mapping[str, Any]], data: TensorData, out_dir: Path,
              report: GroupReport) -> Iterator[list[dict[str, Any]]]:
    """The outcomes of the members that ended together (``run_trial``'s dict, plus
    ``batched``: the group's size), as soon as they end: a stacked group's members by the
    epoch they ended in, trials trained one after the other one by one. Never raises for a
    trial-level problem."""
    from autodl.train._batched import group_outcomes

    if len(specs) > 1 and _fits(specs, data):
        yield from group_outcomes(specs, data, out_dir, report)
        return
    for spec in specs:
        yield [run_trial(spec, data, out_dir, partial(report, spec["number"]))]


def _fits(specs: Sequence[Mapping[str, Any]], data: TensorData) -> bool:
    limit = specs[0].get("memory_limit_gb")
    try:
        check_memory(specs[0]["config"], data, None if limit is None else limit * len(specs),
                     models=len(specs))
    except TrialFailed:
        return False
    return True
