"""The backend extension point: one small base class, a registry by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import UsageError
from autodl.events import SearchListener, TrialEnd
from autodl.settings import SearchSettings

__all__ = ["Backend", "BackendResult", "SearchContext", "create_backend", "list_backends"]


@dataclass
class SearchContext:
    """Everything a backend needs, resolved and validated before trial 1."""

    study: str
    space: Any  # autodl.space.SearchSpace, restricted to the families that fit the data
    data: Any  # autodl.data.PreparedData
    data_path: Path
    objectives: list[tuple[str, str]]
    trials: int | None  # the trial budget, the total across resumes; None: until the timeout
    epochs: int
    timeout: float | None
    sampler: Any  # a name, or an Optuna sampler object (``autodl.search(sampler=...)``)
    pruner: Any  # a name, or an Optuna pruner object
    seed: int | None
    settings: SearchSettings
    out_dir: Path
    listeners: Sequence[SearchListener] = ()
    workers: Any = None  # a WorkerPool spawned early (importing torch while data loads)
    protocol: Any = None  # autodl.selection.Protocol (None: one validation split)
    started: float | None = None  # time.monotonic() when the command began (--timeout's 0)

    def emit(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every listener; a listener's exception never stops the search."""
        for listener in self.listeners:
            call = getattr(listener, hook, None)  # a duck-typed listener may lack a hook
            if call is None:
                continue
            try:
                call(*args)
            except Exception as exc:  # pragma: no cover - defensive
                import logging

                logging.getLogger("autodl").warning("listener %s.%s failed: %s",
                                                    type(listener).__name__, hook, exc)

    def failure(self) -> Exception | None:
        """The first listener that stopped working (MLflow tracking whose store broke):
        its error; the search stops rather than run on untracked."""
        for listener in self.listeners:
            check = getattr(listener, "failure", None)  # duck-typed listeners may lack it
            error: Exception | None = check() if check is not None else None
            if error is not None:
                return error
        return None

    def raise_failure(self) -> None:
        error = self.failure()
        if error is not None:
            raise error


@dataclass
class BackendResult:
    study: str
    storage: str
    summary: dict[str, Any]
    ended: list[TrialEnd] = field(default_factory=list)
    optuna_study: Any = None  # the study as the backend holds it (saves re-reading storage)


class Backend(ABC):
    name: str = ""

    @abstractmethod
    def run(self, ctx: SearchContext) -> BackendResult:
        """Run the search to its budget; raise ``Interrupted`` on Ctrl-C / SIGTERM."""


_BACKENDS = {"optuna": "autodl.backends._optuna:OptunaBackend",
             "ray": "autodl.backends.ray._backend:RayBackend"}


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        raise UsageError(f"--backend: unknown backend {name!r}; valid: {', '.join(_BACKENDS)}",
                         key="backend")
    module, cls = _BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UsageError(f"--backend {name}: not available ({exc}); "
                         f"install it with: pip install 'autodl[{name}]'") from None
    backend: Backend = getattr(mod, cls)()
    return backend
