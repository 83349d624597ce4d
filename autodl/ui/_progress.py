"""The live terminal view of a search (rich), or plain lines when output is not a terminal."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from autodl.events import SearchListener, StudyInfo, TrialEnd

__all__ = ["ProgressDisplay"]


class ProgressDisplay(SearchListener):
    """Counts of complete / pruned / failed, best so far, running trials, elapsed and ETA
    (done/total trials when there is a trial budget; elapsed/timeout when there is one)."""

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live_enabled = self.console.is_terminal if live is None else live
        self.live: Live | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.running: dict[int, dict[str, Any]] = {}
        self.best: tuple[float, int] | None = None
        self.start = time.monotonic()
        self.info: StudyInfo | None = None
        self.durations: list[float] = []

    def study_start(self, info: StudyInfo) -> None:
        self.info, self.start = info, time.monotonic()
        data = info.data
        self.console.print(
            f"[bold]autodl[/] study [cyan]{info.study}[/] · space {info.space_name} · data "
            f"{data.get('name')} ({data.get('modality')}, {data.get('task')}) · "
            f"{_budget(info)} × ≤{info.epochs} epochs · objective "
            + ", ".join(f"{m} ({d})" for m, d in info.objectives)
        )
        for worker in info.workers:
            for note in worker.get("notes", []):
                self.console.print(f"[yellow]note:[/] {note}")
        if self.live_enabled:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                             transient=True)
            self.live.start()

    def trial_start(self, number: int, config: Mapping[str, Any], worker: Mapping[str, Any]
                    ) -> None:
        self.running[number] = {"family": config.get("family"), "device": worker.get("device"),
                                "epoch": 0, "metric": None, "start": time.monotonic()}
        self._refresh()

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        row = self.running.get(number)
        if row is not None and self.info is not None:
            row["epoch"] = epoch
            row["metric"] = metrics.get(f"val_{self.info.objectives[0][0]}",
                                        metrics.get("val_loss"))
            self._refresh()

    def trial_end(self, end: TrialEnd) -> None:
        row = self.running.pop(end.number, None) or {}
        self.counts[end.state] = self.counts.get(end.state, 0) + 1
        self.durations.append(end.duration_s)
        if end.state == "COMPLETE" and end.values and self.info is not None:
            maximize = self.info.objectives[0][1] == "maximize"
            value = end.values[0]
            if self.best is None or (value > self.best[0] if maximize else value < self.best[0]):
                self.best = (value, end.number)
        if not self.live_enabled:
            self.console.print(self._line(end, row.get("metric")), highlight=False)
        self._refresh()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # --- rendering -------------------------------------------------------------------
    def _line(self, end: TrialEnd, last: float | None) -> str:
        value = f"{end.values[0]:.4g}" if end.values else (
            f"{last:.4g} (last)" if last is not None else "-")
        why = f" ({end.reason})" if end.reason and end.state != "COMPLETE" else ""
        return (f"trial {end.number:>4} {end.state:<8}{why} value={value} "
                f"epochs={end.epochs_run} {end.duration_s:.1f}s | {self._status()}")

    def _status(self) -> str:
        c = self.counts
        done = sum(c.values())
        best = f"{self.best[0]:.4g} (trial {self.best[1]})" if self.best else "-"
        elapsed = time.monotonic() - self.start
        total = self._total()
        timeout = self.info.timeout if self.info else None
        return (f"{done}{'' if total is None else f'/{total}'} done · {c['COMPLETE']} complete"
                f" · {c['PRUNED']} pruned · {c['FAIL']} failed · best {best} · {_fmt(elapsed)}"
                f"{'' if timeout is None else f'/{_fmt(timeout)}'} elapsed · ETA {self._eta()}")

    def _total(self) -> int | None:
        return self.info.total_trials if self.info else 0

    def _eta(self) -> str:
        """Whichever ends first: the trials left at the mean trial time, or the timeout."""
        etas = []
        total = self._total()
        if total is not None:
            left = total - sum(self.counts.values())
            if left <= 0:
                return "0s"
            if self.durations:
                mean = sum(self.durations) / len(self.durations)
                etas.append(mean * left / max(1, len(self.running)))
        if self.info is not None and self.info.timeout is not None:
            etas.append(max(0.0, self.info.timeout - (time.monotonic() - self.start)))
        return _fmt(min(etas)) if etas else "-"

    def _render(self) -> Group:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("trial", "family", "device", "epoch", "metric", "time"):
            table.add_column(col)
        for number, row in sorted(self.running.items()):
            metric = "-" if row["metric"] is None else f"{row['metric']:.4g}"
            table.add_row(str(number), str(row["family"]), str(row["device"]), str(row["epoch"]),
                          metric, _fmt(time.monotonic() - row["start"]))
        return Group(Text(self._status()), table)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())


def _budget(info: StudyInfo) -> str:
    """``20 trials``, ``20 trials or 5m00s``, ``trials for 5m00s``."""
    if info.total_trials is None:
        return f"trials for {_fmt(info.timeout or 0)}"
    if info.timeout is None:
        return f"{info.total_trials} trials"
    return f"{info.total_trials} trials or {_fmt(info.timeout)}"


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
