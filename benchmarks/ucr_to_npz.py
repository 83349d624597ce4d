"""Convert UCR/UEA archive sets in the ``.ts`` format to the .npz layout that
``bench_quality.py`` and ``autodl search --data`` read (the layout of ``../shared/data``):
``X_train`` / ``X_test`` ``(n, T, C)`` float32 (shorter series zero-padded to the longest,
missing values as zeros), ``y_train`` / ``y_test`` int64, ``classes`` (the label strings).

    python benchmarks/ucr_to_npz.py DIR/GunPoint DIR/ArrowHead --out sets/

Each argument is a folder holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``, as the archive and
the ``aeon`` wheel (``aeon/datasets/data/NAME/``) ship them: the quality numbers for sets
outside ``../shared/data`` in the README were measured on files made this way from the
``aeon`` 1.6.0 wheel. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def read_ts(path: Path) -> tuple[list[list[list[float]]], list[str]]:
    """The series (per case, per channel) and labels of one ``.ts`` file."""
    X: list[list[list[float]]] = []
    y: list[str] = []
    in_data = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if in_data:
            *channels, label = line.split(":")
            X.append([[0.0 if v in ("?", "NaN") else float(v) for v in c.split(",")]
                      for c in channels])
            y.append(label.strip())
    if not X:
        raise SystemExit(f"{path}: no @data section with cases")
    return X, y


def to_array(X: list[list[list[float]]], length: int) -> np.ndarray:
    out = np.zeros((len(X), length, len(X[0])), dtype=np.float32)
    for i, case in enumerate(X):
        for c, series in enumerate(case):
            out[i, : len(series), c] = series
    return out


def convert(folder: Path, out_dir: Path) -> Path:
    name = folder.name
    X_train, y_train = read_ts(folder / f"{name}_TRAIN.ts")
    X_test, y_test = read_ts(folder / f"{name}_TEST.ts")
    length = max(len(s) for case in X_train + X_test for s in case)
    classes = sorted(set(y_train) | set(y_test))
    index = {c: i for i, c in enumerate(classes)}
    dest = out_dir / f"{name}.npz"
    np.savez(dest, X_train=to_array(X_train, length), X_test=to_array(X_test, length),
             y_train=np.array([index[c] for c in y_train], dtype=np.int64),
             y_test=np.array([index[c] for c in y_test], dtype=np.int64),
             classes=np.array(classes))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in args.folders:
        dest = convert(folder, args.out)
        with np.load(dest) as d:
            print(f"{dest}: train {d['X_train'].shape}, test {d['X_test'].shape}, "
                  f"{len(d['classes'])} classes")


if __name__ == "__main__":
    main()
