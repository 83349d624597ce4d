"""The Optuna backend through the public API: every sampler and pruner, resume, budgets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest

import autodl
from autodl.backends._samplers import PRUNERS, SAMPLERS
from autodl.backends._study import REQUEUED, counted_trials
from autodl.errors import StorageError, UsageError
from autodl.events import SearchListener, TrialEnd
from autodl.runner import run_search
from autodl.settings import SearchSettings


def _search(space: Path, **kw):
    kw.setdefault("tracking", False)
    kw.setdefault("export", False)
    return autodl.search(str(space), **kw)


# Each single-objective sampler searches with a pruner and each pruner with a sampler (nsga2:
# the multi-objective test): 6 searches instead of 11, as a search's fixed cost (starting its
# worker process) is most of its time.
_SINGLE = [s for s in SAMPLERS if s != "nsga2"]
_PAIRS = [(_SINGLE[i % len(_SINGLE)], PRUNERS[i % len(PRUNERS)])
          for i in range(max(len(_SINGLE), len(PRUNERS)))]


@pytest.mark.parametrize("sampler, pruner", _PAIRS)
def test_optuna_backend_every_sampler_and_pruner_completes(tiny_space: Path, sampler: str,
                                                           pruner: str) -> None:
    result = _search(tiny_space, sampler=sampler, pruner=pruner, trials=4, epochs=3, seed=1)
    counts = result.trial_counts
    assert counts["complete"] + counts["pruned"] + counts["failed"] == 4
    assert counts["complete"] >= 1
    assert 0.0 <= result.best_value <= 1.0
    assert result.best_params["family"] in ("mlp", "transformer")


def test_optuna_backend_multi_objective_gives_pareto_front(tmp_path: Path) -> None:
    space = tmp_path / "mo.yaml"
    space.write_text("objectives: [accuracy, params]\nfamilies:\n  mlp:\n"
                     "    width: {low: 4, high: 64, log: true}\n")
    for sampler in ("tpe", "nsga2"):
        result = _search(space, data="iris", trials=4, epochs=2, sampler=sampler,
                         study=f"mo-{sampler}", seed=0)
        front = result.summary["pareto_front"]
        assert front and all(len(p["values"]) == 2 for p in front)
        assert [o["metric"] for o in result.summary["objectives"]] == ["accuracy", "params"]


def test_optuna_backend_resume_keeps_trials_and_total_budget(tiny_space: Path) -> None:
    first = _search(tiny_space, study="resumable", trials=2, epochs=2, seed=3)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal"))
    before = {t.number: t.params for t in optuna.load_study(study_name="resumable",
                                                             storage=storage).trials}
    second = _search(tiny_space, study="resumable", trials=5, epochs=2, seed=3, resume=True)
    study = optuna.load_study(study_name="resumable", storage=storage)
    assert len(study.trials) == 5  # --trials is the total across resumes
    assert {t.number: t.params for t in study.trials[:2]} == before
    # a seeded resume does not replay the parameters it already tried
    assert all(study.trials[i].params != study.trials[i - 2].params for i in (2, 3))
    assert sum(second.trial_counts.values()) == 5
    assert first.study == second.study


def test_optuna_backend_existing_study_without_resume_is_usage_error(tiny_space: Path) -> None:
    _search(tiny_space, study="taken", trials=1, epochs=1)
    with pytest.raises(UsageError, match="--resume"):
        _search(tiny_space, study="taken", trials=1, epochs=1)


def test_optuna_backend_sqlite_storage(tiny_space: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = _search(tiny_space, storage=url, trials=2, epochs=2)
    assert optuna.load_study(study_name=result.study, storage=url).trials[0].state.name in (
        "COMPLETE", "PRUNED")
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["storage"] == url


def test_optuna_backend_two_workers_share_the_budget(tiny_space: Path) -> None:
    result = _search(tiny_space, trials=6, epochs=2, workers=2, study="two")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal"))
    numbers = [t.number for t in optuna.load_study(study_name="two", storage=storage).trials]
    assert sorted(numbers) == list(range(6))
    assert sum(result.trial_counts.values()) == 6


def test_optuna_backend_seeded_cpu_run_is_repeatable(tiny_space: Path, tmp_path: Path) -> None:
    runs = [_search(tiny_space, trials=3, epochs=2, seed=7, study=f"rep{i}",
                    storage=str(tmp_path / f"rep{i}.journal"), pruner="none")
            for i in range(2)]
    trials = [optuna.load_study(study_name=f"rep{i}", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / f"rep{i}.journal")))).trials
        for i in range(2)]
    assert [t.params for t in trials[0]] == [t.params for t in trials[1]]
    assert [t.values for t in trials[0]] == [t.values for t in trials[1]]
    assert runs[0].best_value == runs[1].best_value


def test_optuna_backend_resume_repairs_a_torn_journal(tiny_space: Path, caplog) -> None:
    _search(tiny_space, study="torn", trials=2, epochs=1)
    journal = Path("autodl.journal")
    intact = journal.read_bytes()
    with journal.open("ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "torn-marker", "trial_id": 1, "par')  # crash
    result = _search(tiny_space, study="torn", trials=4, epochs=1, resume=True)
    assert sum(result.trial_counts.values()) == 4
    backups = list(Path(".").glob("autodl.journal.torn-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes().startswith(intact)
    assert journal.read_bytes().startswith(intact)  # nothing appended after a torn line
    assert b"torn-marker" not in journal.read_bytes()
    assert "torn" in caplog.text


@pytest.mark.parametrize("data", ["iris", "diabetes"])
def test_optuna_backend_non_finite_trials_fail_and_the_search_goes_on(tmp_path: Path,
                                                                        data: str) -> None:
    """A trial whose loss turns NaN/inf fails with ``non_finite``, never wins, and the trials
    after it run. SGD with lr 10 and weight decay 1 multiplies every weight by 1 - 10 * 1 = -9
    at each step, whatever the gradients are (leaky ReLU leaves no unit dead either), so the
    network overflows float32 within a few steps (an epoch has 12 or more at batch 8) for
    every seed and machine; at lr 1e-2 the same decay shrinks the weights by 1% a step and
    training stays finite. (SGD at lr 10 without decay could stay finite: a seed's numerics
    killed every ReLU once.)"""
    (tmp_path / "nan.yaml").write_text(
        "families:\n  mlp: {width: 256, depth: 3, activation: leaky_relu}\n"
        "optimizer:\n  lr: [10.0, 1.0e-2]\n  weight_decay: 1.0\n"
        "  options: {sgd: {momentum: 0.0}}\ntraining: {batch_size: 8}\n")
    result = _search(tmp_path / "nan.yaml", data=data, sampler="grid", pruner="none", trials=2,
                     epochs=3, study=f"nan-{data}", seed=0)  # any seed: nothing depends on it
    study = optuna.load_study(study_name=f"nan-{data}", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    by_lr = {t.params["optimizer.lr"]: t for t in study.trials}
    assert by_lr[10.0].state.name == "FAIL"
    assert by_lr[10.0].user_attrs["fail_reason"] == "non_finite"
    assert by_lr[1e-2].state.name == "COMPLETE"
    assert result.best_trial == by_lr[1e-2].number
    assert result.best_value is not None and abs(result.best_value) < float("inf")


MLP_ONLY = """
name: mlps
defaults: {holdout: true}  # a stacked group trains on one split (no folds)
families:
  mlp:
    depth: {low: 1, high: 2}
    width: [16, 32]
    dropout: {low: 0.0, high: 0.05}  # not the portfolio's: its one hint leads a group
optimizer:
  lr: {low: 1.0e-3, high: 3.0e-2, log: true}
  options: [adamw, sgd]
"""


@pytest.mark.parametrize("batch", [4, 1])
def test_optuna_backend_batches_trials_of_one_architecture(tmp_path: Path, batch: int) -> None:
    from mlflow import MlflowClient

    space = tmp_path / "mlps.yaml"
    space.write_text(MLP_ONLY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _search(space, data="iris", trials=8, epochs=3, seed=3, pruner="none",
                     batch_trials=batch, study="bt", tracking=True, tracking_uri=uri,
                     export=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal"))
    trials = optuna.load_study(study_name="bt", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 8
    assert [t.user_attrs.get("batched", 1) for t in trials] == [batch] * 8
    for start in range(0, 8, batch):  # a group shares its architecture and optimizer ...
        group = trials[start : start + batch]
        shared = {(t.params["mlp.depth"], t.params["mlp.width"], t.params["optimizer"])
                  for t in group}
        assert len(shared) == 1
        assert len({t.params["optimizer.lr"] for t in group}) == len(group)  # own lr each
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("bt").experiment_id],
                              "tags.`autodl.role` = 'trial'")
    assert sorted(int(r.data.tags["autodl.trial"]) for r in runs) == list(range(8))
    for run in runs:  # every member has its own run with its own epochs
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2, 3]
    assert result.summary["model"]["files"]  # the best member's weights export as usual
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0


ONE_GROUP = """
name: one_group
defaults: {holdout: true}
families:
  mlp: {depth: 2, width: 32, dropout: 0.0}
optimizer:
  lr: {low: 1.0e-3, high: 1.0e-2, log: true}
  options: [sgd]
training: {batch_size: 16, early_stopping: 0}
"""


class _PruneAt(optuna.pruners.BasePruner):
    """Prunes trial ``n`` at epoch ``at[n]`` and nothing else: which members end in which
    epoch is set by the test, not by what a seed's training computes."""

    def __init__(self, at: dict[int, int]) -> None:
        self.at = at

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return self.at.get(trial.number) == trial.last_step


class _Recorder(SearchListener):
    """The events in the order every listener (the MLflow tracker too) gets them, and what
    the study holds when each pruned trial's end is announced (right after Optuna is told)."""

    def __init__(self, study: str) -> None:
        self.study, self.events = study, []
        self.at_prune: dict[int, dict[int, tuple[str, int | None]]] = {}

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("epoch", number, epoch))

    def trial_end(self, end: TrialEnd) -> None:
        self.events.append(("end", end.number, end.state))
        if end.state == "PRUNED":
            trials = optuna.load_study(study_name=self.study, storage=_journal()).trials
            self.at_prune[end.number] = {t.number: (t.state.name, t.last_step) for t in trials}


def _journal() -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal"))


def test_optuna_backend_ends_a_pruned_member_before_its_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batched member that is pruned is told to Optuna (and announced to the listeners,
    MLflow's tracker among them) in the epoch it is pruned, while its group-mates train on;
    it used to wait for the group's last member. The pruner prunes trial 3 at epoch 1 and
    trial 1 at epoch 2 and never trials 0 and 2 (whose small learning rates cannot diverge),
    so the outcome is the same for every seed and machine."""
    space = tmp_path / "one_group.yaml"
    space.write_text(ONE_GROUP)
    monkeypatch.setattr("autodl.backends._optuna.make_pruner",
                        lambda name, epochs: _PruneAt({3: 1, 1: 2}))
    recorder = _Recorder("early")
    run_search(SearchSettings(space=str(space), data="iris", trials=4, epochs=4, seed=0,
                              workers=1, batch_trials=4, study="early", tracking=False,
                              export=False), [recorder])
    trials = optuna.load_study(study_name="early", storage=_journal()).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert [t.user_attrs["batched"] for t in trials] == [4] * 4  # one stacked group
    assert [t.last_step for t in trials] == [4, 2, 4, 1]
    # told to Optuna in its epoch: its mates have reported that epoch and no later one
    assert recorder.at_prune == {
        3: {0: ("RUNNING", 1), 1: ("RUNNING", 1), 2: ("RUNNING", 1), 3: ("PRUNED", 1)},
        1: {0: ("RUNNING", 2), 1: ("PRUNED", 2), 2: ("RUNNING", 2), 3: ("PRUNED", 1)},
    }

    def epoch(e: int, *members: int) -> list[tuple]:
        return [("epoch", n, e) for n in members]

    assert recorder.events == [*epoch(1, 0, 1, 2, 3), ("end", 3, "PRUNED"),
                               *epoch(2, 0, 1, 2), ("end", 1, "PRUNED"),
                               *epoch(3, 0, 2), *epoch(4, 0, 2),
                               ("end", 0, "COMPLETE"), ("end", 2, "COMPLETE")]


@pytest.mark.parametrize("batched", [False, True])
def test_optuna_backend_timeout_completes_running_trials_with_their_best_epoch(
        tmp_path: Path, batched: bool) -> None:
    """A trial still training when ``--timeout`` is up ends at its next epoch as COMPLETE
    (its best epoch so far), and the search hands over a model, instead of running on."""
    space = tmp_path / "s.yaml"
    space.write_text("defaults: {holdout: true}\nfamilies:\n  mlp: {width: 8, depth: 1}\n"
                     "optimizer:\n  lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    result = autodl.search(str(space), data="iris", trials=2 if batched else 1,
                           epochs=10**6, timeout=3, seed=0, study="deadline", tracking=False,
                           pruner="none",
                           export=False, storage=str(tmp_path / "j.journal"), ensemble=0,
                           out=str(tmp_path / "run"), batch_trials=2 if batched else 1)
    trials = optuna.load_study(study_name="deadline", storage=_journal_at(tmp_path)).trials
    states = [(t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    assert trials and all(s == "COMPLETE" for s, _ in states), states
    for t in trials:
        assert t.user_attrs["stop_reason"] == "timeout"
        assert 1 <= t.user_attrs["epochs_run"] < 10**6
        assert t.user_attrs.get("batched", 1) == (2 if batched else 1)
    refit = result.summary["refit"]  # refit when the time allows, else skipped, named
    assert refit["trial"] == result.summary["best"]["trial"]
    assert refit.get("dir") or refit.get("skipped") == "--timeout was reached"


def _journal_at(folder: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "j.journal")))


def _claim_until_none(url: str, grid: dict | None, go: Any, out: Any) -> None:
    """One process of the test below: claim and finish trials until none is left."""
    from autodl.backends._storage import open_storage
    from autodl.backends._study import Slots

    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    slots = Slots(study, grid)
    go.wait()
    ran = []
    while (trial := slots.claim()) is not None:
        study.tell(trial, float(trial.number))
        ran.append(trial.number)
    out.put(ran)


@pytest.mark.parametrize("storage, grid", [("journal", None), ("sqlite", None),
                                           ("journal", {"x": [1, 2, 3], "y": [1, 2, 3]})])
def test_slots_several_processes_never_exceed_the_budget(tmp_path: Path, storage: str,
                                                         grid: dict | None) -> None:
    """Four processes claim from one study at once, each creating trials as it claims: the
    budget (or the grid, when smaller) runs exactly once, and nothing is left waiting."""
    import multiprocessing

    from autodl.backends._storage import open_storage
    from autodl.backends._study import BUDGET, UNUSED, is_void

    url = str(tmp_path / "s.journal") if storage == "journal" else f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="shared", storage=open_storage(url))
    study.set_user_attr(BUDGET, 24)
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_until_none, args=(url, grid, go, out)) for _ in range(4)]
    for proc in procs:
        proc.start()
    go.set()
    ran = [n for _ in procs for n in out.get(timeout=300)]
    for proc in procs:
        proc.join(60)
    trials = optuna.load_study(study_name="shared", storage=open_storage(url)).trials
    expected = 9 if grid else 24
    assert len(ran) == len(set(ran)) == expected
    counted = [t for t in trials if not is_void(t)]
    assert sorted(t.number for t in counted) == sorted(ran)
    assert all(t.state.name == "COMPLETE" for t in counted)
    assert all(t.user_attrs.get(UNUSED) and t.state.name == "FAIL" for t in trials
               if is_void(t))  # the few created at once for the last slots
    if grid:
        points = {(t.system_attrs["fixed_params"]["x"], t.system_attrs["fixed_params"]["y"])
                  for t in counted}
        assert len(points) == 9  # every grid point once


def test_optuna_backend_huge_budget_creates_trials_as_they_are_claimed(tiny_space: Path
                                                                       ) -> None:
    """``--trials 1000000 --timeout S``: trials are created when they are claimed, so the
    journal holds the trials that ran (and a few the search gave back), none waiting."""
    from autodl.backends._study import UNUSED

    result = _search(tiny_space, trials=1_000_000, timeout=2, epochs=1, study="huge")
    study = optuna.load_study(study_name="huge", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))
    ran = sum(result.trial_counts.values())
    assert ran >= 1
    assert not [t for t in study.trials if t.state.name in ("WAITING", "RUNNING")]
    unused = [t for t in study.trials if t.user_attrs.get(UNUSED)]
    # unused: at most a family's first trial (enqueued with the study) the timeout left unrun
    assert len(study.trials) == ran + len(unused) and len(unused) <= 2
    assert result.summary["budget"] == {"trials": 1_000_000, "timeout": 2.0}
    assert result.summary["stopped"] == "timeout"
    assert Path("autodl.journal").stat().st_size < 20_000 * (len(study.trials) + 2)


def test_optuna_backend_timeout_without_trials_runs_until_the_time_is_up(tmp_path: Path
                                                                         ) -> None:
    """``timeout`` without ``trials``: no trial budget (not the space's ``defaults.trials``);
    the search ends because the time is up, whatever the machine's speed."""
    space = tmp_path / "two.yaml"
    space.write_text("defaults: {data: iris, trials: 2, epochs: 1}\n"
                     "families:\n  mlp: {width: 8}\n")
    result = _search(space, timeout=2, study="until")
    assert result.summary["budget"] == {"trials": None, "timeout": 2.0}
    assert result.summary["stopped"] == "timeout"
    assert sum(result.trial_counts.values()) >= 1


def test_requeue_stale_leaves_a_claim_in_progress_alone_until_its_grace_ends(
        tmp_path: Path) -> None:
    """The state another process leaves between its two claim writes (WAITING -> RUNNING,
    then the owner): a resume inside the grace period keeps the trial RUNNING; one after it
    re-queues the trial. An ownerless trial older than the grace is re-queued at once."""
    import datetime

    from autodl.backends._storage import open_storage
    from autodl.backends._study import BUDGET, CLAIM_GRACE_S, REQUEUED_FROM, requeue_stale

    storage = open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name="race", storage=storage)
    study.set_user_attr(BUDGET, 4)
    study.enqueue_trial({"x": 1.0})
    claimed = study._pop_waiting_trial_id()  # the first claim write, done by Optuna's ask
    assert claimed is not None
    old = datetime.datetime.now() - datetime.timedelta(seconds=2 * CLAIM_GRACE_S)
    abandoned = storage.create_new_trial(study._study_id, optuna.trial.FrozenTrial(
        number=-1, state=optuna.trial.TrialState.RUNNING, value=None, datetime_start=old,
        datetime_complete=None, params={}, distributions={}, user_attrs={},
        system_attrs={}, intermediate_values={}, trial_id=-1))

    resumed = optuna.load_study(study_name="race", storage=open_storage(
        str(tmp_path / "s.journal")))
    assert [t._trial_id for t in requeue_stale(resumed)] == [abandoned]
    assert storage.get_trial(claimed).state.name == "RUNNING"
    assert storage.get_trial(abandoned).state.name == "FAIL"

    later = datetime.datetime.now() + datetime.timedelta(seconds=CLAIM_GRACE_S + 1)
    assert [t._trial_id for t in requeue_stale(resumed, now=later)] == [claimed]
    trials = storage.get_all_trials(study._study_id)
    assert storage.get_trial(claimed).state.name == "FAIL"
    waiting = [t for t in trials if t.state.name == "WAITING"]
    assert sorted(t.user_attrs[REQUEUED_FROM] for t in waiting) == [0, 1]


def test_study_out_dir_is_relative_so_a_copied_project_exports_its_own_files(
        tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The study records runs/<study> relative to its journal's directory: `autodl export`
    in a copy of the project reads the copy's weights, even with the original's gone."""
    import shutil

    from autodl.backends._paths import OUT_DIR
    from autodl.cli import main

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    _search(tiny_space, study="moved", trials=2, epochs=1)
    journal = (project / "autodl.journal").read_text()
    assert f'"{OUT_DIR}":"runs/moved"' in journal and str(project) not in journal
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    shutil.rmtree(project / "runs")  # the original's weights are gone

    monkeypatch.chdir(copy)
    assert main(["export", "moved", "--format", "state_dict"]) == 0
    assert (copy / "runs" / "moved" / "model" / "state_dict.pt").is_file()
    assert not (project / "runs").exists()
    assert main(["report", "moved"]) == 0
    assert (copy / "runs" / "moved" / "report.html").is_file()


class _OptunaWithoutPrivates:
    """A Study as an Optuna release without its private members might hand it over:
    only ``_storage`` (which has no public alternative) and the public API are left."""

    def __init__(self, study: optuna.Study) -> None:
        self._storage, self.study_name = study._storage, study.study_name


def test_optuna_private_falls_back_to_public_storage_calls(tmp_path: Path) -> None:
    """Each private Optuna member autodl uses has a public fallback: a waiting trial is
    still claimed exactly once (WAITING -> RUNNING), ids still resolve, user attributes
    still land (one write each instead of one journal append)."""
    from autodl.backends import _optuna_private as private

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(study_name="fallback", storage=storage)
    study.enqueue_trial({"x": 1.0})
    bare = _OptunaWithoutPrivates(study)
    assert private.study_id(bare) == study._study_id
    private.forget_cached_trials(bare)  # no cache: nothing to do
    claimed = private.pop_waiting_trial_id(bare)
    waiting = study.trials[0]
    assert claimed == waiting._trial_id and waiting.state.name == "RUNNING"
    assert private.pop_waiting_trial_id(bare) is None  # claimed once only
    assert private.trial_id(waiting, bare) == claimed
    trial = optuna.Trial(study, claimed)
    assert private.system_attrs(trial).get("fixed_params") == {"x": 1.0}
    assert private.append_user_attrs(trial, {"a": 1, "b": 2})  # the journal's one append
    assert study.trials[0].user_attrs == {"a": 1, "b": 2}
    latest = private.latest_trial(trial)
    assert latest.number == 0 and latest.user_attrs == {"a": 1, "b": 2}


def _journal_study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal")))


def test_optuna_backend_disk_full_requeues_the_trial_and_resume_completes_the_budget(
        tiny_space: Path, small_disk) -> None:
    """The trials' folder on a 40 KiB disk: the trial whose checkpoint or weights could
    not be written is re-queued (not a FAIL), the search stops with the disk's error
    naming the file, and after the disk grows ``--resume`` runs exactly the budget."""
    disk = small_disk("40k")
    out = disk.path / "run"
    with pytest.raises(StorageError) as raised:
        _search(tiny_space, study="full", trials=4, epochs=2, seed=0, out=str(out))
    assert raised.value.exit_code == 1
    message = str(raised.value)
    assert str(out) in message and "no space left on the device" in message
    assert "--resume --study full" in message and "\n" not in message
    study = _journal_study("full")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states
    assert not [t for t in counted_trials(study) if t.state.name == "FAIL"]
    assert any(t.user_attrs.get(REQUEUED) for t in study.trials)  # the filled trial
    assert not list(disk.path.rglob("*.tmp"))

    disk.resize("50m")  # space freed
    result = _search(tiny_space, study="full", trials=4, epochs=2, seed=0, out=str(out),
                     resume=True)
    study = _journal_study("full")
    assert [t.state.name for t in counted_trials(study)].count("FAIL") == 0
    assert len(counted_trials(study)) == 4 == sum(result.trial_counts.values())
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]


class _KillsItsWorker(SearchListener):
    """At trial 0's first epoch, SIGKILL the worker training it (as the kernel's OOM
    killer or a stray ``kill -9`` would)."""

    def __init__(self) -> None:
        self.pids: dict[int, int] = {}
        self.killed: int | None = None

    def trial_start(self, number: int, config: Mapping[str, Any],
                    worker: Mapping[str, Any]) -> None:
        self.pids[number] = worker["pid"]

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.killed is None:
            self.killed = number
            os.kill(self.pids[number], signal.SIGKILL)


def test_optuna_backend_killed_worker_requeues_its_trial_and_keeps_the_budget(
        tiny_space: Path) -> None:
    """The killed worker's trial is re-queued and re-run in the same search, not counted
    as a finished FAIL: the budget ends exactly with COMPLETE and PRUNED trials."""
    killer = _KillsItsWorker()
    run_search(SearchSettings(space=str(tiny_space), trials=4, epochs=10, seed=0,
                              pruner="none", study="killed", tracking=False, export=False,
                              workers=1), [killer])
    study = _journal_study("killed")
    assert killer.killed is not None
    assert study.trials[killer.killed].user_attrs.get(REQUEUED)
    assert study.trials[killer.killed].user_attrs.get("fail_reason") == "interrupted"
    counted = counted_trials(study)
    assert len(counted) == 4 and {t.state.name for t in counted} <= {"COMPLETE", "PRUNED"}
    assert any(t.user_attrs.get("autodl.requeued_from") == killer.killed for t in counted)


def _fill(directory: Path) -> None:
    """Write zeros until the file system holding ``directory`` is full."""
    with (directory / "filler").open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_storage_full_during_the_search_is_one_line_naming_the_file(small_disk,
                                                                    kind: str) -> None:
    """Optuna's own writes on a full disk (the journal's append, SQLite's insert wrapped in
    StorageInternalError) become the study storage's error, exit 1, with the --resume."""
    from autodl.backends._storage import open_storage, storage_fault

    disk = small_disk("300k")
    file = disk.path / ("autodl.journal" if kind == "journal" else "optuna.db")
    url = str(file) if kind == "journal" else f"sqlite:///{file}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    _fill(disk.path)
    with pytest.raises(Exception) as raised:
        for _ in range(100):
            trial = study.ask()
            trial.set_user_attr("config", "x" * 4000)
            study.tell(trial, 1.0)
    error = storage_fault(raised.value, url, "s")
    assert error is not None and error.exit_code == 1
    assert str(error) == (f"{file}: no space left on the device (the study storage); free "
                          "space on its disk, then rerun with --resume --study s (finished "
                          "trials are saved)")


def test_storage_corrupt_sqlite_cannot_be_opened_exit_2(tmp_path: Path) -> None:
    from autodl.backends._storage import open_storage

    (tmp_path / "optuna.db").write_bytes(b"garbage " * 1000)
    with pytest.raises(StorageError) as raised:
        open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert raised.value.exit_code == 2
    assert str(raised.value).startswith(f"{tmp_path / 'optuna.db'}: the file is corrupt (the "
                                        "study storage); restore it from a backup or point "
                                        "--storage at a new file")


def _ended(number: int, value: float, seconds: float) -> TrialEnd:
    return TrialEnd(number=number, state="COMPLETE", values=[value], reason=None, detail="",
                    best_epoch=10, epochs_run=10, metrics={}, params_count=1,
                    duration_s=seconds)


def test_end_phase_estimate_times_the_best_trials_refits() -> None:
    # many quick, poor trials and three slow, good ones: the ensemble's members (and so the
    # refits the end phase runs) are the slow ones, whatever the median trial takes
    from autodl.backends._end_phase import EXPORT_S, end_phase_estimate

    ended = [_ended(n, 0.5, 1.0) for n in range(20)]
    ended += [_ended(20 + n, 0.9, 30.0) for n in range(3)]
    two = end_phase_estimate(ended, folds=1, workers=2, refit=True, ensemble=True,
                             export=True)
    assert two == pytest.approx(EXPORT_S + 2 * 30.0 * 1.25)  # 3 slow refits on 2 workers
    assert end_phase_estimate(ended, 1, 2, True, False, True) == \
        pytest.approx(EXPORT_S + 30.0 * 1.25)  # no ensemble: the best trial's refit
    # minimizing: the best trials are the quick ones
    assert end_phase_estimate(ended, 5, 1, True, False, True, maximize=False) == \
        pytest.approx(EXPORT_S + 1.0 / 4)
    assert end_phase_estimate(ended, 1, 2, False, True, False) == 1.0  # nothing to refit
