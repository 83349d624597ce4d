"""--data SPEC as a user gives it: built-ins, synthetic data, files, and bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autodl.data import PreparedData, list_datasets, load_data
from autodl.errors import UsageError


@pytest.mark.parametrize("spec, modality, task, shape, outputs", [
    ("digits", "image", "classification", (1, 8, 8), 10),
    ("digits:tabular", "tabular", "classification", (64,), 10),
    ("iris", "tabular", "classification", (4,), 3),
    ("wine", "tabular", "classification", (13,), 3),
    ("breast_cancer", "tabular", "classification", (30,), 2),
    ("diabetes", "tabular", "regression", (10,), 1),
    ("synthetic:sequence", "sequence", "classification", (32, 3), 3),
    ("synthetic:image", "image", "classification", (1, 12, 12), 4),
    ("synthetic:regression", "tabular", "regression", (8,), 1),
    ("synthetic:sequence?n=100&length=16&channels=2&classes=4", "sequence", "classification",
     (16, 2), 4),
])
def test_load_data_builtins(spec, modality, task, shape, outputs) -> None:
    data = load_data(spec)
    assert (data.modality, data.task, data.input_shape, data.n_outputs) == (
        modality, task, shape, outputs)
    assert data.X_train.dtype == np.float32 and data.X_test is not None


def test_list_datasets_names_every_builtin() -> None:
    names = [n for n, _ in list_datasets()]
    assert {"digits", "iris", "wine", "breast_cancer", "diabetes", "synthetic:sequence"} <= set(
        names)


def test_load_data_splits_are_disjoint_seeded_and_stratified() -> None:
    a, b, c = load_data("digits", seed=1), load_data("digits", seed=1), load_data("digits",
                                                                                    seed=2)
    assert np.array_equal(a.X_val, b.X_val) and not np.array_equal(a.X_val, c.X_val)
    rows = {arr.tobytes() for arr in a.X_train}
    assert not any(x.tobytes() in rows for x in a.X_val)
    assert not any(x.tobytes() in rows for x in a.X_test)
    share_train = np.bincount(a.y_train, minlength=10) / len(a.y_train)
    share_val = np.bincount(a.y_val, minlength=10) / len(a.y_val)
    assert np.abs(share_train - share_val).max() < 0.02


def test_normalisation_uses_train_statistics_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(5, 2, (200, 3)).astype(np.float32)
    X_val = rng.normal(50, 2, (40, 3)).astype(np.float32)  # a planted shift
    y, y_val = rng.integers(0, 2, 200), rng.integers(0, 2, 40)
    np.savez(tmp_path / "d.npz", X=X, y=y, X_val=X_val, y_val=y_val)
    data = load_data(str(tmp_path / "d.npz"))
    assert np.abs(data.X_train.mean(axis=0)).max() < 1e-4
    assert data.X_val.mean() > 10  # the shift survives: val was not normalised by itself
    assert len(data.X_val) == 40  # the given val split is used as is


def test_npz_with_all_splits_and_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.array(["cat", "dog", "emu"])
    parts = {k: rng.normal(size=(n, 5)).astype(np.float32)
             for k, n in (("X_train", 90), ("X_val", 30), ("X_test", 30))}
    ys = {k.replace("X", "y"): labels[rng.integers(0, 3, len(v))] for k, v in parts.items()}
    np.savez(tmp_path / "s.npz", **parts, **ys)
    data = load_data(str(tmp_path / "s.npz"))
    assert data.classes == ["cat", "dog", "emu"]
    assert (len(data.X_train), len(data.X_val), len(data.X_test)) == (90, 30, 30)


def test_csv_and_parquet_with_target(tmp_path: Path) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame["a"] > 0, "high", "low")
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        data = load_data(str(tmp_path / name), target="label")
        assert data.classes == ["high", "low"] and data.input_shape == (3,)
    with pytest.raises(UsageError, match=r"no column 'price'.*a, b, c, label"):
        load_data(str(tmp_path / "t.csv"), target="price")


def test_preprocess_reproduces_training_transform() -> None:
    import sklearn.datasets

    data = load_data("digits")
    raw = sklearn.datasets.load_digits().images.astype(np.float32)
    transformed = data.preprocess(raw)
    assert transformed.shape == (len(raw), 1, 8, 8)
    rows = {x.tobytes() for x in transformed}
    assert all(x.tobytes() in rows for x in data.X_test[:20])


def test_save_load_round_trip(tmp_path: Path) -> None:
    data = load_data("diabetes")
    data.save(tmp_path / "d.npz")
    back = PreparedData.load(tmp_path / "d.npz")
    assert np.array_equal(back.X_val, data.X_val) and back.y_mean == data.y_mean
    assert back.summary() == data.summary()


def _npz(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: _npz(p, features=np.zeros((20, 2)), labels=np.zeros(20)), "missing array 'X'"),
    (lambda p: _npz(p, X=np.zeros((20, 2)), y=np.zeros(19, dtype=int)), "19 labels"),
    (lambda p: _npz(p, X=np.where(np.eye(20, 2) > 0, np.nan, 1.0), y=np.arange(20) % 2),
     "NaN/inf"),
    (lambda p: _npz(p, X=np.zeros((20, 2)), y=np.zeros(20, dtype=int)), "single class"),
    (lambda p: _npz(p, X=np.zeros((5, 2)), y=np.arange(5) % 2), "too few samples"),
    (lambda p: str(p / "missing.npz"), "no such file"),
    (lambda p: "synthetic:sequence?lenght=3", "unknown option 'lenght'"),
])
def test_load_data_bad_input_raises_usage_error(tmp_path: Path, make, fragment) -> None:
    spec = make(tmp_path)
    with pytest.raises(UsageError) as err:
        load_data(spec)
    assert fragment in str(err.value)
    if spec.endswith(".npz"):
        assert Path(spec).name in str(err.value)
