"""The cost of precise batch norm (``autodl.train._norm_stats``): epochs of the sequence
portfolio's FCN and InceptionTime networks with the statistics pass and without it (the
same ``Trainer`` otherwise), on random series of UCR-like sizes, 2 threads. Prints each
ratio (time with / time without; best of 2 runs of 4 epochs each).

    python benchmarks/bench_norm_stats.py
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch

from autodl.models import create_model, get_family, resolve_params
from autodl.selection import PORTFOLIO
from autodl.train import TensorData, Trainer

SIZES = {"GunPoint-like 50 x 150": (50, 150), "OSULeaf-like 200 x 427": (200, 427),
         "1000 x 128": (1000, 128)}


def _data(n: int, length: int) -> TensorData:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, length, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    cut = n * 4 // 5
    return TensorData.from_prepared(SimpleNamespace(
        modality="sequence", task="classification", n_outputs=4, input_shape=(length, 1),
        X_train=X[:cut], y_train=y[:cut], X_val=X[cut:], y_val=y[cut:], X_test=None,
        y_test=None, y_mean=None, y_std=None), "cpu")


def _seconds(config: dict, data: TensorData, precise: bool) -> float:
    torch.manual_seed(0)
    model = create_model(config["family"], config["model"], data.input_shape, 4, "sequence")
    trainer = Trainer(model, data, config, epochs=4, metric="accuracy", maximize=True)
    trainer.batch_norm = precise  # the switch the trainer sets from the model
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    hints = [h for h in PORTFOLIO["sequence"] if h["family"] in ("cnn", "inception")][:2]
    for name, (n, length) in SIZES.items():
        data = _data(n, length)
        for hint in hints:
            family = hint["family"]
            config = {"family": family, "model": resolve_params(get_family(family),
                                                                hint["model"]),
                      "optimizer": dict(hint["optimizer"]), "schedule": hint["schedule"],
                      "training": {"batch_size": 16}}
            off = min(_seconds(config, data, False) for _ in range(2))
            on = min(_seconds(config, data, True) for _ in range(2))
            print(f"{name}, {family}: 4 epochs {off:.2f} s without, {on:.2f} s with the "
                  f"statistics pass: x{on / off:.2f}", flush=True)


if __name__ == "__main__":
    main()
