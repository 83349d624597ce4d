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


def _accuracy_score(y: np.ndarray):
    def score(p: np.ndarray) -> tuple[float, float]:
        loss = -np.log(p[np.arange(len(y)), y].clip(1e-12)).mean()
        return float((p.argmax(1) == y).mean()), -float(loss)
    return score


def _confident(y: np.ndarray, right: np.ndarray, classes: int = 3) -> np.ndarray:
    """Probabilities that put 0.8 on the true class where ``right`` (0.2 on the next one),
    elsewhere 0.6 on the next class (0.4 on the true one): any right and wrong pair
    averages to a right answer."""
    p = np.zeros((len(y), classes))
    rows, wrong = np.arange(len(y)), (y + 1) % classes
    p[rows, y] = np.where(right, 0.8, 0.4)
    p[rows, wrong] = np.where(right, 0.2, 0.6)
    return p


def test_greedy_selection_combines_models_that_err_on_different_samples() -> None:
    from autodl.selection import greedy_selection

    y, rows = np.arange(40) % 3, np.arange(40)
    a = _confident(y, rows < 22)  # the best single models: right on 22 of 40
    b = _confident(y, rows >= 18)
    weak = _confident(y, rows < 10)
    sel = greedy_selection([a, weak, b], _accuracy_score(y), rounds=10)
    assert sel.single == 0 and sel.single_score[0] == pytest.approx(0.55)
    assert sel.beats_single and sel.score[0] == 1.0  # a and b averaged are right everywhere
    assert sel.counts == {0: 1, 2: 1} and sel.weights == {0: 0.5, 2: 0.5}


def test_greedy_selection_keeps_the_single_model_no_ensemble_beats() -> None:
    from autodl.selection import greedy_selection

    y = np.arange(30) % 3
    best = _confident(y, np.ones(30, bool))  # right everywhere
    worse = _confident(y, np.arange(30) < 10)
    sel = greedy_selection([worse, best], _accuracy_score(y), rounds=5)
    assert sel.counts == {1: 1} and not sel.beats_single
