"""autodl: hyperparameter search and AutoML for PyTorch.

``autodl.search(...)`` runs a search from Python (a notebook) and returns a
``SearchResult``; the command line is ``autodl``. Heavy imports happen on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autodl.runner import SearchResult

from autodl.version import __version__

__all__ = ["SearchResult", "__version__", "search"]


def search(space: str = "quickstart", **settings: Any) -> SearchResult:
    """Run a search; keyword arguments are the CLI flags (``data``, ``trials``, ``epochs``,
    ``sampler``, ``pruner``, ``study``, ``storage``, ``workers``, ``seed``, ``out``...).

    ``sampler`` and ``pruner`` take a name (``"tpe"``, ``"hyperband"``...) or an Optuna
    object (``optuna.samplers.RandomSampler(seed=0)``), used as it is. ``progress=True``
    shows the live view. Returns a ``SearchResult`` with ``best_value``, ``best_params``,
    ``test_metrics``, ``trial_counts`` and the full ``summary``.

    Works from a script, ``python -c``, ``python -`` and notebooks alike: worker processes
    never run the caller's main module again (no ``if __name__ == "__main__":`` needed), and
    the caller's logging levels are as they were when it returns.
    """
    from autodl.runner import run_search
    from autodl.settings import SearchSettings

    progress = settings.pop("progress", False)
    listeners = []
    if progress:
        from autodl.ui import ProgressDisplay

        listeners.append(ProgressDisplay())
    return run_search(SearchSettings(space=space, **settings), listeners)


def __getattr__(name: str) -> Any:
    if name == "SearchResult":
        from autodl.runner import SearchResult

        return SearchResult
    raise AttributeError(f"module 'autodl' has no attribute {name!r}")
