"""User files: ``.npz`` arrays, ``.csv`` / ``.parquet`` tables with a target column."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autodl.data._bounds import check_npz, check_table
from autodl.data._split import RawData
from autodl.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TABLE_SUFFIXES", "read_features", "read_file"]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")

_NPZ_KEYS = ("X", "y", "X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


def read_file(path: Path, target: str | None, modality: str | None) -> RawData:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        check_npz(path)
        raw = _read_npz(path)
    elif suffix in TABLE_SUFFIXES:
        raw = _read_table(path, target)
    else:
        raise UsageError(f"unsupported data file type {suffix!r}; expected .npz, .csv or "
                         ".parquet", file=str(path))
    raw.modality = modality
    return raw


def _read_npz(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise UsageError(f"cannot read the arrays ({exc}); object arrays are refused "
                         "(no pickles): save numbers or fixed-width strings",
                         file=str(path)) from None
    except Exception as exc:
        raise UsageError(f"not a readable .npz file ({type(exc).__name__}: {exc})",
                         file=str(path)) from None
    x_key = "X" if "X" in arrays else "X_train" if "X_train" in arrays else None
    y_key = "y" if "y" in arrays else "y_train" if "y_train" in arrays else None
    if x_key is None or y_key is None:
        missing = "X" if x_key is None else "y"
        raise UsageError(f"missing array {missing!r}; expected X and y (or X_train and "
                         f"y_train), optional X_val, y_val, X_test, y_test; found: "
                         f"{', '.join(sorted(arrays)) or 'no arrays'}", file=str(path))
    for split in ("val", "test"):
        if (f"X_{split}" in arrays) != (f"y_{split}" in arrays):
            raise UsageError(f"X_{split} and y_{split} must come together; found only one",
                             file=str(path))
    return RawData(X=arrays[x_key], y=arrays[y_key], source=str(path),
                   X_val=arrays.get("X_val"), y_val=arrays.get("y_val"),
                   X_test=arrays.get("X_test"), y_test=arrays.get("y_test"))


def _frame(path: Path, training: bool = True) -> pd.DataFrame:
    """The table, once its shape is checked (:func:`check_table`); ``training``: it must
    hold enough rows to search on (not so for ``autodl predict``)."""
    import pandas as pd

    check_table(path, training)
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:
        raise UsageError(f"cannot read the table ({type(exc).__name__}: {exc})",
                         file=str(path)) from None


def _read_table(path: Path, target: str | None) -> RawData:
    frame = _frame(path)
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise UsageError(f"a table needs --target COLUMN; columns: {', '.join(columns)}",
                         file=str(path), key="target")
    if target not in columns:
        raise UsageError(f"no column {target!r}; columns: {', '.join(columns)}",
                         file=str(path), key="target")
    y = frame[target].to_numpy()
    features = frame.drop(columns=[target])
    return RawData(X=_numeric(features, path), y=_labels(y), source=str(path),
                   feature_names=[str(c) for c in features.columns])


def _numeric(features: pd.DataFrame, path: Path) -> np.ndarray:
    """Numeric columns as they are; a text column is refused with its name."""
    text = [str(c) for c in features.columns if features[c].dtype.kind not in "biuf"]
    if text:
        raise UsageError(f"non-numeric feature column(s) {', '.join(text)}; expected numbers "
                         "(encode categories first, or drop the columns)", file=str(path))
    return features.to_numpy(dtype=np.float32, na_value=np.nan)


def _labels(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind == "O":
        return np.array([None if v is None or v != v else str(v) for v in y], dtype=object)
    return y


def read_features(path: Path, target: str | None = None) -> np.ndarray:
    """X alone (for ``autodl predict``): all rows; a table's target column is dropped if
    present."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        check_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            for key in ("X", "X_test", "X_train"):
                if key in npz.files:
                    X: np.ndarray = npz[key]
                    return X
        raise UsageError(f"missing array 'X'; found: {', '.join(npz.files)}", file=str(path))
    frame = _frame(path, training=False)
    if target and target in frame.columns:
        frame = frame.drop(columns=[target])
    return _numeric(frame, path)
