"""Where a study's files are, relative to its project.

A study's output directory (trial weights, the refit, ``data.npz``, ``summary.json``) is
recorded in the study as ``autodl.out_dir``, relative to the *project directory*: the
directory of the study's journal or SQLite file (the working directory for a database
server). A project copied or moved elsewhere then reads its own files, not the original's.
Older studies recorded an absolute path; when it is the default ``.../runs/<study>`` and the
project has its own ``runs/<study>``, that one is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodl.backends._optuna_private import storage_of

__all__ = ["OUT_DIR", "project_dir", "stored_out_dir", "study_out_dir"]

OUT_DIR = "autodl.out_dir"


def _storage_file(storage: Any) -> Path | None:
    """The journal or SQLite file behind an Optuna storage (unwrapping its caches)."""
    for _ in range(4):
        path = getattr(storage, "_file_path", None)
        if isinstance(path, str):
            return Path(path)
        url = getattr(storage, "url", None)
        if isinstance(url, str) and url.startswith("sqlite:///"):
            rest = url[len("sqlite:///"):].split("?", 1)[0]
            return Path(rest) if rest and rest != ":memory:" else None
        storage = getattr(storage, "_backend", None)
        if storage is None:
            return None
    return None


def project_dir(storage: Any) -> Path:
    """The directory the study's relative paths are relative to."""
    path = _storage_file(storage)
    return (path.parent if path else Path.cwd()).resolve()


def stored_out_dir(out_dir: Path, storage: Any) -> str:
    """``out_dir`` as recorded: relative to the project directory when inside it."""
    absolute = Path(out_dir).resolve()
    try:
        return absolute.relative_to(project_dir(storage)).as_posix()
    except ValueError:
        return str(absolute)


def study_out_dir(study: Any) -> Path:
    """The study's output directory in this copy of the project (``runs/<study>`` when
    none was recorded)."""
    value = study.user_attrs.get(OUT_DIR)
    name: str = study.study_name
    if not value:
        return Path("runs") / name
    path = Path(value)
    base = project_dir(storage_of(study))
    if not path.is_absolute():
        return base / path
    local = base / "runs" / name
    if path.parts[-2:] == ("runs", name) and local.is_dir():
        return local  # an older autodl's absolute path, in a project since copied or moved
    return path
