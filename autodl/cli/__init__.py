"""``autodl`` command line. Heavy modules are imported by the command that needs them."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence

from autodl.cli._parser import build_parser

__all__ = ["main", "run"]


def run() -> None:
    """The ``autodl`` program: ``main``, then exit without the interpreter's slow teardown
    (after a search, garbage-collecting MLflow, SQLAlchemy, Plotly and the rest took 1.7 s).
    Everything durable is written and closed by then: summary, report, storage, MLflow."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _on_sigterm(signum: int, frame: object) -> None:
    global _TERMINATED
    _TERMINATED = True
    raise KeyboardInterrupt


_TERMINATED = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from autodl import __version__

        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    from autodl.errors import AutodlError, Interrupted

    if args.debug:  # workers and the tracking process inherit it
        os.environ["AUTODL_DEBUG"] = "1"
    try:
        from autodl.cli import _commands

        code: int = getattr(_commands, f"cmd_{args.command}")(args)
        return code
    except KeyboardInterrupt:
        code = 143 if _TERMINATED else 130
        print("interrupted", file=sys.stderr)
        return code
    except Interrupted as exc:
        print(f"{exc}", file=sys.stderr)
        code = 143 if _TERMINATED or exc.exit_code == 143 else exc.exit_code
        if exc.urgent:  # a second Ctrl-C: skip the interpreter's exit-time joins of
            sys.stdout.flush()  # MLflow's threads; everything durable is already written
            sys.stderr.flush()
            os._exit(code)
        return code
    except AutodlError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a full disk, a corrupt file: one line unless --debug
        from autodl._faults import advice

        line = advice(exc)
        if line is None or args.debug:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 1
