"""The Ray Tune backend end to end, through the command line.

Every Ray these tests start runs inside network namespaces the tests create (only
loopback, or a veth pair between two of them): see tests/netns.py. Ray's temp dir is a
short directory under /tmp (Unix socket paths are limited to ~107 characters), and every
Ray process gets the same auth token through the environment (nothing in ~/.ray).

Two Rays per module: the search of ``local_run`` starts its own local instance (no
``--ray-address``), and every other search joins one two-node cluster (``cluster``: a
head and a worker of one CPU each, so two trials at a time) that the module starts once;
starting Ray took about as long as each small search itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from tests.conftest import TINY_SPACE
from tests.netns import (
    Namespace,
    create_namespace,
    delete_namespace,
    link_namespaces,
    skip_reason,
)

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is an optional extra: pip install 'autodl[ray]'")

RAY = str(Path(sys.executable).parent / "ray")
HEAD, WORKER = "10.77.0.1", "10.77.0.2"


def _ray_env(temp_root: str) -> dict[str, str]:
    return {**os.environ, "RAY_TMPDIR": temp_root, "RAY_DISABLE_USAGE_STATS": "1",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _search(ns: Namespace, cwd: Path, env: dict[str, str], *args: str,
            timeout: float = 240) -> subprocess.CompletedProcess:
    return ns.run([sys.executable, "-m", "autodl", "search", "tiny.yaml", "--data", "digits",
                   "--backend", "ray", "--quiet", *args],
                  cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _study(cwd: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(cwd / "autodl.journal")))
    return optuna.load_study(study_name=name, storage=storage)


@dataclass
class Run:
    cwd: Path
    study: str
    proc: subprocess.CompletedProcess

    def ok(self) -> Run:
        assert self.proc.returncode == 0, self.proc.stdout[-2000:] + self.proc.stderr[-4000:]
        return self

    @property
    def summary(self) -> dict:
        return json.loads((self.cwd / "runs" / self.study / "summary.json").read_text())


@dataclass
class Cluster:
    """A running two-node Ray cluster; searches run in the head's namespace and join it."""
    head: Namespace
    env: dict[str, str]
    address: str = f"{HEAD}:6379"

    def search(self, cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return _search(self.head, cwd, self.env, "--ray-address", self.address, *args,
                       timeout=timeout)

    def popen_search(self, cwd: Path, *args: str) -> subprocess.Popen:
        return self.head.popen([sys.executable, "-m", "autodl", "search", "tiny.yaml",
                                "--data", "digits", "--backend", "ray", "--quiet",
                                "--ray-address", self.address, *args], cwd=cwd, env=self.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One cluster for the module: a head and a worker node (one CPU each) in two
    namespaces joined by a veth pair; emptied and deleted when the module ends."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    temp = tempfile.mkdtemp(dir="/tmp", prefix="ray")
    made: list[Namespace] = []
    try:
        made += [create_namespace(), create_namespace()]
        head, worker = made
        link_namespaces(head, worker, HEAD, WORKER)
        env = _ray_env(temp)
        start = [RAY, "start", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats"]
        up = head.run([*start, "--head", "--node-ip-address", HEAD, "--port", "6379",
                       "--include-dashboard=false", "--temp-dir", temp], env=env,
                      capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        joined = worker.run([*start, "--address", f"{HEAD}:6379", "--node-ip-address",
                             WORKER], env=env, capture_output=True, text=True, timeout=120)
        assert joined.returncode == 0, joined.stderr
        yield Cluster(head, env)
    finally:
        for ns in made:
            delete_namespace(ns)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One tracked, exported search on a local Ray (ASHA, 6 trials, one at a time so the
    seeded run is repeatable), shared by the tests that read its outputs."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    cwd = tmp_path_factory.mktemp("ray-local")
    (cwd / "tiny.yaml").write_text(TINY_SPACE)
    temp = tempfile.mkdtemp(dir="/tmp", prefix="ray")
    ns = create_namespace()
    try:
        proc = _search(ns, cwd, _ray_env(temp), "--trials", "6", "--epochs", "4", "--workers",
                       "1", "--seed", "3", "--study", "local")
    finally:
        delete_namespace(ns)
        shutil.rmtree(temp, ignore_errors=True)
    yield Run(cwd, "local", proc)


@pytest.mark.slow
@needs_ray
def test_ray_backend_asha_prunes_some_trials(local_run: Run) -> None:
    counts = local_run.ok().summary["trials"]
    assert counts["complete"] + counts["pruned"] + counts["failed"] == 6
    assert counts["pruned"] >= 1 and counts["complete"] >= 1
    trials = _study(local_run.cwd, "local").trials
    assert [t.number for t in trials] == list(range(6))
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert len(pruned) == counts["pruned"]
    assert all(t.user_attrs["epochs_run"] < 4 and t.user_attrs["fail_reason"] == "pruned"
               for t in pruned)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert all(t.user_attrs["epochs_run"] == 4 and 0 < t.value <= 1 for t in complete)


@pytest.mark.slow
@needs_ray
def test_ray_backend_logs_a_parent_run_and_one_child_run_per_trial(local_run: Run) -> None:
    import mlflow

    local_run.ok()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{local_run.cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("local")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("autodl.role") == "study"]
    children = [r for r in runs if r.data.tags.get("autodl.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["autodl.trial"]) for r in children) == list(range(6))
    states = {t.number: t.state.name for t in _study(local_run.cwd, "local").trials}
    for run in children:
        number = int(run.data.tags["autodl.trial"])
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["autodl.state"] == states[number]
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert steps and sorted(steps) == list(range(1, len(steps) + 1))
        assert run.data.params["family"] in ("mlp", "transformer")


@pytest.mark.slow
@needs_ray
def test_ray_backend_samples_family_params_only_for_the_chosen_family(local_run: Run) -> None:
    local_run.ok()
    trials = _study(local_run.cwd, "local").trials
    assert {t.params["family"] for t in trials} == {"mlp", "transformer"}  # each tried
    for t in trials:
        family, optimizer = t.params["family"], t.params["optimizer"]
        model_params = {k for k in t.params if k.startswith(("mlp.", "transformer."))}
        assert all(k.startswith(f"{family}.") for k in model_params)
        assert ("mlp.width" in t.params) == (family == "mlp")
        assert ("optimizer.sgd.momentum" in t.params) == (optimizer == "sgd")
        config = t.user_attrs["config"]
        assert config["family"] == family and config["optimizer"]["name"] == optimizer
        if family == "mlp":
            assert config["model"]["width"] == t.params["mlp.width"]


@pytest.mark.slow
@needs_ray
def test_ray_backend_exports_the_best_model_for_export_and_best(local_run: Run,
                                                                tmp_path: Path) -> None:
    summary = local_run.ok().summary
    best = summary["best"]["trial"]
    model = Path(summary["model"]["dir"])
    assert (model / "model.onnx").is_file() and (model / "state_dict.pt").is_file()
    assert (local_run.cwd / "runs" / "local" / "trials" / str(best) / "weights.pt").is_file()
    assert set(summary["test"]) >= {"accuracy", "loss"}
    cli = [sys.executable, "-m", "autodl"]
    shown = subprocess.run([*cli, "best", "local", "--json"], cwd=local_run.cwd,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["best"]["trial"] == best
    again = subprocess.run([*cli, "export", "local", "--format", "state_dict", "--out",
                            str(tmp_path / "again")], cwd=local_run.cwd, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "state_dict.pt").read_bytes() == (
        model / "state_dict.pt").read_bytes()


@pytest.mark.slow
@needs_ray
def test_ray_backend_two_node_cluster_runs_trials_on_both_nodes(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    run = Run(tmp_path, "two", cluster.search(tmp_path, "--trials", "4", "--epochs", "2",
                                              "--study", "two", "--no-tracking",
                                              "--no-export", "--seed", "0"))
    assert sum(run.ok().summary["trials"].values()) == 4
    nodes = {t.user_attrs["node_ip"] for t in _study(tmp_path, "two").trials}
    assert nodes == {HEAD, WORKER}


@pytest.mark.slow
@needs_ray
def test_ray_backend_timeout_without_trials_runs_until_the_time_is_up(cluster: Cluster,
                                                                     tmp_path: Path) -> None:
    """No trial budget (Tune's num_samples=-1): the searcher stops at the timeout."""
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)  # defaults.trials 4: not applied
    run = Run(tmp_path, "until", cluster.search(tmp_path, "--timeout", "8", "--epochs", "1",
                                                "--study", "until", "--no-tracking",
                                                "--no-export"))
    summary = run.ok().summary
    assert summary["budget"] == {"trials": None, "timeout": 8.0}
    assert summary["stopped"] == "timeout"
    assert sum(summary["trials"].values()) == len(_study(tmp_path, "until").trials) >= 1


def _scheduler_run(scheduler: str, cluster: Cluster, cwd: Path, trials: int = 4,
                   *args: str) -> tuple[Run, list]:
    """``trials`` x 4 epochs on the two-node cluster (two at a time, one CPU each), without
    tracking or export; every trial recorded, every completed one with its weights."""
    (cwd / "tiny.yaml").write_text(TINY_SPACE)
    proc = cluster.search(cwd, "--trials", str(trials), "--epochs", "4", "--seed", "1",
                          "--ray-scheduler", scheduler, "--study", scheduler, "--no-tracking",
                          "--no-export", *args)
    run = Run(cwd, scheduler, proc).ok()
    done = _study(cwd, scheduler).trials
    assert len(done) == trials and sum(run.summary["trials"].values()) == trials
    for t in done:
        if t.state.name == "COMPLETE":
            assert t.user_attrs["epochs_run"] == 4
            assert (cwd / "runs" / scheduler / "trials" / str(t.number) / "weights.pt").is_file()
    return run, done


@pytest.mark.slow
@needs_ray
def test_ray_backend_hyperband_pauses_and_resumes_trials_from_checkpoints(
        cluster: Cluster, tmp_path: Path) -> None:
    # trials 0-1 fill the bracket that runs to the end; 2-4 the one with a rung at epoch 1:
    # the first two there wait (paused) for the third, then 2 of the 3 stop and the best goes
    # on (from its checkpoint, when it was paused)
    _, trials = _scheduler_run("hyperband", cluster, tmp_path, 5)
    assert [t.state.name for t in trials[:2]] == ["COMPLETE", "COMPLETE"]
    rung = trials[2:]
    assert sorted(t.state.name for t in rung) == ["COMPLETE", "PRUNED", "PRUNED"]
    assert all(t.user_attrs["epochs_run"] == 1 for t in rung if t.state.name == "PRUNED")
    assert all(t.user_attrs.get("resumed_from_epoch", 1) == 1 for t in rung)


@pytest.mark.slow
@needs_ray
def test_ray_backend_pbt_keeps_every_trial_and_mutations_in_range(
        cluster: Cluster, tmp_path: Path) -> None:
    _, trials = _scheduler_run("pbt", cluster, tmp_path)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # PBT perturbs, never stops
    assert any(t.user_attrs.get("resumed_from_epoch") for t in trials)  # paused, continued
    for t in trials:
        assert 1e-3 <= t.params["optimizer.lr"] <= 3e-2
        assert t.user_attrs["config"]["optimizer"]["lr"] == t.params["optimizer.lr"]
        if t.params["optimizer"] == "sgd":
            assert 0.5 <= t.params["optimizer.sgd.momentum"] <= 0.9


@pytest.mark.slow
@needs_ray
def test_ray_backend_median_stopping_rule_runs_the_budget(
        cluster: Cluster, tmp_path: Path) -> None:
    _, trials = _scheduler_run("median", cluster, tmp_path)
    assert any(t.state.name == "COMPLETE" for t in trials)
    assert all(t.user_attrs["epochs_run"] < 4 for t in trials if t.state.name == "PRUNED")


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"search ended or timed out before the condition held:\n{err[-3000:]}")
        time.sleep(0.1)


def _transformer_checkpointed(cwd: Path, study: str) -> bool:
    """A trial has finished, and a transformer trial (the slow family) is running on past
    an epoch whose checkpoint Tune registered (its result.json, written by the driver, has
    a result with a checkpoint and one after it, and no outcome yet)."""
    for path in (cwd / "runs" / study / "ray").glob("exp-*/trial-*/result.json"):
        try:
            results = [json.loads(line) for line in path.read_text().splitlines()]
        except ValueError:  # a line being written
            continue
        marked = [i for i, r in enumerate(results) if r.get("checkpoint_dir_name")]
        ended = any("autodl_outcome" in r for r in results)
        if marked and marked[0] < len(results) - 1 and not ended and \
                results[0]["config"].get("family") == "transformer":
            return bool(_study(cwd, study).trials)
    return False


@pytest.mark.slow
@needs_ray
def test_ray_backend_ctrl_c_exits_130_and_resume_continues_from_checkpoints(
        cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    args = ["--trials", "3", "--epochs", "20", "--workers", "1", "--seed", "4", "--study",
            "cut", "--no-export", "--ray-scheduler", "median"]
    proc = cluster.popen_search(tmp_path, *args)
    _wait_for(lambda: _transformer_checkpointed(tmp_path, "cut"), proc, timeout=180)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "--resume" in err
    cut = [t for t in _study(tmp_path, "cut").trials if t.user_attrs.get("autodl.requeued")]
    assert cut and all(t.user_attrs["fail_reason"] == "interrupted" for t in cut)

    run = Run(tmp_path, "cut", cluster.search(tmp_path, *args, "--resume")).ok()
    trials = _study(tmp_path, "cut").trials
    assert len([t for t in trials if not t.user_attrs.get("autodl.requeued")]) == 3
    assert sum(run.summary["trials"].values()) == 3
    reruns = [t for t in trials if t.user_attrs.get("autodl.requeued_from") is not None]
    assert {t.user_attrs["autodl.requeued_from"] for t in reruns} == {t.number for t in cut}
    assert all(t.user_attrs.get("resumed_from_epoch", 0) >= 1 for t in reruns)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cut").experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    killed = [r for r in runs if r.data.tags.get("autodl.trial") in
              {str(t.number) for t in cut}]
    assert killed and all(r.info.status == "KILLED" for r in killed)
    for rerun in reruns:  # the continued trial's run has every epoch, the replayed ones too
        child = next(r for r in runs if r.data.tags.get("autodl.trial") == str(rerun.number))
        steps = {m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")}
        assert steps == set(range(1, rerun.user_attrs["epochs_run"] + 1))


# --- pieces that need no Ray cluster --------------------------------------------------


def test_ray_backend_without_ray_installed_says_how_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from autodl.backends import create_backend
    from autodl.errors import UsageError

    for name in [m for m in sys.modules
                 if m == "ray" or m.startswith(("ray.", "autodl.backends.ray._backend"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(UsageError, match=r"pip install 'autodl\[ray\]'"):
        create_backend("ray")


def test_ray_settings_reject_unknown_scheduler_and_negative_resources(tiny_space: Path) -> None:
    import autodl
    from autodl.errors import UsageError

    for bad, match in (({"ray_scheduler": "bohb"}, "--ray-scheduler"),
                       ({"gpus_per_trial": -0.5}, "--gpus-per-trial"),
                       ({"cpus_per_trial": 0.0}, "--cpus-per-trial")):
        with pytest.raises(UsageError, match=match):
            autodl.search(str(tiny_space), backend="ray", tracking=False, **bad)


def test_ray_pbt_without_trials_is_usage_error(tiny_space: Path, capsys) -> None:
    """PBT evolves a population of --trials trials: --timeout alone is refused (exit 2)."""
    from autodl.cli import main

    assert main(["search", str(tiny_space), "--backend", "ray", "--ray-scheduler", "pbt",
                 "--timeout", "5", "--no-tracking"]) == 2
    assert "pass --trials N" in capsys.readouterr().err


def test_ray_pbt_mutations_stay_in_the_yaml_range(tiny_space: Path) -> None:
    from autodl.backends.ray import PbtMutations
    from autodl.space import load_space

    explore = PbtMutations(load_space(str(tiny_space)))
    assert set(explore.bounds) == {"optimizer.lr", "optimizer.sgd.momentum"}
    clipped = explore({"optimizer.lr": 0.05, "optimizer.sgd.momentum": 0.2, "family": "mlp"})
    assert clipped == {"optimizer.lr": 3e-2, "optimizer.sgd.momentum": 0.5, "family": "mlp"}
    inside = explore({"optimizer.lr": 0.004})
    assert inside == {"optimizer.lr": 0.004}


def test_ray_resolve_trial_rebuilds_the_config_from_flat_params(tiny_space: Path) -> None:
    from autodl.backends.ray import resolve_trial
    from autodl.space import load_space

    params = {"family": "mlp", "mlp.depth": 2, "mlp.width": 16, "mlp.dropout": 0.1,
              "optimizer": "adamw", "optimizer.lr": 0.01, "schedule": "cosine",
              "training.batch_size": 16, "optimizer.sgd.momentum": 0.7}  # PBT adds this one
    config, active, dists = resolve_trial(load_space(str(tiny_space)), params)
    assert config["model"]["width"] == 16 and config["optimizer"]["name"] == "adamw"
    assert "momentum" not in config["optimizer"]
    assert "optimizer.sgd.momentum" not in active and set(active) == set(dists)


def test_ray_checkpoint_restore_applies_the_mutated_optimizer_values() -> None:
    import torch

    from autodl.backends.ray import apply_optimizer_values
    from autodl.train._optim import build_optimizer, build_schedule

    old = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}
    new = {**old, "lr": 0.02, "momentum": 0.5}
    schedule = {"name": "cosine", "warmup_epochs": 0}

    def fresh(cfg: dict) -> tuple:
        params = [torch.nn.Parameter(torch.ones(2))]
        opt = build_optimizer(params, cfg)
        return opt, build_schedule(opt, schedule, epochs=4, steps_per_epoch=5)

    opt, sched = fresh(old)
    for _ in range(7):
        opt.step()
        sched.step()
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    lr_old_schedule = opt.param_groups[0]["lr"]
    apply_optimizer_values(state, old, new)
    opt2, sched2 = fresh(new)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    assert opt2.param_groups[0]["lr"] == pytest.approx(2 * lr_old_schedule)
    assert opt2.param_groups[0]["momentum"] == 0.5
    opt.step()
    sched.step()
    opt2.step()
    sched2.step()  # the schedule goes on from the same step, at twice the rate
    assert opt2.param_groups[0]["lr"] == pytest.approx(2 * opt.param_groups[0]["lr"])


@pytest.mark.slow
@needs_ray
def test_ray_backend_multi_objective_runs_every_trial_to_a_pareto_front(
        cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text("objectives: [accuracy, params]\nfamilies:\n  mlp:\n"
                                        "    width: {low: 4, high: 64, log: true}\n")
    proc = cluster.search(tmp_path, "--data", "iris", "--trials", "4", "--epochs", "2",
                          "--study", "mo", "--no-tracking", "--no-export")
    summary = Run(tmp_path, "mo", proc).ok().summary
    assert summary["trials"] == {"complete": 4, "pruned": 0, "failed": 0}  # no scheduler
    assert summary["pareto_front"] and all(len(p["values"]) == 2 for p in summary["pareto_front"])
    trials = _study(tmp_path, "mo").trials
    assert all(t.values[1] == t.user_attrs["params_count"] for t in trials)


@pytest.mark.slow
@needs_ray
def test_ray_backend_stops_after_too_many_failures_in_a_row(
        cluster: Cluster, tmp_path: Path) -> None:
    """SGD at lr 10 with momentum 0.99 blows every regression loss up to NaN in epoch 1:
    after --max-failures failed trials the search stops (exit 1), every started trial
    recorded as failed."""
    (tmp_path / "tiny.yaml").write_text(
        "families:\n  mlp: {width: 256, depth: 3}\noptimizer:\n  lr: 10.0\n"
        "  options: {sgd: {momentum: 0.99}}\n")
    proc = cluster.search(tmp_path, "--data", "diabetes", "--trials", "8", "--epochs", "3",
                          "--max-failures", "2", "--seed", "0", "--study", "nan",
                          "--no-tracking", "--no-export")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "2 trials failed in a row" in proc.stderr
    trials = _study(tmp_path, "nan").trials
    assert 2 <= len(trials) < 8 and all(t.state.name == "FAIL" for t in trials)
    assert sum(t.user_attrs["fail_reason"] == "non_finite" for t in trials) >= 2
    assert not list((tmp_path / "runs" / "nan" / "trials").glob("*/weights.pt"))
