"""`autodl report` as a user meets it: real searches (one with pruned trials, one with two
objectives), the report opened in headless Debian Chromium with the network unused, its
links to MLflow runs, the search's own report.html, and `autodl ui --optuna`."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

import autodl
from autodl.cli import main
from autodl.errors import UsageError
from autodl.report import build_report, write_report, write_search_report
from autodl.report._data import gather
from autodl.report._headline import make_headline
from autodl.report._importance import compute_importances
from autodl.summary import top_trials
from tests.conftest import TINY_SPACE

SINGLE_FIGURES = {"fig-history", "fig-families", "fig-curves", "fig-importance", "fig-parallel"}
ROOT = Path(__file__).resolve().parents[1]


def _search(work: Path, study: str, space_text: str, **settings: Any) -> dict[str, Any]:
    """A real search in ``work`` with absolute storage and tracking paths."""
    work.mkdir(parents=True, exist_ok=True)
    space = work / f"{study}.yaml"
    space.write_text(space_text)
    storage, uri = str(work / "autodl.journal"), f"sqlite:///{work / 'mlflow.db'}"
    old = Path.cwd()
    os.chdir(work)
    try:
        result = autodl.search(str(space), study=study, storage=storage, tracking_uri=uri,
                               seed=0, workers=1, export=False, **settings)
    finally:
        os.chdir(old)
    return {"work": work, "study": study, "storage": storage, "uri": uri, "result": result,
            "report": work / "runs" / study / "report.html"}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, Any]:
    """12 trials, median pruner: some trials are pruned, enough complete for importances."""
    run = _search(tmp_path_factory.mktemp("report"), "rep", TINY_SPACE, trials=12, epochs=5,
                  pruner="median")
    counts = run["result"].trial_counts
    assert counts["pruned"] >= 1 and counts["complete"] >= 5, counts  # what the tests need
    return run


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> dict[str, Any]:
    """Two objectives (accuracy up, parameter count down): a Pareto front, no pruning."""
    space = "objectives: [accuracy, params]\n" + TINY_SPACE
    return _search(tmp_path_factory.mktemp("report_multi"), "rep2", space, trials=6, epochs=3)


# ------------------------------------------------------------------ the browser's view
def _render_in_chromium(report: Path, shot: Path) -> dict[str, Any]:
    """Open the file with the network unused; what the page said, asked for and drew."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    seen: dict[str, Any] = {"errors": [], "failed": [], "requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        page.on("requestfailed", lambda r: seen["failed"].append(r.url))
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.goto(report.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === "
                               "document.querySelector('main').dataset.figures.split(' ').length",
                               timeout=60_000)
        seen["expected"] = set(page.eval_on_selector("main", "m => m.dataset.figures").split())
        seen["drawn"] = set(page.eval_on_selector_all(
            ".js-plotly-plot", "els => els.filter(e => e.querySelector('svg.main-svg'))"
                               ".map(e => e.id)"))
        seen["dashed_curves"] = page.evaluate(
            "document.getElementById('fig-curves').data.filter(t => t.line.dash === 'dash')"
            ".map(t => t.x.length)")
        seen["headline"] = page.inner_text("#headline")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    return seen


def _shot_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("AUTODL_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_report_single_objective_renders_in_chromium_offline(single, tmp_path) -> None:
    shot = _shot_dir(tmp_path) / "report.png"
    seen = _render_in_chromium(single["report"], shot)
    print(f"report screenshot: {shot}")
    assert not seen["errors"] and not seen["failed"], seen
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in seen["requests"])
    assert seen["expected"] == SINGLE_FIGURES and seen["drawn"] == SINGLE_FIGURES
    best = single["result"].summary["best"]
    family = best["params"]["family"]
    assert f"{family} won" in seen["headline"] and f"(trial {best['trial']})" in seen["headline"]
    assert "by how much" in seen["headline"].lower()
    assert "what mattered" in seen["headline"].lower() and "% of the variance" in seen["headline"]
    pruned = [t for t in optuna.load_study(study_name="rep", storage=_storage(single)).trials
              if t.state.name == "PRUNED"]
    # every pruned trial is drawn dashed, and ends at the epoch it was cut at
    assert sorted(seen["dashed_curves"]) == sorted(len(t.intermediate_values) for t in pruned)
    assert all(n < 5 for n in seen["dashed_curves"])
    assert shot.stat().st_size > 50_000


def test_report_multi_objective_draws_pareto_front(multi, tmp_path) -> None:
    shot = _shot_dir(tmp_path) / "report_pareto.png"
    seen = _render_in_chromium(multi["report"], shot)
    print(f"report screenshot: {shot}")
    assert not seen["errors"] and not seen["failed"], seen
    # no pruning with two objectives: the learning curves come from MLflow's histories
    assert {"fig-pareto", "fig-curves", "fig-history", "fig-parallel"} <= seen["drawn"]
    assert seen["drawn"] == seen["expected"]


def _storage(run: dict[str, Any]) -> Any:
    from autodl.backends._storage import open_storage

    return open_storage(run["storage"])


# ------------------------------------------------------------------ the file itself
class _Resources(HTMLParser):
    """Every src/href of a tag (script bodies are text to this parser, not tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster") and value:
                self.refs.append((tag, name, value))

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_report_html_loads_nothing_from_the_network(single) -> None:
    html = single["report"].read_text()
    parser = _Resources()
    parser.feed(html)
    external = [(t, v) for t, _, v in parser.refs if v.startswith(("http:", "https:", "//"))]
    assert external, "the MLflow run links are expected"
    assert all(t == "a" and v.startswith("http://127.0.0.1:5000/#/experiments/")
               for t, v in external), external
    assert not any(t in ("script", "link", "img", "iframe") for t, _, _ in parser.refs)
    assert not any("url(" in s or "@import" in s for s in parser.styles)
    assert html.count("plotly.js v") == 1  # plotly.js inlined exactly once
    assert len(html.encode()) < 6_000_000


def test_report_links_each_top_trial_to_its_mlflow_run(single, tmp_path) -> None:
    out = write_report("rep", single["storage"], tmp_path / "r.html", single["uri"],
                       mlflow_ui="http://mlflow.internal:8000/")
    html = out.read_text()
    client = MlflowClient(tracking_uri=single["uri"])
    exp = client.get_experiment_by_name("rep")
    ranked = top_trials(optuna.load_study(study_name="rep", storage=_storage(single)), 10)
    for trial in ranked:
        run = client.search_runs([exp.experiment_id],
                                 f"tags.`autodl.trial` = '{trial.number}'")[0]
        link = (f'href="http://mlflow.internal:8000/#/experiments/{exp.experiment_id}'
                f'/runs/{run.info.run_id}"')
        assert link in html, trial.number


# ------------------------------------------------------------------ the search's report
def test_search_writes_report_and_logs_it_on_the_parent_run(single) -> None:
    assert single["report"].is_file()
    parent = single["result"].summary["mlflow"]["parent_run_id"]
    client = MlflowClient(tracking_uri=single["uri"])
    assert "report.html" in {a.path for a in client.list_artifacts(parent)}
    local = client.download_artifacts(parent, "report.html", str(single["work"] / "dl"))
    assert Path(local).read_text() == single["report"].read_text()


def test_search_report_failure_is_a_warning_not_an_error(single, monkeypatch, caplog,
                                                          tmp_path) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("plotting broke")

    stale = tmp_path / "report.html"
    stale.write_text("an earlier report")
    monkeypatch.setattr("autodl.report.build_report", broken)
    settings = single["result"].summary
    with caplog.at_level(logging.WARNING, logger="autodl.report"):
        written = write_search_report(settings, tmp_path, _Settings(single))
    assert written is None and not stale.exists()
    assert "plotting broke" in caplog.text and "autodl report rep" in caplog.text


class _Settings:
    def __init__(self, run: dict[str, Any]) -> None:
        self.storage, self.tracking_uri, self.tracking = run["storage"], run["uri"], True


# ------------------------------------------------------------------ the command line
def test_cli_report_unknown_study_exits_2_naming_study_and_storage(single, capsys) -> None:
    assert main(["report", "nope", "--storage", single["storage"]]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and single["storage"] in err and "rep" in err


def test_cli_report_missing_storage_exits_2(tmp_path, capsys) -> None:
    assert main(["report", "rep", "--storage", str(tmp_path / "none.journal")]) == 2
    err = capsys.readouterr().err
    assert "none.journal" in err and "'rep'" in err
    assert not (tmp_path / "none.journal").exists()  # looking never creates a storage


def test_cli_report_writes_the_given_file(single, tmp_path, capsys) -> None:
    out = tmp_path / "sub" / "study.html"
    assert main(["report", "rep", "--storage", single["storage"], "--out", str(out),
                 "--tracking-uri", single["uri"]]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text()
    assert 'id="fig-parallel"' in html and "Top trials" in html and "/runs/" in html


# ------------------------------------------------------------------ interpretation
def _fake_study(rows: list[tuple[str, float, dict[str, Any]]], direction: str) -> Any:
    """An in-memory study whose trials carry what autodl's backend records."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(direction=direction)
    study.set_user_attr("autodl.objectives", [["accuracy", direction]])
    for family, value, extra in rows:
        params = {"family": family, "optimizer.lr": extra.pop("lr", 1e-3), **extra}
        dists = {"family": CategoricalDistribution(["a", "b"]),
                 "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True)}
        dists.update({k: FloatDistribution(0, 10) for k in extra})
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, value=value,
            user_attrs={"config": {"family": family}},
            intermediate_values={1: value / 2, 2: value}))
    return study


def _headline(study: Any) -> Any:
    data = gather(study, None, summary={}, use_mlflow=False)
    return make_headline(data, compute_importances(data))


def test_headline_margin_is_over_the_best_trial_of_another_family() -> None:
    head = _headline(_fake_study([("a", 0.90, {}), ("a", 0.80, {}), ("b", 0.85, {})],
                                 "maximize"))
    assert head.subject == "a" and head.winner.number == 0
    assert head.margin == ("+0.05000 val accuracy", "over the best b (trial 2: 0.8500), 5.9% "
                                                    "higher")
    assert head.mattered is None  # 3 trials: too few for importances
    head = _headline(_fake_study([("a", 0.80, {}), ("b", 0.90, {}), ("a", 0.90, {})],
                                 "maximize"))
    assert head.subject == "b" and head.margin[0] == "tied"  # the earlier of equal trials
    assert head.margin[1].startswith("with the best a (trial 2: 0.9000)")


def test_headline_margin_when_lower_is_better() -> None:
    head = _headline(_fake_study([("a", 0.50, {}), ("b", 0.40, {}), ("b", 0.45, {})],
                                 "minimize"))
    assert head.subject == "b" and head.margin[0] == "−0.1000 val accuracy"
    assert head.margin[1].startswith("below the best a (trial 0: 0.5000), 20.0% lower")


def test_importances_rank_shared_params_and_the_winners_own_separately() -> None:
    rows = []
    for i in range(16):  # family a wins; within a, its own width decides; lr barely matters
        width = float(i % 8)
        lr = 10 ** (-3 + (i % 3) * 0.5)
        rows.append(("a", 0.5 + 0.05 * width, {"a.width": width, "lr": lr}) if i % 2 == 0
                    else ("b", 0.3 + 0.001 * i, {"b.depth": float(i % 5), "lr": lr}))
    data = gather(_fake_study(rows, "maximize"), None, {}, False)
    imp = compute_importances(data)
    assert set(imp.scores) == {"family", "optimizer.lr"}
    assert next(iter(imp.scores)) == "family"
    assert imp.family == "a" and next(iter(imp.within)) == "a.width"
    assert any("a.width" in n and "b.depth" in n for n in imp.notes)


def test_importances_note_too_few_trials() -> None:
    data = gather(_fake_study([("a", 0.9, {}), ("b", 0.8, {})], "maximize"), None, {}, False)
    imp = compute_importances(data)
    assert not imp.scores and "at least 5" in imp.notes[0]
    html = build_report(data.optuna_study, None, summary={}, use_mlflow=False)
    assert "not estimated" in html and 'id="fig-importance"' not in html


# ------------------------------------------------------------------ packaging
def test_wheel_contains_the_report_template(tmp_path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "autodl", src / "autodl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(tmp_path / "w"),
                    "--no-deps", "--no-build-isolation", "-q"], check=True, timeout=600)
    wheel = next((tmp_path / "w").glob("autodl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"autodl/dashboards/report.html.j2", "autodl/report/__init__.py",
            "autodl/report/_figures.py", "autodl/webui/_optuna_dashboard.py"} <= names


# ------------------------------------------------------------------ autodl ui --optuna
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dashboard(single: dict) -> tuple[subprocess.Popen, int]:
    """``autodl ui --optuna`` on the study's storage, on a free loopback port."""
    pytest.importorskip("optuna_dashboard")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autodl", "ui", "--optuna", "rep",
                             "--storage", single["storage"], "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, port


def test_ui_optuna_serves_the_dashboard_on_loopback(single) -> None:
    proc, port = _dashboard(single)
    try:
        status = _poll(f"http://127.0.0.1:{port}/api/studies", proc)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=90)[0]
    assert status == 200, out
    assert f"http://127.0.0.1:{port}/dashboard/studies/" in out


def test_ui_optuna_sigterm_mid_request_answers_it_and_exits(single) -> None:
    """A stop signal that lands while a request is being handled ends the server after
    answering it (wsgiref's handler once swallowed it and the server ran on)."""
    import signal
    import socket

    proc, port = _dashboard(single)
    try:
        assert _poll(f"http://127.0.0.1:{port}/api/studies", proc) == 200
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"GET /api/studies HTTP/1.0\r\nHost: 127.0.0.1\r\n")
            time.sleep(0.5)  # the server is reading this request
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(b"\r\n")
            reply = sock.makefile("rb").read()
        assert reply.startswith(b"HTTP/1.0 200"), reply[:200]
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_ui_optuna_stop_signal_leaves_no_listener_or_child(single, sig: str) -> None:
    import signal

    from tests.processes import alive, descendants, listening

    proc, port = _dashboard(single)
    try:
        assert _poll(f"http://127.0.0.1:{port}/api/studies", proc) == 200
        started = descendants(proc.pid)  # none today: the dashboard is served in-process
        proc.send_signal(getattr(signal, sig))
        proc.communicate(timeout=60)
        assert not alive(started) and not listening(port)
    finally:
        proc.kill()
        proc.communicate()


def _poll(url: str, proc: subprocess.Popen, timeout: float = 90) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.5)
    return None


def test_ui_optuna_without_the_package_names_the_extra(single, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails
    assert main(["ui", "--optuna", "--storage", single["storage"]]) == 2
    assert "pip install 'autodl[dashboard]'" in capsys.readouterr().err


def test_ui_optuna_refuses_non_loopback_without_expose(single) -> None:
    from autodl.webui import run_optuna_dashboard

    with pytest.raises(UsageError, match="--expose"):
        run_optuna_dashboard(single["storage"], "0.0.0.0", 0)
