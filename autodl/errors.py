"""The few error kinds autodl raises, and the exit code each maps to (the README lists the
exit codes after its command list)."""

from __future__ import annotations

__all__ = ["AutodlError", "Interrupted", "SearchFailed", "StorageError", "UsageError",
           "format_location"]


class AutodlError(Exception):
    """Base class of every error autodl raises on purpose."""

    exit_code = 1


class UsageError(AutodlError):
    """Bad input from the user: a flag, a YAML file, a data file. Exit code 2.

    The message names where (file, line, column), what (the dotted key), the rule that
    failed, the value received and, when there is a closed set, the valid choices.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.reason = message
        where = format_location(file, line, column)
        prefix = " ".join(p for p in (where, f"{key}:" if key else "") if p)
        super().__init__(f"{prefix} {message}" if prefix else message)


class SearchFailed(AutodlError):
    """The search itself could not go on (too many failed trials, a worker died...)."""

    exit_code = 1


class StorageError(AutodlError):
    """A store (the study storage, the MLflow store) or an output file that cannot be opened
    (exit 2) or stopped working during the search (exit 1: finished trials are saved and
    ``--resume`` continues). The message names the file, what is wrong and what to do."""

    def __init__(self, message: str, *, file: str | None = None, exit_code: int = 1) -> None:
        self.file = file
        self.exit_code = exit_code
        super().__init__(f"{file}: {message}" if file else message)


def format_location(file: str | None, line: int | None = None, column: int | None = None) -> str:
    """``file:line:column:`` with the parts that are known (lines and columns 1-based)."""
    if not file:
        return ""
    parts = [str(file)]
    if line is not None:
        parts.append(str(line))
        if column is not None:
            parts.append(str(column))
    return ":".join(parts) + ":"


class Interrupted(AutodlError):
    """Ctrl-C or SIGTERM: state is saved and ``--resume`` continues. Exit 130 (143 for TERM)."""

    exit_code = 130

    def __init__(self, message: str = "interrupted", exit_code: int = 130,
                 urgent: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.urgent = urgent  # a second Ctrl-C: leave now; the resume tidies up
