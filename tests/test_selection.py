"""How trials are scored: cross-validation on small data, one validation split on large."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from autodl.errors import UsageError
from autodl.selection import CV_MAX_SAMPLES, DEFAULT_FOLDS, choose_protocol


def _data(n: int, classes: int = 2, task: str = "classification") -> SimpleNamespace:
    y = np.arange(n) % classes if task == "classification" else np.linspace(0, 1, n)
    return SimpleNamespace(y_train=y[: n * 4 // 5], y_val=y[n * 4 // 5:], task=task)


def test_choose_protocol_small_data_is_cross_validated_large_data_holds_out() -> None:
    small = choose_protocol(_data(50), seed=1)
    assert (small.kind, small.k, small.samples) == ("cv", DEFAULT_FOLDS, 50)
    assert small.trial_spec() == {"k": DEFAULT_FOLDS, "seed": 1}
    large = choose_protocol(_data(CV_MAX_SAMPLES))
    assert large.kind == "holdout" and large.trial_spec() is None


def test_choose_protocol_folds_never_exceed_the_rarest_class() -> None:
    assert choose_protocol(_data(9, classes=3)).k == 3
    assert choose_protocol(_data(3, classes=3)).kind == "holdout"  # one sample per class
    assert choose_protocol(_data(40, task="regression")).k == DEFAULT_FOLDS


def test_choose_protocol_flags_force_either_and_bad_k_is_a_usage_error() -> None:
    assert choose_protocol(_data(50), holdout=True).kind == "holdout"
    assert choose_protocol(_data(5000), cv=3).k == 3
    with pytest.raises(UsageError, match=r"--cv: expected 2 <= K <= 3 \(the rarest class"):
        choose_protocol(_data(9, classes=3), cv=4)


def test_portfolio_first_trials_are_the_published_defaults_the_space_admits(
        tmp_path) -> None:
    import optuna

    import autodl
    from autodl.selection import PORTFOLIO, portfolio

    assert [h["family"] for h in portfolio("sequence", ["rnn", "cnn"])] == ["cnn", "rnn", "cnn"]
    assert portfolio("tabular", ["cnn"]) == [{"family": "cnn"}]  # no hint: tried once
    space = tmp_path / "s.yaml"  # channels up to 48: the FCN's 64 is left to the sampler
    space.write_text("defaults: {holdout: true}\nfamilies:\n  cnn:\n    depth: {low: 1, high: 3}"
                     "\n    channels: {low: 8, high: 48}\n    kernel_size: [3, 7]\n"
                     "    downsample: [0, 1]\n  mlp: {width: 16}\n")
    autodl.search(str(space), data="synthetic:sequence", trials=4, epochs=1, seed=0,
                  study="pf", storage=str(tmp_path / "j.journal"), out=str(tmp_path / "run"),
                  tracking=False, export=False)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.journal")))
    first = optuna.load_study(study_name="pf", storage=storage).trials[0]
    fcn = PORTFOLIO["sequence"][0]["model"]
    assert first.params["family"] == "cnn"
    assert first.params["cnn.depth"] == fcn["depth"] and first.params["cnn.kernel_size"] == 7
    assert first.params["cnn.downsample"] == 0
    assert 8 <= first.params["cnn.channels"] <= 48  # sampled, not the hint's 64
