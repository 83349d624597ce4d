"""How a trial can end other than completing: pruned, or failed with a short reason."""

from __future__ import annotations

__all__ = ["TrialFailed", "TrialPruned", "TrialStopped"]


class TrialPruned(Exception):
    """The pruner stopped this trial."""


class TrialFailed(Exception):
    """The trial failed; the search goes on. ``reason`` is a short code
    (``non_finite``, ``oom``, ``error``, ``interrupted``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TrialStopped(Exception):
    """The search is stopping (Ctrl-C / SIGTERM): save a resume checkpoint and leave."""
