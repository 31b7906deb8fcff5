"""What the task page shows of a task: per step, its attempts, the time it waited (ready but
not running) and ran, results as pretty JSON, the error and the log lines of each attempt; the
DAG's drawing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from tasker_host.console import dag_svg
from tasker_host.console.event_form import EventForm, form_of
from tasker_host.models import StepState, TaskState
from tasker_host.store.base import StepRecord, TaskRecord, Transition
from tasker_host.store.step_logs import StepLogEntry
from tasker_host.views import iso as iso_time

WAITING = {StepState.PENDING.value, StepState.WAITING_RETRY.value}
DONE = {StepState.COMPLETE.value, StepState.RESOLVED_MANUALLY.value}
FINAL_TASK = {TaskState.COMPLETE, TaskState.CANCELLED, TaskState.RESOLVED_MANUALLY}


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class StepRow:
    step: StepRecord
    waited: float  # seconds ready but not running (from when its dependencies were done)
    ran: float  # seconds in progress, over every attempt
    resolvable: bool
    logs: tuple[tuple[int, tuple[StepLogEntry, ...]], ...] = ()  # (attempt, its lines), oldest first

    @property
    def waiting_for(self) -> str | None:
        """What a waiting step waits for, in words (None: it does not wait)."""
        wait = self.step.wait or {}
        if self.step.state is not StepState.WAITING:
            return None
        if not wait.get("event"):
            return f"a timer: it runs again at {iso(wait.get('until') or self.step.ready_at)}"
        if wait.get("delivered") is not None:
            return f"event {wait['event']}: delivered, it runs next"
        timeout = f", until {iso(wait['timeout_at'])} (then it times out)" if wait.get("timeout_at") else ""
        return f"event {wait['event']}{timeout}"

    @property
    def event_form(self) -> EventForm | None:
        return form_of(self.step)

    @property
    def results_json(self) -> str | None:
        return None if self.step.results is None else pretty(self.step.results)

    @property
    def error_json(self) -> str | None:
        return None if not self.step.last_error else pretty(dict(self.step.last_error))


def step_rows(task: TaskRecord, transitions: Sequence[Transition], now: float,
              logs: Sequence[StepLogEntry] = ()) -> list[StepRow]:
    by_step: dict[str, list[Transition]] = {}
    for t in transitions:
        if t.step is not None:
            by_step.setdefault(t.step, []).append(t)
    done_at = {name: max((t.at for t in ts if t.to_state in DONE), default=None) for name, ts in by_step.items()}
    rows = []
    for s in task.steps:
        ready_from = max((done_at.get(d) or now for d in s.depends_on), default=task.created_at)
        waited, ran = _durations(by_step.get(s.name, []), ready_from, now)
        rows.append(StepRow(s, waited, ran, resolvable(task, s), by_attempt([e for e in logs if e.step == s.name])))
    return rows


def by_attempt(entries: Sequence[StepLogEntry]) -> tuple[tuple[int, tuple[StepLogEntry, ...]], ...]:
    """A step's lines (in write order) per attempt; a new group where ``seq`` restarts (the same
    attempt number runs again after a retry of the task)."""
    groups: list[tuple[int, list[StepLogEntry]]] = []
    for e in entries:
        if not groups or e.seq == 0 or groups[-1][0] != e.attempt:
            groups.append((e.attempt, []))
        groups[-1][1].append(e)
    return tuple((attempt, tuple(lines)) for attempt, lines in groups)


def _durations(ts: Sequence[Transition], ready_from: float, now: float) -> tuple[float, float]:
    waited = ran = 0.0
    for this, following in zip(ts, [*ts[1:], None], strict=True):
        still = this.to_state in WAITING | {"in_progress"}
        end = following.at if following is not None else (now if still else this.at)
        if this.to_state == StepState.IN_PROGRESS.value:
            ran += max(0.0, end - this.at)
        elif this.to_state in WAITING:
            waited += max(0.0, end - max(this.at, ready_from))
    return waited, ran


def resolvable(task: TaskRecord, s: StepRecord) -> bool:
    """As ``Store.resolve_step`` accepts: a step in error, or waiting while its task is in error."""
    if task.status in FINAL_TASK:
        return False
    return s.state is StepState.ERROR or (task.status is TaskState.ERROR
                                          and s.state.value in WAITING | {StepState.WAITING.value})


def dag(task: TaskRecord) -> Markup:
    deps = {s.name: s.depends_on for s in task.steps}
    return dag_svg.render(deps, {s.name: s.state.value for s in task.steps})


def iso(at: float | None) -> str:
    return iso_time(at) or "—"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
