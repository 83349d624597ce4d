"""Ensemble selection and assembly, in a worker (it holds the data's targets and torch).

``choose_ensemble`` reads the candidate trials' saved validation (or out-of-fold)
predictions and runs greedy selection (``autodl.selection``) scored with the trainer's own
metrics; ``assemble_ensemble`` writes the chosen members as one model directory
(``config.json`` + ``weights.pt``) that the test and the export read like a trial's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodl._faults import writing
from autodl.models import create_model
from autodl.models.ensemble import Ensemble
from autodl.selection import greedy_selection
from autodl.train import TensorData, classification_metrics, regression_metrics
from autodl.workers._trial import PREDICTIONS_FILE, weights_path

__all__ = ["assemble_ensemble", "choose_ensemble"]


def _targets(data: TensorData, cv: bool) -> torch.Tensor:
    """The rows the predictions are on: train + validation (out-of-fold) or validation."""
    return torch.cat([data.y_train, data.y_val]).cpu() if cv else data.y_val.cpu()


def _metrics(data: TensorData, p: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    if data.task == "classification":
        return classification_metrics(p.clamp_min(1e-12).log(), y, data.n_outputs)
    mean, std = data.y_mean.cpu(), data.y_std.cpu()
    return regression_metrics((p - mean.reshape(-1)) / std.reshape(-1), y, mean, std)


def choose_ensemble(spec: Mapping[str, Any], data: TensorData, out_dir: Path
                    ) -> dict[str, Any]:
    """``spec``: ``candidates`` (trial numbers, best first), ``rounds``, ``metric``,
    ``direction``, ``cv``. Returns the members' weights and the scores of the ensemble and
    of the best single candidate; ``chosen`` when the ensemble beats it."""
    y = _targets(data, bool(spec["cv"]))
    numbers, preds = [], []
    for number in spec["candidates"]:
        path = out_dir / "trials" / str(number) / PREDICTIONS_FILE
        try:
            p = torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError):
            continue
        if p.shape[0] == y.shape[0]:
            numbers.append(int(number))
            preds.append(p)
    if len(preds) < 2:
        return {"chosen": False, "reason": f"{len(preds)} trial(s) with saved predictions"}
    metric, sign = spec["metric"], 1.0 if spec["direction"] == "maximize" else -1.0

    def score(p: torch.Tensor) -> tuple[float, float]:
        m = _metrics(data, p, y)
        return sign * m[metric], -m["loss"]

    sel = greedy_selection(preds, score, int(spec["rounds"]))
    members = {numbers[i]: w for i, w in sorted(sel.weights.items())}
    return {"chosen": sel.beats_single, "members": members, "rounds": sel.rounds,
            "candidates": numbers, "metric": metric,
            "score": sign * sel.score[0], "loss": -sel.score[1],
            "single": {"trial": numbers[sel.single], "score": sign * sel.single_score[0],
                       "loss": -sel.single_score[1]},
            "reason": ("beats the best single model on held-out predictions"
                       if sel.beats_single else "no ensemble beats the best single model")}


def assemble_ensemble(spec: Mapping[str, Any], data: TensorData, out_dir: Path
                      ) -> dict[str, Any]:
    """``spec``: ``members`` [{trial, weight, weights_dir (the refit's, or None: the
    trial's own)}], ``dest``. Writes ``dest/{config.json, weights.pt, ensemble.json}``."""
    dest = Path(spec["dest"])
    configs, states = [], []
    for m in spec["members"]:
        folder = Path(m["weights_dir"]) if m.get("weights_dir") else weights_path(
            out_dir, m["trial"]).parent
        config = json.loads((folder / "config.json").read_text())
        configs.append({"family": config["family"], "model": config["model"]})
        states.append(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
    config = {"family": "ensemble", "model": {
        "members": configs, "weights": [float(m["weight"]) for m in spec["members"]],
        "task": data.task}}
    model = create_model("ensemble", config["model"], data.input_shape, data.n_outputs,
                         data.modality)
    assert isinstance(model, Ensemble)  # what family "ensemble" builds
    for member, state in zip(model.members, states, strict=True):
        member.load_state_dict(state)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "weights.pt.tmp"
    with writing(tmp):
        torch.save(model.state_dict(), tmp)
    tmp.replace(dest / "weights.pt")
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    info = {"dir": str(dest), "members": [
        {"trial": m["trial"], "weight": float(m["weight"]), "refit": bool(m.get("weights_dir"))}
        for m in spec["members"]]}
    (dest / "ensemble.json").write_text(json.dumps({**info, "best": spec.get("best")},
                                                   indent=2))
    return info
