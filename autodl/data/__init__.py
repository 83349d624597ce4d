"""``--data SPEC`` to prepared arrays (torch-free): built-ins, synthetic data, files.

SPEC is a built-in name (``digits``, ``iris``...), ``synthetic:KIND?opt=value&...``, or a
path to ``.npz`` / ``.csv`` / ``.parquet``, optionally with ``?modality=image|sequence|tabular``
to override the shape rule (see ``autodl.data._split``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from autodl.data._files import TABLE_SUFFIXES, read_features, read_file
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
    if base in BUILTINS:
        _no_options(spec, base, options)
        return _no_target(builtin(base), target)
    if base.startswith("synthetic:"):
        return _no_target(synthetic(base.split(":", 1)[1], options), target)
    path = Path(base)
    if not path.is_file():
        _not_found(spec, path)
    unknown = set(options) - {"modality"}
    if unknown:
        raise UsageError(f"--data {spec!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                         "valid: modality", key="data")
    raw = read_file(path, target, options.get("modality"))
    return raw if path.suffix.lower() in TABLE_SUFFIXES else _no_target(raw, target)


def _no_options(spec: str, name: str, options: dict[str, str]) -> None:
    if options:
        raise UsageError(f"--data {spec!r}: the built-in dataset {name!r} takes no options; "
                         f"found {', '.join(options)}", key="data")


def _no_target(raw: RawData, target: str | None) -> RawData:
    if target is not None:
        raise UsageError(f"--target {target!r} applies to .csv/.parquet tables only; "
                         f"{raw.source} has its own y", key="target")
    return raw


def _not_found(spec: str, path: Path) -> None:
    names = ", ".join(list(BUILTINS) + [f"synthetic:{k}" for k in SYNTHETIC])
    expected = (f"expected a built-in dataset ({names}) or a path to a .npz, .csv or "
                ".parquet file")
    if path.suffix or len(path.parts) > 1:
        raise UsageError(f"no such file; {expected}", file=str(path))
    raise UsageError(f"--data {spec!r}: unknown dataset; {expected}", key="data")


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
