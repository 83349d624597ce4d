"""Run groups of trials of one architecture inside a worker (see ``autodl.train._batched``).

The parent sends a group only when it chose to batch; the worker still checks that the
stacked models fit (device memory, ``--trial-memory-gb`` per member) and otherwise trains
the members one after the other, each with ``run_trial``, so batching never fails a trial
that would have run on its own.

While a group trains, the parent may send more groups to fill the places its pruned members
left (see ``autodl.backends._optuna``): the worker then trains an epoch of each group in
turn, and hands on each member's outcome as soon as it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from autodl.train import TensorData, TrialFailed
from autodl.train._grouping import group_key
from autodl.workers._memory import check_memory
from autodl.workers._trial import run_trial

__all__ = ["run_groups"]

GroupReport = Callable[[int, int, dict[str, float]], bool]  # (number, epoch, metrics) -> prune?
Specs = Sequence[Mapping[str, Any]]


def run_groups(specs: Specs, data: TensorData, out_dir: Path, report: GroupReport,
               more: Callable[[], list[Specs]] = list) -> Iterator[list[dict[str, Any]]]:
    """The outcomes of the members that ended in each epoch (``run_trial``'s dict, plus
    ``batched``: the group's size), for ``specs`` and every group ``more()`` returns between
    epochs; never raises for a trial-level problem. Members that end in one epoch come in
    one list, so the parent never mistakes a group that is ending for one with survivors."""
    running = [_epochs(specs, data, out_dir, report)]
    while running:
        for group in list(running):
            try:
                ended = next(group)
            except StopIteration:
                running.remove(group)
                continue
            if ended:
                yield ended
        running += [_epochs(s, data, out_dir, report) for s in more()]


def _epochs(specs: Specs, data: TensorData, out_dir: Path, report: GroupReport
            ) -> Iterator[list[dict[str, Any]]]:
    """The group's outcomes, one epoch per item; a group that cannot be stacked (it does
    not fit, or its configs cannot be batched) trains one trial per item instead."""
    from autodl.train._batched import group_epochs

    keys = {group_key(s["config"], data.modality) for s in specs}
    if len(keys) == 1 and None not in keys and "resume_from" not in specs[0] and _fits(
            specs, data):
        yield from group_epochs(specs, data, out_dir, report)
        return
    for spec in specs:
        yield [run_trial(spec, data, out_dir, partial(report, spec["number"]))]


def _fits(specs: Specs, data: TensorData) -> bool:
    limit = specs[0].get("memory_limit_gb")
    try:
        check_memory(specs[0]["config"], data, None if limit is None else limit * len(specs),
                     models=len(specs))
    except TrialFailed:
        return False
    return True
