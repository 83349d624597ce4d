"""Built-in datasets (scikit-learn's bundled copies, never downloaded) and seeded
synthetic generators, each returning ``RawData``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autodl.data._sentences import sentiment_sentences
from autodl.data._split import RawData
from autodl.errors import UsageError

__all__ = ["BUILTINS", "SYNTHETIC", "builtin", "synthetic"]


def _sklearn(loader: str, image: bool = False) -> Callable[[], RawData]:
    def load() -> RawData:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        X = bunch.images if image else bunch.data
        names = [str(n) for n in getattr(bunch, "target_names", [])] or None
        features = None if image else [str(f) for f in bunch.feature_names]
        y = bunch.target
        if loader == "load_digits":
            names = [str(i) for i in range(10)]
        return RawData(X=np.asarray(X, dtype=np.float32), y=y, source=loader[5:],
                       feature_names=features, class_names=names if y.dtype.kind in "iu"
                       else None, modality="image" if image else None)

    return load


BUILTINS: dict[str, tuple[str, Callable[[], RawData]]] = {
    "digits": ("8x8 handwritten digit images, 1797 samples, 10 classes (image)",
               _sklearn("load_digits", image=True)),
    "digits:tabular": ("the same digits as 64 flat features (tabular)", _sklearn("load_digits")),
    "iris": ("150 flowers, 4 features, 3 classes (tabular)", _sklearn("load_iris")),
    "wine": ("178 wines, 13 features, 3 classes (tabular)", _sklearn("load_wine")),
    "breast_cancer": ("569 tumours, 30 features, 2 classes (tabular)",
                      _sklearn("load_breast_cancer")),
    "diabetes": ("442 patients, 10 features, disease progression (tabular regression)",
                 _sklearn("load_diabetes")),
}


def builtin(name: str) -> RawData:
    return BUILTINS[name][1]()


def _seq(rng: np.random.Generator, n: int, length: int, channels: int, classes: int
         ) -> RawData:
    """Class-dependent frequencies plus a random phase and noise, per channel."""
    y = rng.integers(0, classes, n)
    t = np.linspace(0, 2 * np.pi, length)[None, :, None]
    freq = 1.0 + y[:, None, None] * 0.75 + rng.normal(0, 0.1, (n, 1, channels))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, channels))
    X = np.sin(freq * t + phase) + rng.normal(0, 0.4, (n, length, channels))
    return RawData(X=X.astype(np.float32), y=y, source="synthetic:sequence")


def _tab(rng: np.random.Generator, n: int, features: int, classes: int) -> RawData:
    centers = rng.normal(0, 1.5, (classes, features))
    y = rng.integers(0, classes, n)
    X = centers[y] + rng.normal(0, 1.0, (n, features))
    return RawData(X=X.astype(np.float32), y=y, source="synthetic:tabular")


def _reg(rng: np.random.Generator, n: int, features: int) -> RawData:
    X = rng.normal(size=(n, features))
    w = rng.normal(size=features)
    y = X @ w + 0.5 * np.sin(3 * X[:, 0]) + rng.normal(0, 0.1, n)
    return RawData(X=X.astype(np.float32), y=y.astype(np.float32),
                   source="synthetic:regression")


def _img(rng: np.random.Generator, n: int, size: int, classes: int) -> RawData:
    """Each class is a bar at its own orientation/position, with noise."""
    y = rng.integers(0, classes, n)
    X = rng.normal(0, 0.3, (n, 1, size, size))
    for c in range(classes):
        idx = np.flatnonzero(y == c)
        pos = (c * size) // classes + size // (2 * classes)
        if c % 2:
            X[idx, 0, :, pos] += 1.0
        else:
            X[idx, 0, pos, :] += 1.0
    return RawData(X=X.astype(np.float32), y=y, source="synthetic:image")


SYNTHETIC: dict[str, tuple[str, dict[str, int], Callable[..., RawData]]] = {
    "sequence": ("sine sequences, class = frequency (sequence)",
                 {"n": 600, "length": 32, "channels": 3, "classes": 3, "seed": 0}, _seq),
    "tabular": ("Gaussian blobs (tabular classification)",
                {"n": 600, "features": 8, "classes": 3, "seed": 0}, _tab),
    "regression": ("linear + sine target (tabular regression)",
                   {"n": 600, "features": 8, "seed": 0}, _reg),
    "image": ("oriented bars (image)", {"n": 600, "size": 12, "classes": 4, "seed": 0}, _img),
    "text": ("positive/negative review sentences (text, tokenised with the space's "
             "pretrained backbone)", {"n": 200, "max_length": 32, "seed": 0},
             sentiment_sentences),
}


def synthetic(kind: str, options: dict[str, str]) -> RawData:
    if kind not in SYNTHETIC:
        raise UsageError(f"unknown synthetic dataset {kind!r}; valid: "
                         + ", ".join(f"synthetic:{k}" for k in SYNTHETIC), key="data")
    _, defaults, make = SYNTHETIC[kind]
    values = dict(defaults)
    for key, text in options.items():
        if key not in defaults:
            raise UsageError(f"synthetic:{kind}: unknown option {key!r}; valid: "
                             f"{', '.join(defaults)}", key="data")
        if not text.isdigit() or (int(text) < 1 and key != "seed"):
            raise UsageError(f"synthetic:{kind}: option {key} expects a positive integer; "
                             f"found {text!r}", key="data")
        values[key] = int(text)
    if values.get("classes", 2) < 2:
        raise UsageError(f"synthetic:{kind}: classes must be at least 2", key="data")
    seed = values.pop("seed")
    return make(np.random.default_rng(seed), **values)
