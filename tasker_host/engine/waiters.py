"""Who waits for which task to end: a runner tells them the final state from the commit that
ended the task (no database read), and they fall back to polling for tasks other runners end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from tasker_host.models import TaskState


class Waiter:
    """Someone waiting for a task to end; told its final state by the commit that ended it."""

    __slots__ = ("event", "state")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.state: TaskState | None = None


class TaskWaiters:
    def __init__(self) -> None:
        self._by_task: dict[str, list[Waiter]] = {}

    @contextmanager
    def waiting(self, task_id: str) -> Iterator[Waiter]:
        waiter = Waiter()
        self._by_task.setdefault(task_id, []).append(waiter)
        try:
            yield waiter
        finally:
            waiters = self._by_task.get(task_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._by_task.pop(task_id, None)

    def ended(self, task_id: str, state: TaskState) -> None:
        for waiter in self._by_task.get(task_id, []):
            waiter.state = state
            waiter.event.set()
