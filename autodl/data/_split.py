"""From raw arrays to checked, label-encoded train/val/test splits in canonical shape.

Modality rule (the shape of X decides, unless the source forces one):

* 2-D ``(n, F)`` is tabular, 3-D ``(n, T, C)`` is a sequence, 4-D ``(n, C, H, W)`` an image.
* A 3-D array is never guessed to be an image: force it with ``FILE.npz?modality=image``
  (``(n, H, W)`` then becomes ``(n, 1, H, W)``). A 4-D array that looks channels-last
  (``X.shape[1] > 4`` and ``X.shape[3] <= 4``) is refused with a hint, unless forced.
* Forcing ``tabular`` flattens each sample; forcing ``sequence`` on 2-D data reads each
  row as a univariate series ``(n, F, 1)``.
* ``text`` is never guessed: a table read with ``--text-column`` is tokenised into integer
  ``(n, 2, tokens)`` arrays (input ids and attention mask, see ``autodl.data._text``).

Task rule: integer, bool or string labels mean classification, float targets regression;
``task=`` forces either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from autodl.errors import UsageError

__all__ = [
    "MIN_SAMPLES",
    "MODALITIES",
    "TASKS",
    "RawData",
    "SplitData",
    "int_option",
    "split_data",
]

MIN_SAMPLES = 10
MODALITIES = ("tabular", "sequence", "image", "text")
TASKS = ("auto", "classification", "regression")
_SPLITS = ("", "_val", "_test")  # key suffixes: X, X_val, X_test


@dataclass
class RawData:
    """Arrays as a source holds them, before any check. ``source`` names them in errors."""

    X: np.ndarray
    y: np.ndarray
    source: str
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    feature_names: list[str] | None = None
    class_names: list[str] | None = None  # names of integer labels 0..k-1 (built-ins)
    modality: str | None = None  # forced modality; None lets the shape decide
    text: dict[str, Any] | None = None  # tokenised text: {"tokenizer", "max_length"}

    def given(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The splits present, keyed by the X array's name."""
        pairs = {"X": (self.X, self.y), "X_val": (self.X_val, self.y_val),
                 "X_test": (self.X_test, self.y_test)}
        return {k: (x, y) for k, (x, y) in pairs.items() if x is not None and y is not None}


@dataclass
class SplitData:
    """Checked splits: X in canonical shape (not yet normalised), y encoded."""

    modality: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str] | None = None
    feature_names: list[str] | None = field(default=None)


def split_data(raw: RawData, *, task: str = "auto", seed: int = 0, val_fraction: float = 0.2,
               test_fraction: float = 0.2) -> SplitData:
    """Check ``raw``, decide modality and task, encode y and carve the missing splits."""
    check_choice(task, TASKS, "task")
    _check_fractions(val_fraction, test_fraction)
    given = raw.given()
    modality = infer_modality(raw.X, raw.modality, raw.source)
    xs = {k: to_canonical(x, modality, raw.source, k) for k, (x, _) in given.items()}
    _check_sample_shapes(xs, raw.source)
    for key, (_, y) in given.items():
        check_arrays(xs[key], y, raw.source, key, raw.feature_names)
    if len(xs["X"]) < MIN_SAMPLES:
        raise UsageError(f"too few samples: expected at least {MIN_SAMPLES}, "
                         f"found {len(xs['X'])} in X (shape {raw.X.shape})", file=raw.source)
    task = infer_task(raw.y, task, raw.source)
    ys, classes = encode_targets([y for _, y in given.values()], task, raw)
    encoded = dict(zip(given, ys, strict=True))
    return _carve(raw, modality, task, classes, xs, encoded, seed, (val_fraction, test_fraction))


def check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise UsageError(f"expected one of {', '.join(choices)}; found {value!r}", key=key)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise UsageError(f"expected 0 < val_fraction < 1; found {val_fraction}",
                         key="val_fraction")
    if not 0.0 <= test_fraction < 1.0:
        raise UsageError(f"expected 0 <= test_fraction < 1; found {test_fraction}",
                         key="test_fraction")


def infer_modality(X: np.ndarray, forced: str | None, source: str) -> str:
    """The modality of X (see the module docstring for the rule)."""
    X = np.asarray(X)
    if forced is not None:
        check_choice(forced, MODALITIES, "modality")
        return forced
    if X.ndim not in (2, 3, 4):
        raise UsageError(f"X has shape {X.shape}; expected 2-D (n, features), 3-D "
                         "(n, time, channels) or 4-D (n, channels, height, width)", file=source)
    if X.ndim == 4 and X.shape[1] > 4 and X.shape[3] <= 4:
        raise UsageError(
            f"X looks channels-last: shape {X.shape}; expected channels-first (n, C, H, W): "
            "use X.transpose(0, 3, 1, 2), or add ?modality=image to the spec if "
            "(n, C, H, W) is right", file=source)
    return {2: "tabular", 3: "sequence", 4: "image"}[X.ndim]


def to_canonical(X: np.ndarray, modality: str, source: str, key: str) -> np.ndarray:
    """X reshaped to the modality's canonical per-sample layout (no copy when possible)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise UsageError(f"{key} must be numeric; found dtype {X.dtype}", file=source)
    if modality == "tabular" and X.ndim >= 2:
        return X.reshape(len(X), -1)
    if modality == "sequence" and X.ndim in (2, 3):
        return X[:, :, None] if X.ndim == 2 else X
    if modality == "image" and X.ndim in (3, 4):
        return X[:, None] if X.ndim == 3 else X
    if modality == "text" and X.ndim == 3 and X.shape[1] == 2 and X.dtype.kind in "iu":
        return X
    wanted = {"tabular": "2-D or more", "sequence": "2-D or 3-D", "image": "3-D or 4-D",
              "text": "integer (n, 2, tokens): input ids and attention mask"}
    raise UsageError(f"modality {modality} needs {key} of {wanted[modality]}; "
                     f"found shape {X.shape}", file=source)


def _check_sample_shapes(xs: dict[str, np.ndarray], source: str) -> None:
    want = xs["X"].shape[1:]
    for key, x in xs.items():
        if x.shape[1:] != want:
            raise UsageError(f"{key} samples have shape {x.shape[1:]}, but X samples have "
                             f"shape {want}; expected the same per-sample shape in every split",
                             file=source)


def check_arrays(X: np.ndarray, y: np.ndarray, source: str, key: str,
                 feature_names: list[str] | None = None) -> None:
    """Lengths match, X is finite, y has no missing values."""
    y_key = key.replace("X", "y", 1)
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(X):
        found = "a scalar" if y.ndim == 0 else f"{len(y)} labels"
        raise UsageError(f"{key} has {len(X)} samples but {y_key} has {found}; "
                         "expected one target per sample", file=source)
    check_finite(X, source, key, feature_names)
    missing = _missing(y)
    if missing.any():
        raise UsageError(f"{y_key} has {int(missing.sum())} missing (NaN/None) values; first "
                         f"at sample {int(np.argmax(missing))}; expected a target for every "
                         "sample", file=source)


def check_finite(X: np.ndarray, source: str | None, key: str,
                 feature_names: list[str] | None = None) -> None:
    """Raise naming how many NaN/inf values X holds and where the first one is."""
    flat = X.reshape(len(X), -1)
    if flat.dtype.kind != "f":
        return
    bad = ~np.isfinite(flat)
    if not bad.any():
        return
    row = int(np.argmax(bad.any(axis=1)))
    col = int(np.argmax(bad[row]))
    where = f"sample {row}"
    if X.ndim == 2:
        where += f", feature {feature_names[col]!r}" if feature_names else f", feature {col}"
    raise UsageError(f"{key} has {int(bad.sum())} NaN/inf values in {int(bad.any(1).sum())} "
                     f"samples; first at {where}; expected finite numbers", file=source)


def _missing(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind == "f":
        rows: np.ndarray = np.isnan(y).reshape(len(y), -1).any(axis=1)
        return rows
    if y.dtype.kind == "O":
        # numpy's stubs type a 2-D array's .any(axis=1) as np.bool | ndarray: it is an array
        return cast(np.ndarray, np.array(
            [v is None or (isinstance(v, float) and v != v) for v in y.ravel()],
            dtype=bool).reshape(len(y), -1).any(axis=1))
    return np.zeros(len(y), dtype=bool)


def infer_task(y: np.ndarray, task: str, source: str) -> str:
    """Integer/bool/string labels: classification; floats: regression; or as forced."""
    kind = np.asarray(y).dtype.kind
    if kind not in "biufUSO":
        raise UsageError(f"y has dtype {y.dtype}; expected numbers or string labels",
                         file=source)
    if task == "regression" and kind in "USO":
        raise UsageError(f"task regression needs numeric targets; found labels of dtype "
                         f"{y.dtype} (e.g. {y.ravel()[0]!r})", file=source)
    if task != "auto":
        return task
    if kind == "f":
        return "regression"
    distinct = len(np.unique(np.asarray(y).astype(str) if kind == "O" else y))
    if kind in "iu" and distinct > 100 and distinct > len(y) // 2:
        raise UsageError(f"y has {distinct} distinct integer values in {len(y)} samples; "
                         "this looks like a regression target: pass task=regression "
                         "(--task regression), or task=classification to force classes",
                         file=source)
    return "classification"


def encode_targets(ys: list[np.ndarray], task: str,
                   raw: RawData) -> tuple[list[np.ndarray], list[str] | None]:
    """Regression: float32 (n,) or (n, k). Classification: int64 ids and class names."""
    if task == "regression":
        out = [np.asarray(y, dtype=np.float32) for y in ys]
        if out[0].ndim > 2:
            raise UsageError(f"regression targets have shape {out[0].shape}; expected (n,) "
                             "or (n, targets)", file=raw.source)
        return out, None
    labels = [_label_vector(y, raw.source) for y in ys]
    if any(y.dtype.kind in "USO" for y in labels):
        labels = [y.astype(str) for y in labels]
    values = np.unique(np.concatenate(labels))
    if len(values) < 2:
        raise UsageError(f"y has a single class ({_label_name(values[0])!r}); classification "
                         "expects at least 2 classes", file=raw.source)
    ids = [np.searchsorted(values, y).astype(np.int64) for y in labels]
    return ids, _class_names(values, raw.class_names)


def _label_vector(y: np.ndarray, source: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"classification labels have shape {y.shape}; expected one label "
                         "per sample, shape (n,) (for one-hot labels pass y.argmax(1))",
                         file=source)
    return y


def _label_name(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _class_names(values: np.ndarray, names: list[str] | None) -> list[str]:
    if names is not None and values.dtype.kind in "iu" and list(values) == list(
            range(len(names))):
        return list(names)
    return [_label_name(v) for v in values]


def carve(y: np.ndarray, fraction: float, seed: int,
          stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, taken) with ``fraction`` taken; stratified when every class allows it."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if stratify:
        try:
            return tuple(train_test_split(idx, test_size=fraction, random_state=seed,
                                          stratify=y))
        except ValueError:  # a class too small to appear on both sides
            pass
    return tuple(train_test_split(idx, test_size=fraction, random_state=seed))


def _carve(raw: RawData, modality: str, task: str, classes: list[str] | None,
           xs: dict[str, np.ndarray], ys: dict[str, np.ndarray], seed: int,
           fractions: tuple[float, float]) -> SplitData:
    X, y = xs["X"], ys["X"]
    stratify = task == "classification"
    if "X_test" not in xs and fractions[1] > 0:
        keep, take = carve(y, fractions[1], seed, stratify)
        xs["X_test"], ys["X_test"] = X[take], y[take]
        X, y = X[keep], y[keep]
    if "X_val" not in xs:
        keep, take = carve(y, fractions[0], seed, stratify)
        xs["X_val"], ys["X_val"] = X[take], y[take]
        X, y = X[keep], y[keep]
    return SplitData(modality=modality, task=task, X_train=X, y_train=y,
                     X_val=xs["X_val"], y_val=ys["X_val"], X_test=xs.get("X_test"),
                     y_test=ys.get("X_test"), classes=classes, feature_names=raw.feature_names)


def int_option(options: Mapping[str, str], key: str, default: int, low: int, high: int,
               path: Path) -> int:
    """A ``?key=N`` data-spec option: an integer in [low, high], else a usage error."""
    text = options.get(key, str(default))
    if not text.isdigit() or not low <= int(text) <= high:
        raise UsageError(f"{key} expects an integer from {low} to {high}; found {text!r}",
                         file=str(path), key=key)
    return int(text)
