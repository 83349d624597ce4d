"""autodl's child processes (workers, tracking) start from autodl's own modules only.

multiprocessing's ``spawn`` start method runs the parent's main script again in every
child, so that functions defined there can be unpickled: ``spawn.get_preparation_data``
records ``__main__.__spec__.name`` or ``__main__.__file__`` and the child runs that module
or file as ``__mp_main__``. autodl's children run functions of autodl's modules and need
nothing from the caller's script, and running it again breaks two ways of calling
``autodl.search``: a script piped to ``python -`` (its ``__file__`` is ``<stdin>``, which
the child cannot open, so the worker exits at once), and a script without an
``if __name__ == "__main__":`` guard (each child would start a search of its own).

So while a child starts, ``sys.modules["__main__"]`` is a bare module with neither
``__spec__`` nor ``__file__``, as in an interactive session, and nothing of the caller's
main is recorded for the child. This relies on how CPython prepares a spawned child (it
reads ``__main__`` only in ``Process.start``, which runs synchronously); it is the one
place autodl does so. The public alternative, the ``__main__`` guard, is the caller's to
write and does not help with ``python -``; ``subprocess`` with a module entry point would
lose ``Process``'s sentinel and exit code, which the worker pool waits on.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import types
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess

__all__ = ["spawn_context", "start_process"]

_LOCK = threading.Lock()  # one start at a time: the stand-in main is process-wide


def spawn_context() -> SpawnContext:
    """The context every autodl child process is made in (pipes, processes)."""
    return mp.get_context("spawn")


def start_process(process: BaseProcess) -> None:
    """``process.start()`` without the caller's ``__main__`` (see the module docstring)."""
    with _LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            if main is None:
                sys.modules.pop("__main__", None)
            else:
                sys.modules["__main__"] = main
