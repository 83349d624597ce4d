"""``--data SPEC`` to prepared arrays (torch-free): built-ins, synthetic data, files.

SPEC is a built-in name (``digits``, ``iris``...), ``synthetic:KIND?opt=value&...``, or a
path to ``.npz`` / ``.csv`` / ``.parquet``, optionally with ``?modality=image|sequence|tabular``
to override the shape rule (see ``autodl.data._split``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from autodl.data._files import read_features, read_file
from autodl.data._prepared import PreparedData, Preprocessor
from autodl.data._sources import BUILTINS, SYNTHETIC, builtin, synthetic
from autodl.data._split import RawData, split_data
from autodl.errors import UsageError

__all__ = ["PreparedData", "Preprocessor", "list_datasets", "load_data", "load_features",
           "load_raw"]


def list_datasets() -> list[tuple[str, str]]:
    out = [(name, desc) for name, (desc, _) in BUILTINS.items()]
    for kind, (desc, defaults, _) in SYNTHETIC.items():
        opts = "&".join(f"{k}={v}" for k, v in defaults.items())
        out.append((f"synthetic:{kind}", f"{desc}; options ?{opts}"))
    return out


def _parse(spec: str) -> tuple[str, dict[str, str]]:
    base, _, query = spec.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise UsageError(f"--data {spec!r}: cannot read the options after '?'; expected "
                         "key=value&key=value", key="data") from None
    return base, options


def load_raw(spec: str, target: str | None = None) -> RawData:
    """The arrays SPEC names, unchecked."""
    base, options = _parse(spec)
    if base in BUILTINS and not options:
        return builtin(base)
    if base.startswith("synthetic:"):
        return synthetic(base.split(":", 1)[1], options)
    path = Path(base)
    if not path.is_file():
        names = ", ".join(list(BUILTINS) + [f"synthetic:{k}" for k in SYNTHETIC])
        raise UsageError(f"--data {spec!r}: no such file, and not a built-in dataset; "
                         f"built-ins: {names}", file=base, key="data")
    unknown = set(options) - {"modality"}
    if unknown:
        raise UsageError(f"--data {spec!r}: unknown option(s) {sorted(unknown)}; valid: "
                         "modality", key="data")
    return read_file(path, target, options.get("modality"))


def load_data(spec: str, *, target: str | None = None, task: str = "auto", seed: int = 0,
              val_fraction: float = 0.2, test_fraction: float = 0.2) -> PreparedData:
    raw = load_raw(spec, target)
    split = split_data(raw, task=task, seed=seed, val_fraction=val_fraction,
                       test_fraction=test_fraction)
    return PreparedData.from_split(spec, split)


def load_features(spec: str, target: str | None = None):
    """All rows of X for prediction (a built-in's full data, a file's X)."""
    base, _ = _parse(spec)
    path = Path(base)
    if path.is_file():
        return read_features(path, target)
    return load_raw(spec, target).X
