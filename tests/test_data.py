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
    (lambda p: _npz(p, X=np.zeros((20, 2)), y=np.r_[np.nan, np.arange(19) % 2]),
     "y has 1 missing (NaN/None) values; first at sample 0"),
    (lambda p: _npz(p, X=np.zeros((20, 8, 8, 3)), y=np.arange(20) % 2), "channels-last"),
    (lambda p: _npz(p, X=np.zeros((20, 4)), y=np.arange(20) % 2, X_val=np.zeros((8, 5)),
                    y_val=np.arange(8) % 2), "X_val samples have shape (5,), but X samples"),
    (lambda p: _npz(p, X_val=np.zeros((20, 4)), y_val=np.arange(20) % 2),
     "expected X and y (or X_train and y_train)"),
    (lambda p: (p / "notes.txt").write_text("x") and str(p / "notes.txt"),
     "unsupported data file type '.txt'; expected .npz, .csv or .parquet"),
    (lambda p: "digitz", "unknown dataset; expected a built-in dataset (digits, "),
    (lambda p: "digits?size=4", "takes no options"),
    (lambda p: "synthetic:audio", "valid: synthetic:sequence"),
])
def test_load_data_bad_input_raises_usage_error(tmp_path: Path, make, fragment) -> None:
    spec = make(tmp_path)
    with pytest.raises(UsageError) as err:
        load_data(spec)
    assert fragment in str(err.value)
    if spec.endswith(".npz"):
        assert Path(spec).name in str(err.value)


def test_load_data_nan_in_x_says_how_many_and_where(tmp_path: Path) -> None:
    X = np.ones((30, 3))
    X[7, 2], X[9, 0] = np.nan, np.inf
    with pytest.raises(UsageError, match=r"2 NaN/inf values in 2 samples; first at sample 7, "
                                         r"feature 2"):
        load_data(_npz(tmp_path, X=X, y=np.arange(30) % 2))


def test_load_data_refuses_absurd_table_shapes_naming_them(tmp_path: Path) -> None:
    """Too wide (pandas took a minute and 3 GB for 10^6 columns) or too short: refused from
    the header and a line count, before pandas reads the table; predict takes one row."""
    import pandas as pd

    from autodl.data import load_features
    from autodl.data._bounds import MAX_COLUMNS

    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(MAX_COLUMNS)) + ",y\n"
                    + "1," * MAX_COLUMNS + "0\n")
    with pytest.raises(UsageError, match=rf"wide\.csv: the table has 1 row x {MAX_COLUMNS + 1} "
                                         rf"columns, more than {MAX_COLUMNS} columns"):
        load_data(str(wide), target="y")
    frame = pd.DataFrame({"a": [1.0], "b": [2.0], "y": [0]})
    frame.to_csv(tmp_path / "one.csv", index=False)
    frame.to_parquet(tmp_path / "one.parquet")
    for name in ("one.csv", "one.parquet"):
        with pytest.raises(UsageError, match=rf"{name}: the table has 1 row x 3 columns; "
                                             r"expected at least 10 rows"):
            load_data(str(tmp_path / name), target="y")
    assert load_features(str(tmp_path / "one.csv"), target="y").shape == (1, 2)


def test_load_data_refuses_an_npz_whose_header_declares_a_huge_array(tmp_path: Path) -> None:
    """The .npy header is read without loading: a shape of 10^12 floats stored in 64 bytes
    is named, and nothing of its size is allocated."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(4))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("X.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", labels.getvalue())
    with pytest.raises(UsageError, match=r"huge\.npz: array 'X' declares shape \(1000000, "
                                         r"1000000\) float32 \(3\.6 TB\) but holds 64 bytes"):
        load_data(str(tmp_path / "huge.npz"))


def test_load_data_table_errors_list_the_columns(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": np.arange(30.0), "city": ["x", "y"] * 15, "t": [0, 1] * 15})
    frame.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(UsageError, match=r"c\.csv.*needs --target COLUMN; columns: a, city, t"):
        load_data(str(tmp_path / "c.csv"))
    with pytest.raises(UsageError, match=r"non-numeric feature column\(s\) city"):
        load_data(str(tmp_path / "c.csv"), target="t")
    np.savez(tmp_path / "a.npz", X=np.zeros((20, 2)), y=np.arange(20) % 2)
    with pytest.raises(UsageError, match=r"applies to \.csv/\.parquet tables only"):
        load_data(str(tmp_path / "a.npz"), target="t")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"task": "regress"}, "expected one of auto, classification, regression; found 'regress'"),
    ({"val_fraction": 1.5}, "expected 0 < val_fraction < 1; found 1.5"),
    ({"test_fraction": -0.1}, "expected 0 <= test_fraction < 1"),
])
def test_load_data_rejects_bad_arguments(kwargs, fragment) -> None:
    with pytest.raises(UsageError) as err:
        load_data("iris", **kwargs)
    assert fragment in str(err.value)


def test_load_data_task_can_be_forced(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(40, 2))
    spec = _npz(tmp_path, X=X, y=np.arange(40) % 4)
    assert load_data(spec).task == "classification"
    reg = load_data(spec, task="regression")
    assert reg.task == "regression" and reg.y_train.dtype == np.float32
    assert load_data(spec, test_fraction=0).X_test is None


def test_load_data_multi_target_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = load_data(_npz(tmp_path, X=rng.normal(size=(50, 3)), y=rng.normal(5, 2, (50, 2))))
    assert data.n_outputs == 2 and data.y_train.shape[1] == 2 and data.y_mean.shape == (2,)
    assert np.all(np.abs(data.y_train.mean(axis=0)) > 3)  # targets stay in original units


def test_load_data_forced_image_modality_adds_channel(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(30, 6, 6))
    path = _npz(tmp_path, X=X, y=np.arange(30) % 2)
    assert load_data(path).modality == "sequence"  # 3-D means (n, T, C) by default
    data = load_data(path + "?modality=image")
    assert data.modality == "image" and data.input_shape == (1, 6, 6)
    assert data.x_mean.shape == (1, 1, 1)  # per-channel statistics


def test_load_data_tiny_class_falls_back_to_unstratified_split(tmp_path: Path) -> None:
    y = np.r_[np.zeros(29, dtype=int), 1]
    data = load_data(_npz(tmp_path, X=np.arange(60.0).reshape(30, 2), y=y))
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 30


def test_synthetic_sequence_class_is_recoverable_but_not_linear() -> None:
    from sklearn.linear_model import LogisticRegression

    data = load_data("synthetic:sequence")

    def spectrum(X: np.ndarray) -> np.ndarray:
        return np.abs(np.fft.rfft(X, axis=1)).reshape(len(X), -1)

    def flat(X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1)

    for features, low, high in ((spectrum, 0.9, 1.0), (flat, 0.0, 0.7)):
        model = LogisticRegression(max_iter=500).fit(features(data.X_train), data.y_train)
        assert low <= model.score(features(data.X_val), data.y_val) <= high


def test_preprocess_reads_a_table_by_feature_name(tmp_path: Path) -> None:
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(3, 2, 40), "b": rng.normal(-1, 5, 40),
                          "y": rng.normal(size=40)})
    frame.to_csv(tmp_path / "r.csv", index=False)
    data = load_data(str(tmp_path / "r.csv"), target="y")
    by_name = data.preprocess(frame[["b", "y", "a"]])  # other order, extra column
    assert np.allclose(by_name, data.preprocess(frame[["a", "b"]].to_numpy()))
    assert data.preprocess(frame[["a", "b"]].to_numpy()[0]).shape == (1, 2)  # one sample
    with pytest.raises(UsageError, match=r"missing feature column\(s\) b"):
        data.preprocess(frame[["a"]])


def test_save_stats_is_enough_to_preprocess(tmp_path: Path) -> None:
    import json

    data = load_data("synthetic:sequence?n=120")
    data.save_stats(tmp_path / "stats.json")
    json.loads((tmp_path / "stats.json").read_text())  # plain JSON
    pre = PreparedData.load_stats(tmp_path / "stats.json")
    raw = np.random.default_rng(0).normal(size=(5, 32, 3))
    assert np.array_equal(pre.transform(raw), data.preprocess(raw))
    assert pre.n_outputs == 3 and pre.classes == data.classes


def test_save_load_round_trip_classification(tmp_path: Path) -> None:
    data = load_data("wine", seed=3)
    data.save(tmp_path / "w.npz")
    back = PreparedData.load(tmp_path / "w.npz")
    for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "x_mean", "x_std"):
        assert np.array_equal(getattr(back, key), getattr(data, key)), key
    assert (back.classes, back.feature_names) == (data.classes, data.feature_names)
    assert back.y_train.dtype == np.int64


def test_prepared_data_load_bad_file_is_usage_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", X=np.zeros(3))
    with pytest.raises(UsageError, match=r"other\.npz.*not a prepared-data file: missing meta"):
        PreparedData.load(tmp_path / "other.npz")
