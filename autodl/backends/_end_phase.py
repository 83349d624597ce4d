"""The end of a search: the final model is chosen (the best trial, or an ensemble of the
best trials when one beats it on held-out predictions), retrained on all training data,
tested once on the test split and exported.

Each step runs in a worker that already holds the data; the members' refits run on every
worker at once. With ``--timeout`` the search leaves time for this phase
(``end_phase_estimate``), and a refit that would start after the time is up is skipped
(that member keeps the search's weights).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import SearchFailed
from autodl.events import TrialEnd
from autodl.selection import (
    DEFAULT_ENSEMBLE_ROUNDS,
    ENSEMBLE_DIR,
    MAX_CANDIDATES,
    saved_refit,
)
from autodl.workers import (
    AssembleEnsemble,
    ChooseEnsemble,
    Died,
    ExportModel,
    ExportWorker,
    Refit,
    Refitted,
    Reply,
    TestModel,
    ToWorker,
    TrialSpec,
    WorkerPool,
)

__all__ = ["EndPhase", "FinalModel", "end_phase_estimate"]

EXPORT_S = 10.0  # test, every format of a small model (torch.export + ONNX dominate), the
# report and the summary, on a CPU core: 5-14 s measured on the 2-core machine
EXPECTED_MEMBERS = 4  # distinct members of a typical ensemble (for the time estimate)


@dataclass
class FinalModel:
    """What is tested and exported: ``dir`` holds its ``config.json`` and ``weights.pt``
    (None: the best trial's own weights)."""

    trial: int
    config: dict[str, Any]
    dir: Path | None
    refit: dict[str, Any] = field(default_factory=dict)
    ensemble: dict[str, Any] = field(default_factory=dict)


def end_phase_estimate(ended: Sequence[TrialEnd], folds: int, workers: int, refit: bool,
                       ensemble: bool, export: bool, maximize: bool = True) -> float:
    """Seconds the end phase will take, from the completed trials: a refit trains one
    model on all the data for the trial's best epochs (a cross-validated trial trained k
    models on (k-1)/k of it), one per member, ``workers`` at a time; then the export. The
    members are the best trials so far (an ensemble is chosen among them; the slow,
    large models are often the good ones, so their own times count, not a median)."""
    done = [e for e in ended if e.state == "COMPLETE" and e.epochs_run > 0 and e.values]
    seconds = EXPORT_S if export else 1.0
    if not done or not refit:
        return seconds
    sign = 1.0 if maximize else -1.0
    best = sorted(done, key=lambda e: -sign * e.values[0] if e.values else 0.0)
    scale = (1.0 / max(folds - 1, 1)) if folds > 1 else 1.25
    refits = [e.duration_s * e.best_epoch / e.epochs_run * scale
              for e in best[:EXPECTED_MEMBERS if ensemble else 1]]
    finish = [0.0] * max(workers, 1)  # longest first, each on the worker free first
    for one in sorted(refits, reverse=True):
        finish[finish.index(min(finish))] += one
    return seconds + max(finish)


class EndPhase:
    def __init__(self, study: Any, pool: WorkerPool, ctx: Any, seed_base: int,
                 deadline: float | None, exporter: ExportWorker | None = None) -> None:
        self.study, self.pool, self.ctx, self.exporter = study, pool, ctx, exporter
        self.seed_base, self.deadline = seed_base, deadline
        self.out_dir = Path(ctx.out_dir)

    def final_model(self, again: bool = True) -> FinalModel | None:
        """Choose, refit and assemble the final model. ``again`` false (nothing new ran):
        refits already on disk are reused."""
        from autodl.selection import best_trial

        best = best_trial(self.study)
        if best is None:
            return None
        ensemble = self._choose_ensemble(best.number)
        members = ensemble.get("members") if ensemble.get("chosen") else None
        numbers = [int(n) for n in members] if members else [best.number]
        refits = self._refits(numbers, again) if self.ctx.settings.refit else {}
        final = FinalModel(best.number, best.user_attrs["config"], None, ensemble=ensemble)
        if members:
            built = self._assemble(best.number, members, refits)
            if built.get("error"):
                ensemble.update(chosen=False, error=built["error"])
            else:
                final.dir = Path(built["dir"])
                final.config = json.loads((final.dir / "config.json").read_text())
                ensemble["members"] = built["members"]
        if not ensemble.get("chosen"):
            shutil.rmtree(self.out_dir / ENSEMBLE_DIR, ignore_errors=True)
            info = refits.get(best.number) or {}
            if info.get("dir") and not info.get("error"):
                final.dir = Path(info["dir"])
        final.refit = self._refit_summary(final, refits)
        return final

    def _refit_summary(self, final: FinalModel, refits: Mapping[int, dict[str, Any]]
                       ) -> dict[str, Any]:
        if not self.ctx.settings.refit:
            return {"skipped": "--no-refit"}
        if not final.ensemble.get("chosen"):
            return dict(refits.get(final.trial) or {})
        done = [r for r in refits.values() if r.get("dir") and not r.get("error")]
        return {"trials": {str(n): r for n, r in refits.items()}, "dir": str(final.dir),
                "samples": done[0]["samples"] if done else 0, "members_refit": len(done),
                "members": len(refits)}

    def _choose_ensemble(self, best: int) -> dict[str, Any]:
        rounds = self.ctx.settings.ensemble
        rounds = DEFAULT_ENSEMBLE_ROUNDS if rounds is None else rounds
        metric, direction = self.ctx.objectives[0]
        if rounds == 0:
            return {"chosen": False, "reason": "--ensemble 0"}
        if len(self.ctx.objectives) > 1 or metric in ("params", "latency_ms"):
            return {"chosen": False, "reason": "several objectives: no single ranking"}
        candidates = self._candidates(best)
        if len(candidates) < 2:
            return {"chosen": False, "reason": f"{len(candidates)} completed trial(s)"}
        protocol = self.ctx.protocol
        spec = {"candidates": candidates, "rounds": rounds, "metric": metric,
                "direction": direction, "cv": protocol is not None and protocol.kind == "cv"}
        chosen: dict[str, Any] = self._ask(ChooseEnsemble(spec))
        return chosen

    def _candidates(self, best: int) -> list[int]:
        """The best completed trials, best first (the best trial leads), whose models an
        ensemble can hold (pretrained backbones export their own assets: not combined)."""
        from autodl.selection import top_trials

        out = [best]
        for t in top_trials(self.study, MAX_CANDIDATES + 1):
            if t.number != best and t.user_attrs.get("config", {}).get("family") != "pretrained":
                out.append(t.number)
        return out[:MAX_CANDIDATES]

    def _refits(self, numbers: Sequence[int], again: bool) -> dict[int, dict[str, Any]]:
        """Each trial's configuration retrained on train + validation, on every worker at
        once; a refit that would start after ``--timeout`` is skipped."""
        out: dict[int, dict[str, Any]] = {}
        pending: dict[int, TrialSpec] = {}
        for number in numbers:
            if not again and (info := saved_refit(self.out_dir, number)):
                out[number] = info
            else:
                pending[number] = self._refit_spec(number)
        free = list(self.pool.slots)
        busy: dict[int, int] = {}  # worker -> trial
        while pending or busy:
            while pending and free:
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    for number in list(pending):
                        out[number] = {"trial": number, "skipped": "--timeout was reached"}
                    pending.clear()
                    break
                wid, number = free.pop(0), next(iter(pending))
                spec = pending.pop(number)
                self.pool.ensure(wid)
                self.pool.send(wid, Refit(spec))
                busy[wid] = number
            if not busy:
                break
            for wid, msg in self.pool.poll(1.0):
                if isinstance(msg, Refitted) and wid in busy:
                    out[busy.pop(wid)] = msg.result
                    free.append(wid)
                elif isinstance(msg, Died) and wid in busy:
                    error = end_phase_death("refit", busy[wid], self.ctx)
                    if not isinstance(error, SearchFailed):
                        raise error  # the disk is full: the machine's fault, named
                    number = busy.pop(wid)
                    out[number] = {"trial": number, "error": f"worker {wid} died"}
                    self.pool.restart(wid)
                    free.append(wid)
        return out

    def _refit_spec(self, number: int) -> TrialSpec:
        trial = next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)
        return {"number": number, "config": trial.user_attrs["config"],
                "epochs": self.ctx.epochs, "objectives": self.ctx.objectives,
                "seed": self.seed_base + number, "amp": self.ctx.settings.amp,
                "best_epoch": int(trial.user_attrs.get("best_epoch") or self.ctx.epochs)}

    def _assemble(self, best: int, members: Mapping[Any, float],
                  refits: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
        rows = []
        for number, weight in members.items():
            info = refits.get(int(number)) or {}
            ok = info.get("dir") and not info.get("error") and not info.get("skipped")
            rows.append({"trial": int(number), "weight": float(weight),
                         "weights_dir": info["dir"] if ok else None})
        spec = {"members": rows, "dest": str(self.out_dir / ENSEMBLE_DIR), "best": best}
        assembled: dict[str, Any] = self._ask(AssembleEnsemble(spec))
        return assembled

    def test(self, final: FinalModel) -> dict[str, float]:
        """The final model once on the test split (never used for selection)."""
        if self.ctx.data.X_test is None:
            return {}
        weights = None if final.dir is None else str(final.dir / "weights.pt")
        scores: dict[str, float] = self._ask(TestModel(final.trial, final.config, weights))
        return scores

    def export(self, final: FinalModel) -> dict[str, Any]:
        """The final model into ``<out>/model/``, every format."""
        from autodl.export import FORMATS

        dest = self.out_dir / "model"
        weights = None if final.dir is None else str(final.dir)
        reply, by = None, "trial worker 0"
        if self.exporter is not None:  # warm: its exporters were imported during the search
            reply = self.exporter.export(self.out_dir, final.trial, dest, list(FORMATS),
                                         weights)
            by = "export worker, warmed up during the search"
            if reply is None:  # not warm yet, or it died (a full disk aborts torch's writer)
                remove_dead_staging(dest)
        if reply is None:
            reply = self._ask(ExportModel(final.trial, str(dest), list(FORMATS), weights))
            by = "trial worker 0"
        reply["exported_by"] = by
        return {"trial": final.trial, "refit": bool(final.refit.get("dir")),
                "ensemble": bool(final.ensemble.get("chosen")), **reply}

    def _ask(self, message: ToWorker) -> Any:
        """Worker 0 does ``message``; its reply's result."""
        self.pool.ensure(0)
        self.pool.send(0, message)
        while True:
            for wid, msg in self.pool.poll(1.0):
                if isinstance(msg, Reply) and wid == 0:
                    return msg.result
                if isinstance(msg, Died) and wid == 0:
                    raise end_phase_death(_STEP[type(message)], _number(message), self.ctx)


_STEP = {ChooseEnsemble: "ensemble", AssembleEnsemble: "assemble", TestModel: "test",
         ExportModel: "export", Refit: "refit"}


def _number(message: Any) -> int:
    """The trial an end-phase request is about (0 for an ensemble step: its best)."""
    return int(getattr(message, "number", 0))


def remove_dead_staging(dest: Path) -> None:
    """An export's staging folders beside ``dest`` whose exporting process is gone."""
    from autodl.backends._study import owner_id, owner_is_dead

    for staging in dest.parent.glob(f".{dest.name}.staging-*"):
        pid = staging.name.rpartition("-")[2]  # the exporting process's
        if owner_is_dead(f"{owner_id().rpartition(':')[0]}:{pid}"):
            shutil.rmtree(staging, ignore_errors=True)


def end_phase_death(step: str, trial: Any, ctx: Any) -> Exception:
    """Worker 0 died refitting, testing or exporting: on a full disk (torch's writer
    aborts the process there), the disk's error; an export's staging folder goes."""
    from autodl._faults import FULL, disk_is_full, storage_error

    if step == "export":
        remove_dead_staging(Path(ctx.out_dir) / "model")
    if disk_is_full(ctx.out_dir):
        error = storage_error(None, str(ctx.out_dir), "a file of the search", "--out",
                              ctx.study, kind=FULL)
        if error is not None:
            return error
    return SearchFailed(f"worker 0 died while handling {step} of trial {trial}")
