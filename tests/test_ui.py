"""The terminal view: what it says about the budget."""

from __future__ import annotations

import io

from rich.console import Console

from autodl.events import StudyInfo, TrialEnd
from autodl.ui import ProgressDisplay


def _info(total: int | None, timeout: float | None) -> StudyInfo:
    return StudyInfo(study="s", space_name="tiny", space_source="tiny.yaml", space_text="",
                     data={"name": "iris", "modality": "tabular", "task": "classification"},
                     objectives=[("accuracy", "maximize")], families=["mlp"],
                     total_trials=total, finished_before=0, epochs=3, out_dir=".", settings={},
                     timeout=timeout)


def _shown(total: int | None, timeout: float | None) -> str:
    out = io.StringIO()
    display = ProgressDisplay(Console(file=out, width=300), live=False)
    display.study_start(_info(total, timeout))
    display.trial_end(TrialEnd(number=0, state="COMPLETE", values=[0.9], reason=None,
                               detail="", best_epoch=3, epochs_run=3, metrics={},
                               params_count=10, duration_s=1.0))
    return out.getvalue()


def test_progress_without_trial_budget_shows_elapsed_of_the_timeout() -> None:
    text = _shown(None, 90)
    assert "trials for 1m30s" in text
    assert "1 done ·" in text and "/1m30s elapsed" in text and "None" not in text


def test_progress_with_both_limits_shows_each() -> None:
    text = _shown(20, 90)
    assert "20 trials or 1m30s" in text
    assert "1/20 done" in text and "/1m30s elapsed" in text


def test_progress_with_trial_budget_only() -> None:
    text = _shown(20, None)
    assert "20 trials ×" in text and "1/20 done" in text and "elapsed/" not in text
