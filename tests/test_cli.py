"""The command line as a user meets it: exit codes, messages, and a cheap --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autodl.cli import main


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autodl", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_help_does_not_import_torch_mlflow_or_ray() -> None:
    code = ("import sys; from autodl.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'ray', 'optuna', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("body, line, fragment", [
    ("families:\n  mlp: {width: [1, 2}\n", 2, ""),  # syntax error
    ("families:\n  mlp:\n    widht: 3\n", 3, "widht"),  # unknown key
    ("families:\n  mlp: {}\noptimizer:\n  lr: {low: 0, high: 0.1, log: true}\n", 4, "low"),
    ("families:\n  mlpp: {}\n", 2, "mlpp"),  # unknown family
])
def test_search_bad_yaml_exits_2_naming_file_line_key(tmp_path: Path, body: str, line: int,
                                                       fragment: str, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    assert main(["search", str(path), "--data", "iris", "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert f"bad.yaml:{line}:" in err and fragment in err
    assert not Path("runs").exists() and not Path("autodl.journal").exists()  # no trial ran


def test_search_bad_data_exits_2(tiny_space: Path, capsys) -> None:
    assert main(["search", str(tiny_space), "--data", "nope.npz", "--no-tracking"]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_search_then_best_json(tiny_space: Path, capsys) -> None:
    assert main(["search", str(tiny_space), "--trials", "2", "--epochs", "2", "--study", "cli",
                 "--no-tracking", "--no-export", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["best", "cli", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["study"] == "cli" and best["best"]["params"]["family"] in ("mlp", "transformer")
    assert main(["best", "missing"]) == 2


def test_spaces_list_show_validate(capsys) -> None:
    assert main(["spaces", "list"]) == 0
    assert "quickstart" in capsys.readouterr().out
    assert main(["spaces", "show", "quickstart"]) == 0
    assert "families:" in capsys.readouterr().out
    assert main(["spaces", "validate", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "mlp: ok" in out and "cnn: ok" in out


def test_datasets_list(capsys) -> None:
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "synthetic:sequence" in out


def test_search_bad_flag_values_exit_2(tiny_space: Path, capsys) -> None:
    assert main(["search", str(tiny_space), "--trials", "0", "--no-tracking"]) == 2
    assert main(["search", str(tiny_space), "--study", "../evil", "--no-tracking"]) == 2
    assert "not allowed" in capsys.readouterr().err
