"""A live, line-per-change progress view of a running task (and the child tasks it invokes)."""

from __future__ import annotations

import sys
from typing import TextIO

from tasker_host.engine.events import EventKind, LifecycleEvent

_MARKS = {
    EventKind.STEP_STARTED: "→", EventKind.STEP_COMPLETED: "✓", EventKind.STEP_RETRYING: "↻",
    EventKind.STEP_FAILED: "✗", EventKind.STEP_WAITING: "⏸", EventKind.TASK_CREATED: "+", EventKind.TASK_STARTED: "▶",
    EventKind.TASK_COMPLETED: "■", EventKind.TASK_FAILED: "✗", EventKind.TASK_CANCELLED: "⊘",
}


class ProgressView:
    """Prints one readable line per lifecycle event; child tasks are labelled with their name."""

    def __init__(self, root_task_id: str | None = None, stream: TextIO | None = None):
        self.root = root_task_id
        self.stream = stream or sys.stderr
        self._started: dict[tuple[str, str], float] = {}

    def __call__(self, event: LifecycleEvent) -> None:
        line = self.render(event)
        if line:
            print(line, file=self.stream, flush=True)

    def render(self, e: LifecycleEvent) -> str | None:
        who = "" if e.task_id == self.root else f"[{e.full_name} {e.task_id[:8]}] "
        mark = _MARKS.get(e.kind, "·")
        if e.step is None:
            if e.kind is EventKind.TASK_CREATED and e.task_id == self.root:
                return None
            return f"{mark} {who or 'task '}{e.kind.value.split('.')[1]}"
        key = (e.task_id, e.step)
        if e.kind is EventKind.STEP_STARTED:
            self._started[key] = e.at
            return f"  {mark} {who}{e.step:<32} attempt {e.attempt}"
        took = e.at - self._started.pop(key, e.at)
        detail = ""
        if e.kind is EventKind.STEP_WAITING:
            detail = f"  {e.detail.get('reason', 'waiting')} (holds no worker)"
        elif e.kind is not EventKind.STEP_COMPLETED:
            error = e.detail.get("error") or {}
            detail = f"  {error.get('type', '')}: {error.get('message', '')}"
            if e.kind is EventKind.STEP_RETRYING and e.detail.get("retry_at"):
                detail += f" — retry in {max(0.0, e.detail['retry_at'] - e.at):.1f}s"
            elif e.kind is EventKind.STEP_FAILED:
                detail += " — no more attempts"
        return f"  {mark} {who}{e.step:<32} attempt {e.attempt}  ({took * 1000:.0f} ms){detail}"
