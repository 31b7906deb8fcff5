"""Who waits for which task to end: a runner tells them the final state from the commit that
ended the task (no database read), and they fall back to polling for tasks other runners end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio

from tasker_host.engine.clock import Clock
from tasker_host.models import TaskState

#: reads a task's status (None: no such task)
ReadStatus = Callable[[str], Awaitable[TaskState | None]]


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

    async def until_final(self, task_id: str, *, read: ReadStatus, final: frozenset[TaskState], clock: Clock,
                          poll_seconds: float, look_first: bool) -> TaskState | None:
        """The task's final status, told by the commit that ends it or found by a read every
        ``poll_seconds``; None when there is no such task. ``look_first``: read before waiting
        (not for a task a running runner works on: its end reaches the waiter)."""
        look = look_first
        while True:
            with self.waiting(task_id) as waiter:
                if look:
                    status = await read(task_id)
                    if status is None or status in final:
                        return status
                look = True
                if waiter.state is None:
                    await clock.wait(waiter.event, clock.now() + poll_seconds)
                if waiter.state is not None:
                    return waiter.state
