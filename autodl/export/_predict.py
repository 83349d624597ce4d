"""``autodl predict``: the training preprocessing, batched inference, a predictions file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autodl.errors import UsageError
from autodl.export._model_dir import load_model_dir

__all__ = ["predict", "write_predictions"]


def predict(model_dir: Path, X_raw: np.ndarray, batch_size: int = 4096,
            trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """Classification: ``class`` (names), ``class_id``, ``proba``; regression:
    ``prediction`` in the target's original units."""
    loaded = load_model_dir(model_dir, trust_pickle)
    X = torch.as_tensor(loaded.preprocessor.transform(X_raw, "--data"))
    with torch.inference_mode():
        out = torch.cat([loaded.module(X[i : i + batch_size])
                         for i in range(0, len(X), batch_size)]).numpy()
    pre = loaded.preprocessor
    if pre.task == "classification":
        proba = torch.softmax(torch.as_tensor(out), dim=1).numpy()
        ids = proba.argmax(axis=1)
        return {"class": np.asarray(pre.classes, dtype=object)[ids], "class_id": ids,
                "proba": proba}
    pred = out * np.asarray(pre.y_std) + np.asarray(pre.y_mean)
    return {"prediction": pred[:, 0] if pred.shape[1] == 1 else pred}


def write_predictions(result: dict[str, np.ndarray], out: Path, classes: list[str] | None = None
                      ) -> None:
    out = Path(out)
    if out.suffix == ".npz":
        arrays = {k: np.asarray(v, dtype=str) if v.dtype == object else v
                  for k, v in result.items()}
        # mypy matches **arrays against savez's allow_pickle: bool; the keys are outputs
        np.savez(out, **arrays)  # type: ignore[arg-type]
        return
    if out.suffix != ".csv":
        raise UsageError(f"--out {out}: expected a .csv or .npz file", key="out")
    import pandas as pd

    columns: dict[str, np.ndarray] = {}
    for key, value in result.items():
        if value.ndim == 2:
            names = classes or [str(i) for i in range(value.shape[1])]
            prefix = "proba" if key == "proba" else key
            columns.update({f"{prefix}_{n}": value[:, i] for i, n in enumerate(names)})
        else:
            columns[key] = value
    pd.DataFrame(columns).to_csv(out, index=False)
