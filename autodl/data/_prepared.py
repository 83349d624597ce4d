"""Prepared data: normalised float32 splits plus the ``Preprocessor`` that reproduces the
transformation on new data (its statistics come from the training split only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl._faults import writing
from autodl.data._split import SplitData, check_finite, to_canonical
from autodl.errors import UsageError

__all__ = ["PreparedData", "Preprocessor", "fit_preprocessor"]


@dataclass
class Preprocessor:
    """What ``autodl predict`` needs to turn raw X into model input, JSON-serialisable."""

    modality: str
    task: str
    input_shape: tuple[int, ...]
    x_mean: np.ndarray
    x_std: np.ndarray
    classes: list[str] | None = None
    y_mean: Any = None
    y_std: Any = None
    feature_names: list[str] | None = None
    text: dict[str, Any] | None = None  # text: {"tokenizer": dir, "max_length": tokens}

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return len(self.classes or [])
        return int(np.asarray(self.y_mean).size) if self.y_mean is not None else 1

    def transform(self, X_raw: Any, source: str = "X") -> np.ndarray:
        """Raw X (a batch, one sample, or a DataFrame with the training's feature columns)
        -> normalised float32 in canonical shape, exactly as the training splits. Text:
        strings (or a DataFrame with the text column) -> ``(n, 2, max_length)`` token ids and
        mask, with the training's tokenizer."""
        if self.modality == "text":
            from autodl.data._text import transform_texts

            return transform_texts(X_raw, self, source)
        X = _as_array(X_raw, self.feature_names, source)
        if X.shape == tuple(self.input_shape):
            X = X[None]
        X = to_canonical(X, self.modality, source, "X")
        if X.shape[1:] != tuple(self.input_shape):
            raise UsageError(f"samples have shape {X.shape[1:]}; the model expects "
                             f"{tuple(self.input_shape)}", file=source)
        X = X.astype(np.float32, copy=False)
        check_finite(X, source, "X", self.feature_names)
        scaled: np.ndarray = ((X - self.x_mean) / self.x_std).astype(np.float32)
        return scaled

    def to_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            return v.tolist() if isinstance(v, np.ndarray) else v

        return {"modality": self.modality, "task": self.task,
                "input_shape": list(self.input_shape), "x_mean": plain(self.x_mean),
                "x_std": plain(self.x_std), "classes": self.classes,
                "y_mean": plain(self.y_mean), "y_std": plain(self.y_std),
                "feature_names": self.feature_names, "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | None = None) -> Preprocessor:
        missing = [k for k in _PRE_KEYS if k not in d]
        if missing:
            raise UsageError(f"preprocessing stats lack {', '.join(missing)}; expected keys "
                             f"{', '.join(_PRE_KEYS)}; found: {', '.join(d) or 'none'}",
                             file=source)
        return cls(modality=d["modality"], task=d["task"], input_shape=tuple(d["input_shape"]),
                   x_mean=np.asarray(d["x_mean"], dtype=np.float32),
                   x_std=np.asarray(d["x_std"], dtype=np.float32), classes=d.get("classes"),
                   y_mean=_y_stat(d.get("y_mean")), y_std=_y_stat(d.get("y_std")),
                   feature_names=d.get("feature_names"), text=_text_stat(d.get("text"), source))

    def save(self, path: str | Path) -> None:
        """A small JSON file (see :meth:`to_dict`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read preprocessing stats ({exc}); expected the JSON "
                             "that save_stats() writes", file=str(path)) from None
        return cls.from_dict(d, str(path))


_PRE_KEYS = ("modality", "task", "input_shape", "x_mean", "x_std")


def _y_stat(v: Any) -> Any:
    """JSON y statistics back: a float, a float32 array (several targets) or None."""
    return np.asarray(v, dtype=np.float32) if isinstance(v, list) else v


def _text_stat(text: dict[str, Any] | None, source: str | None) -> dict[str, Any] | None:
    """A relative tokenizer path (an exported model directory's) is read next to ``source``."""
    if not text or not source or Path(text["tokenizer"]).is_absolute():
        return text
    return {**text, "tokenizer": str(Path(source).parent / text["tokenizer"])}


def _as_array(X_raw: Any, feature_names: list[str] | None, source: str) -> np.ndarray:
    """A DataFrame is read by the training's feature names (in their order)."""
    if not hasattr(X_raw, "columns") or feature_names is None:
        return np.asarray(X_raw)
    cols = [str(c) for c in X_raw.columns]
    missing = [f for f in feature_names if f not in cols]
    if missing:
        raise UsageError(f"missing feature column(s) {', '.join(missing)}; expected "
                         f"{', '.join(feature_names)}; found: {', '.join(cols)}", file=source)
    X: np.ndarray = X_raw.set_axis(cols, axis=1)[feature_names].to_numpy(dtype=np.float64,
                                                                          na_value=np.nan)
    return X


def _stat_axes(modality: str, ndim: int) -> tuple[int, ...]:
    """Per feature (tabular), per channel (sequence: (n,T,C); image: (n,C,H,W))."""
    return {"tabular": (0,), "sequence": (0, 1), "image": (0, 2, 3)}[modality][:ndim]


def fit_preprocessor(split: SplitData, text: dict[str, Any] | None = None) -> Preprocessor:
    """Train-split statistics: per feature/channel for X (token ids are left as they are),
    mean and spread of a regression target."""
    if split.modality == "text":
        mean, std = np.zeros((), np.float64), np.ones((), np.float64)
    else:
        X = split.X_train.astype(np.float64)
        axes = _stat_axes(split.modality, X.ndim)
        mean = X.mean(axis=axes, keepdims=True)[0]
        std = X.std(axis=axes, keepdims=True)[0]
        std[std < 1e-12] = 1.0
    y_mean = y_std = None
    if split.task == "regression":
        y = split.y_train.astype(np.float64)
        y_mean, y_std = y.mean(axis=0), y.std(axis=0)
        y_std = np.where(y_std < 1e-12, 1.0, y_std)
        y_mean, y_std = (float(y_mean), float(y_std)) if y.ndim == 1 else (
            y_mean.astype(np.float32), y_std.astype(np.float32))
    return Preprocessor(modality=split.modality, task=split.task,
                        input_shape=tuple(split.X_train.shape[1:]),
                        x_mean=mean.astype(np.float32), x_std=std.astype(np.float32),
                        classes=split.classes, y_mean=y_mean, y_std=y_std,
                        feature_names=split.feature_names, text=text)


@dataclass
class PreparedData:
    """Normalised splits in canonical shape; ``preprocessor`` reproduces the transform."""

    name: str
    preprocessor: Preprocessor
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    modality = property(lambda self: self.preprocessor.modality)
    task = property(lambda self: self.preprocessor.task)
    input_shape = property(lambda self: tuple(self.preprocessor.input_shape))
    classes = property(lambda self: self.preprocessor.classes)
    y_mean = property(lambda self: self.preprocessor.y_mean)
    y_std = property(lambda self: self.preprocessor.y_std)
    x_mean = property(lambda self: self.preprocessor.x_mean)
    x_std = property(lambda self: self.preprocessor.x_std)
    feature_names = property(lambda self: self.preprocessor.feature_names)

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return len(self.classes or [])
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    def save_stats(self, path: str | Path) -> None:
        """Only what :meth:`preprocess` needs, as JSON (``Preprocessor.load`` reads it)."""
        self.preprocessor.save(path)

    @staticmethod
    def load_stats(path: str | Path) -> Preprocessor:
        return Preprocessor.load(path)

    @classmethod
    def from_split(cls, name: str, split: SplitData,
                   text: dict[str, Any] | None = None) -> PreparedData:
        pre = fit_preprocessor(split, text)

        def norm(X: np.ndarray) -> np.ndarray:
            if pre.modality == "text":
                return X
            normed: np.ndarray = ((X - pre.x_mean) / pre.x_std).astype(np.float32)
            return normed

        return cls(name, pre, norm(split.X_train), split.y_train, norm(split.X_val),
                   split.y_val, None if split.X_test is None else norm(split.X_test),
                   split.y_test)

    def preprocess(self, X_raw: np.ndarray) -> np.ndarray:
        return self.preprocessor.transform(X_raw, self.name)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "task": self.task,
                "train": len(self.X_train), "val": len(self.X_val),
                "test": 0 if self.X_test is None else len(self.X_test),
                "input_shape": list(self.input_shape), "n_outputs": self.n_outputs,
                "classes": self.classes}

    def save(self, path: str | Path) -> None:
        arrays = {k: v for k, v in (("X_train", self.X_train), ("y_train", self.y_train),
                                    ("X_val", self.X_val), ("y_val", self.y_val),
                                    ("X_test", self.X_test), ("y_test", self.y_test))
                  if v is not None}
        meta = json.dumps({"name": self.name, "preprocessor": self.preprocessor.to_dict()})
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        with writing(tmp):  # a full disk leaves no half-written file behind
            # mypy matches **arrays against savez's allow_pickle: bool; every key is a split
            np.savez(tmp, meta=np.array(meta), **arrays)  # type: ignore[arg-type]
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> PreparedData:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:
            raise UsageError(f"cannot read prepared data ({type(exc).__name__}: {exc})",
                             file=str(path)) from None
        missing = [k for k in ("meta", "X_train", "y_train", "X_val", "y_val")
                   if k not in arrays]
        if missing:
            raise UsageError(f"not a prepared-data file: missing {', '.join(missing)}; found: "
                             f"{', '.join(arrays) or 'no arrays'}", file=str(path))
        meta = json.loads(str(arrays.pop("meta")))
        pre = Preprocessor.from_dict(meta["preprocessor"], str(path))
        return cls(meta["name"], pre, arrays["X_train"], arrays["y_train"], arrays["X_val"],
                   arrays["y_val"], arrays.get("X_test"), arrays.get("y_test"))
