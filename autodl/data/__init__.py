"""``--data SPEC`` to prepared arrays (torch-free): built-ins, synthetic data, files.

SPEC is a built-in name (``digits``, ``iris``...), ``synthetic:KIND?opt=value&...``, or a
path to ``.npz`` / ``.csv`` / ``.parquet``, optionally with ``?modality=image|sequence|tabular``
to override the shape rule (see ``autodl.data._split``). A table with ``--text-column`` is
text (``?tokenizer=DIR&max_length=N``, see ``autodl.data._text``); a directory is an image
folder, one subfolder per class (``?size=N``, see ``autodl.data._images``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from autodl.data._files import TABLE_SUFFIXES, _frame, read_features, read_file
from autodl.data._images import IMAGE_OPTIONS, read_image_files, read_image_folder
from autodl.data._prepared import PreparedData, Preprocessor
from autodl.data._sources import BUILTINS, SYNTHETIC, builtin, synthetic
from autodl.data._split import RawData, split_data
from autodl.data._text import TEXT_OPTIONS, TextSettings, read_text_table, tokenize_raw
from autodl.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PreparedData", "Preprocessor", "TextSettings", "list_datasets", "load_data",
           "load_features", "load_raw"]


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


def load_raw(spec: str, target: str | None = None, text: TextSettings | None = None
             ) -> RawData:
    """The arrays SPEC names, unchecked (image folders decoded; text as strings, see
    ``load_data``)."""
    base, options = _parse(spec)
    if text is not None and text.column is not None:
        return _text_table(spec, base, options, target, text)
    if Path(base).is_dir():
        _known_options(spec, options, IMAGE_OPTIONS)
        return _no_target(read_image_folder(Path(base), options), target)
    if base in BUILTINS:
        _no_options(spec, base, options)
        return _no_target(builtin(base), target)
    if base.startswith("synthetic:"):
        return _no_target(synthetic(base.split(":", 1)[1], options), target)
    path = Path(base)
    if not path.is_file():
        _not_found(spec, path)
    _known_options(spec, options, ("modality",))
    raw = read_file(path, target, options.get("modality"))
    return raw if path.suffix.lower() in TABLE_SUFFIXES else _no_target(raw, target)


def _known_options(spec: str, options: dict[str, str], valid: tuple[str, ...]) -> None:
    unknown = set(options) - set(valid)
    if unknown:
        raise UsageError(f"--data {spec!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(valid)}", key="data")


def _text_table(spec: str, base: str, options: dict[str, str], target: str | None,
                text: TextSettings) -> RawData:
    path = Path(base)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"--text-column {text.column!r} applies to .csv/.parquet tables only; "
                         f"--data is {spec!r}", key="text_column")
    if not path.is_file():
        _not_found(spec, path)
    _known_options(spec, options, TEXT_OPTIONS)
    return read_text_table(_frame(path), path, target, text, options)


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
    expected = (f"expected a built-in dataset ({names}), a path to a .npz, .csv or "
                ".parquet file, or an image folder")
    if path.suffix or len(path.parts) > 1:
        raise UsageError(f"no such file; {expected}", file=str(path))
    raise UsageError(f"--data {spec!r}: unknown dataset; {expected}", key="data")


def load_data(spec: str, *, target: str | None = None, task: str = "auto", seed: int = 0,
              val_fraction: float = 0.2, test_fraction: float = 0.2,
              text: TextSettings | None = None) -> PreparedData:
    raw = load_raw(spec, target, text)
    if raw.modality == "text":  # tokenised once, here (the tokenizer: see TextSettings)
        raw = tokenize_raw(raw, text)
    split = split_data(raw, task=task, seed=seed, val_fraction=val_fraction,
                       test_fraction=test_fraction)
    return PreparedData.from_split(spec, split, raw.text)


def load_features(spec: str, target: str | None = None, text_column: str | None = None
                  ) -> np.ndarray:
    """All rows of X for prediction (a built-in's full data, a file's X, a text column's
    strings, every image in a folder)."""
    base, options = _parse(spec)
    path = Path(base)
    if path.is_dir():
        return read_image_files(path, options)
    if path.is_file() and text_column is not None and path.suffix.lower() in TABLE_SUFFIXES:
        frame = _frame(path, training=False)
        if text_column not in frame.columns:
            raise UsageError(f"no text column {text_column!r}; columns: "
                             f"{', '.join(map(str, frame.columns))}", file=str(path))
        return frame[text_column].to_numpy(dtype=object)
    if path.is_file():
        return read_features(path, target)
    return load_raw(spec, target).X
