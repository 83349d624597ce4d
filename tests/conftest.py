"""Shared fixtures: every test runs in its own working directory (the default study
storage, MLflow store and runs/ are files in the working directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SPACE = """
name: tiny
description: two small families, for tests
defaults: {data: iris, trials: 4, epochs: 3}
families:
  mlp:
    depth: {low: 1, high: 2}
    width: {low: 8, high: 32, log: true}
    dropout: {low: 0.0, high: 0.2}
  transformer:
    depth: 1
    width: 8
    heads: 2
optimizer:
  lr: {low: 1.0e-3, high: 3.0e-2, log: true}
  options:
    adamw: {}
    sgd: {momentum: {low: 0.5, high: 0.9}}
schedule:
  options: [constant, cosine]
training:
  batch_size: [16, 32]
"""


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path
