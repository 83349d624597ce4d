"""Other libraries' chatter quieted while autodl calls them; the caller's levels restored.

autodl shows trials itself, so Optuna's INFO line per trial (and MLflow's and Alembic's
store messages) would repeat it. A process autodl owns (the CLI, workers, the tracking
process) may set levels for good; code that runs in the caller's process (``autodl.search``,
``autodl.report``) quiets them only for its own calls, through these.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_optuna", "quieted"]


@contextmanager
def quieted(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Loggers ``names`` at ``level`` or quieter inside the block, as they were after it."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved, strict=True):
            logger.setLevel(old)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's logger at WARNING inside the block (``optuna.logging.set_verbosity`` is the
    same logger's level); Optuna configures it on import, so it is imported first."""
    import optuna  # noqa: F401

    with quieted("optuna"):
        yield
