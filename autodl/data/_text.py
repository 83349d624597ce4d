"""Text: a table's text column (``--text-column``) or ``synthetic:text``, tokenised once
per study.

The tokenizer is a local Hugging Face directory: ``?tokenizer=DIR`` in a table's data spec,
or else the backbone of the space's ``pretrained`` family. Every text becomes ``max_length``
token ids plus an attention mask, held as one integer array ``(n, 2, max_length)``
(``?max_length=N``, default 128). Tokenised tables are cached as ``tokens-<key>.npy``,
the key hashing the tokenizer's files, ``max_length`` and the texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autodl._faults import writing
from autodl.data._split import RawData, int_option
from autodl.errors import UsageError


class TextStats(Protocol):
    """What tokenising a text model's input reads of its ``Preprocessor``."""

    text: dict[str, Any] | None
    feature_names: list[str] | None
    input_shape: tuple[int, ...]

__all__ = ["TEXT_OPTIONS", "TextSettings", "read_text_table", "tokenize", "tokenize_raw",
           "transform_texts"]

DEFAULT_MAX_LENGTH = 128
TEXT_OPTIONS = ("tokenizer", "max_length")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                    "sentencepiece.bpe.model", "added_tokens.json")


@dataclass(frozen=True)
class TextSettings:
    """How text is read: the table's text column (``--text-column``; None: no table text),
    the tokenizer used unless the spec names one (``tokenizer_file`` and ``tokenizer_key``
    say where it came from, for errors), and the directory for cached token arrays (None:
    no cache)."""

    column: str | None = None
    tokenizer: str | None = None
    cache_dir: Path | None = None
    tokenizer_file: str | None = None
    tokenizer_key: str = "tokenizer"


def read_text_table(frame: Any, path: Path, target: str | None, settings: TextSettings,
                    options: Mapping[str, str]) -> RawData:
    """``frame`` (read from ``path``) -> texts (tokenised by ``tokenize_raw``), labels from
    ``target``."""
    columns = [str(c) for c in frame.columns]
    for name, key in ((target, "target"), (settings.column, "text_column")):
        if name is None or name not in columns:
            what = "a table needs --target COLUMN" if name is None else f"no column {name!r}"
            raise UsageError(f"{what}; columns: {', '.join(columns)}", file=str(path), key=key)
    y = frame[target].to_numpy()
    if y.dtype.kind == "O":
        y = np.array([None if v is None or v != v else str(v) for v in y], dtype=object)
    raw = RawData(X=np.asarray(frame[settings.column].tolist(), dtype=object), y=y,
                  source=str(path), feature_names=[str(settings.column)], modality="text",
                  text={"max_length": _max_length(options, path),
                        "tokenizer": options.get("tokenizer")})
    return raw


def tokenize_raw(raw: RawData, settings: TextSettings | None) -> RawData:
    """``raw`` with its texts (X) replaced by token arrays, tokenised once (or read from
    the cache) with the tokenizer ``raw.text`` names (a table's ``?tokenizer=``), else
    ``settings``'; ``raw.text`` then holds the tokenizer directory and ``max_length``."""
    named = (raw.text or {}).get("tokenizer")
    value = named or (settings.tokenizer if settings else None)
    if not value:
        raise UsageError("text needs a tokenizer: add ?tokenizer=DIR (a local Hugging Face "
                         "model directory or pkg:PACKAGE) to --data, or a `pretrained` family "
                         "with one backbone to the space", file=raw.source, key="tokenizer")
    from autodl.models import resolve_local

    try:
        tokenizer = str(resolve_local(value, "tokenizer"))
    except UsageError as exc:
        if named or not settings:
            raise
        raise UsageError(exc.reason, file=settings.tokenizer_file,
                         key=settings.tokenizer_key) from None
    max_length = int((raw.text or {}).get("max_length", DEFAULT_MAX_LENGTH))
    texts = _texts(raw.X.tolist(), raw.source)
    raw.X = _tokenize_cached(texts, tokenizer, max_length,
                             settings.cache_dir if settings else None)
    raw.text = {"tokenizer": tokenizer, "max_length": max_length}
    return raw


def _max_length(options: Mapping[str, str], path: Path) -> int:
    return int_option(options, "max_length", DEFAULT_MAX_LENGTH, 2, 8192, path)


def _texts(values: Iterable[Any], source: str) -> list[str]:
    texts = list(values)
    missing = [i for i, v in enumerate(texts) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        raise UsageError(f"the text column has {len(missing)} missing values; first at row "
                         f"{missing[0]}; expected a text in every row", file=source)
    return [str(v) for v in texts]


def tokenize(texts: list[str], tokenizer: str, max_length: int) -> np.ndarray:
    """``(n, 2, max_length)`` int64: input ids and attention mask (padded, truncated)."""
    from autodl.models import load_tokenizer

    tok = load_tokenizer(tokenizer)
    limit = int(getattr(tok, "model_max_length", 0) or 0)
    if 0 < limit < max_length:
        raise UsageError(f"max_length {max_length} exceeds the tokenizer's model_max_length "
                         f"{limit} ({tokenizer})", key="max_length")
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_length,
              return_attention_mask=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64)
    return np.stack([ids, mask], axis=1).reshape(len(texts), 2, max_length)


def cache_key(texts: list[str], tokenizer: str, max_length: int) -> str:
    """A hash of the tokenizer's files, ``max_length`` and the texts."""
    digest = hashlib.sha256(f"max_length={max_length}\n".encode())
    files = [Path(tokenizer) / name for name in _TOKENIZER_FILES]
    for file in (f for f in files if f.is_file()):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:24]


def _tokenize_cached(texts: list[str], tokenizer: str, max_length: int,
                     cache_dir: Path | None) -> np.ndarray:
    if cache_dir is None:
        return tokenize(texts, tokenizer, max_length)
    path = cache_dir / f"tokens-{cache_key(texts, tokenizer, max_length)}.npy"
    if path.is_file():
        try:
            cached: np.ndarray = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), 2, max_length):
                return cached
        except (OSError, ValueError):
            pass  # a torn or foreign file: tokenise again
    tokens = tokenize(texts, tokenizer, max_length)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    with writing(tmp):
        np.save(tmp, tokens)
    tmp.replace(path)
    return tokens


def transform_texts(X_raw: Any, pre: TextStats, source: str) -> np.ndarray:
    """Raw input of a text model -> token arrays: a DataFrame (its text column), strings,
    or already tokenised ``(n, 2, max_length)`` integers (returned as they are)."""
    if not pre.text:
        raise UsageError("the preprocessing stats of this text model name no tokenizer",
                         file=source)
    if hasattr(X_raw, "columns"):
        column = (pre.feature_names or ["text"])[0]
        if column not in [str(c) for c in X_raw.columns]:
            raise UsageError(f"no text column {column!r}; columns: "
                             f"{', '.join(map(str, X_raw.columns))}", file=source)
        X_raw = X_raw[column].tolist()
    array = np.asarray(X_raw, dtype=object if isinstance(X_raw, list) else None)
    if array.dtype.kind in "iu" and array.shape[1:] == tuple(pre.input_shape):
        return array.astype(np.int64)
    texts = _texts([X_raw] if isinstance(X_raw, str) else array.ravel().tolist(), source)
    return tokenize(texts, pre.text["tokenizer"], int(pre.text["max_length"]))
