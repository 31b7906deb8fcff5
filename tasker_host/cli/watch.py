"""``tasker-host tasks watch ID``: a task's steps and child tasks as a tree in the terminal, kept
current by polling the store (so it follows work done by any process: workers, servers, other
hosts). On a terminal the tree is redrawn in place (ANSI); otherwise each change is one plain
line. Ends when the task ends (complete, error, cancelled, resolved), exit status as ``run``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from tasker_host.engine.outage import Outage
from tasker_host.errors import StoreUnavailableError
from tasker_host.models import TaskState
from tasker_host.store.base import Store, TaskFilter, TaskRecord

ENDED = frozenset({TaskState.COMPLETE, TaskState.ERROR, TaskState.CANCELLED, TaskState.RESOLVED_MANUALLY})
MAX_CHILDREN = 50  # per task, in the tree
MAX_DEPTH = 4  # levels of child tasks shown
_MARKS = {"pending": "·", "waiting_retry": "↻", "waiting": "⏸", "in_progress": "→", "complete": "✓", "error": "✗",
          "cancelled": "⊘", "resolved_manually": "✓"}


@dataclass
class Node:
    task: TaskRecord
    children: dict[str, list[Node]] = field(default_factory=dict)  # by parent step


def load(store: Store, task_id: str, depth: int = 0) -> Node | None:
    """The task with its steps and (to :data:`MAX_DEPTH`) its child tasks'."""
    task = store.get_task(task_id)
    if task is None:
        return None
    node = Node(task)
    if depth < MAX_DEPTH:
        for child in store.list_tasks(TaskFilter(parent_task_id=task.id, limit=MAX_CHILDREN)):
            if (sub := load(store, child.id, depth + 1)) is not None:
                node.children.setdefault(child.parent_step or "", []).append(sub)
    return node


def tree(node: Node, indent: str = "") -> Iterator[str]:
    t = node.task
    yield f"{indent}{t.full_name}  task {t.id}  {t.status.value.upper()}"
    for i, s in enumerate(t.steps):
        last = i == len(t.steps) - 1
        error = f"  {(s.last_error or {}).get('message', '')}" if s.state.value in ("error", "waiting_retry") else ""
        if s.state.value == "waiting" and s.wait:
            error = f"  {_waits_for(s.wait)}"
        yield (f"{indent}{'└─' if last else '├─'} {_MARKS.get(s.state.value, ' ')} {s.name:<30} "
               f"{s.state.value:<18}{s.attempts}/{s.retry_limit}{error}")
        for child in node.children.get(s.name, []):
            yield from tree(child, indent + ("   " if last else "│  "))


def _waits_for(wait: Any) -> str:
    return f"for event {wait['event']}" if wait.get("event") else "for a timer"


def states(node: Node) -> Iterator[tuple[str, str, str]]:
    """(who, step or '', state) for the task, its steps and its children's: what changes."""
    t = node.task
    who = t.id[:8] if t.parent_task_id else ""
    yield who, "", t.status.value
    for s in t.steps:
        yield who, s.name, f"{s.state.value} (attempt {s.attempts})"
    for children in node.children.values():
        for child in children:
            yield from states(child)


def pause(seconds: float) -> None:
    time.sleep(seconds)


class Screen:
    """Where the view goes: in place on a terminal, a plain line per change otherwise."""

    def __init__(self, stream: TextIO, tty: bool):
        self.stream, self.tty = stream, tty
        self._height = 0
        self._seen: dict[tuple[str, str], str] = {}

    def show(self, node: Node) -> None:
        if self.tty:
            lines = list(tree(node))
            up = f"\x1b[{self._height}F\x1b[J" if self._height else ""
            click.echo(up + "\n".join(lines), file=self.stream, color=True)  # (click strips ANSI otherwise)
            self._height = len(lines)
            return
        first = not self._seen
        for who, step, state in states(node):
            key = (who, step)
            if self._seen.get(key) != state:
                if not first:
                    label = " ".join(x for x in (f"[{who}]" if who else "", step or "task") if x)
                    click.echo(f"{label}: {self._seen.get(key, 'new')} → {state}", file=self.stream)
                self._seen[key] = state
        if first:
            click.echo("\n".join(tree(node)), file=self.stream)


class LiveTree:
    """``run`` on a terminal: an event listener that redraws the task's tree in place on each
    lifecycle event (instead of :class:`~tasker_host.cli.progress.ProgressView`'s appended lines)."""

    def __init__(self, store: Store, task_id: str, screen: Screen):
        self.store, self.task_id, self.screen = store, task_id, screen

    def __call__(self, event: object) -> None:
        node = load(self.store, self.task_id)
        if node is not None:
            self.screen.show(node)


def watch(store: Store, task_id: str, screen: Screen, interval: float,
          sleep: Callable[[float], None] | None = None) -> TaskRecord | None:
    """Show the task until it ends; returns its final record (None: no such task). While the
    database (or the server) is unavailable it says so once and keeps looking, with backoff."""
    outage = Outage(meanwhile="still watching")
    while True:
        try:
            node = load(store, task_id)
        except StoreUnavailableError as exc:  # logged once when it starts, once when it ends
            (sleep or pause)(max(interval, outage.failed(exc, time.time())))
            continue
        outage.recovered()
        if node is None:
            return None
        screen.show(node)
        if node.task.status in ENDED:
            return node.task
        (sleep or pause)(interval)
