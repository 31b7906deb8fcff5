"""The in-memory store's waits and events (semantics in :mod:`tasker_host.store.waits`); a mixin
of :class:`~tasker_host.store.memory.MemoryStore`, under its lock."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tasker_host.models import StepState
from tasker_host.store._common import ENDED_TASK
from tasker_host.store.base import StepOutcome, StepRecord, TaskRecord, Transition
from tasker_host.store.waits import EventRecord, NewEvent, SendResult, SendStatus, Wake


class MemoryWaits:
    _lock: threading.Lock
    _tasks: dict[str, TaskRecord]
    _steps: dict[tuple[str, str], StepRecord]
    _transitions: dict[str, list[Transition]]

    def _push_ready(self, step: StepRecord, namespace: str) -> None:  # pragma: no cover - MemoryStore's
        raise NotImplementedError

    def _init_waits(self) -> None:
        self._events: dict[str, list[EventRecord]] = {}  # task id -> its events, oldest first
        self._event_ids = itertools.count(1)

    def _wait_step(self, task: TaskRecord, step: StepRecord, o: StepOutcome) -> None:
        """Apply a ``waiting`` outcome (the caller checked its lease and logged the transition)."""
        step.attempts -= 1
        step.wait = {**(o.wait or {}), "delivered": None}
        step.ready_at = o.ready_at
        event = step.wait.get("event")
        found = next((i for i, e in enumerate(self._events.get(task.id, ()))
                      if e.name == event and e.step is None), None) if event else None
        if found is not None:
            self._deliver(task, step, found, o.at)
        elif step.ready_at is not None and step.pending_deps == 0:
            self._push_ready(step, task.namespace)

    def _deliver(self, task: TaskRecord, step: StepRecord, index: int, now: float) -> None:
        events = self._events[task.id]
        events[index] = replace(events[index], step=step.name, delivered_at=now)
        step.wait = {**(step.wait or {}), "delivered": events[index].id}
        step.ready_at = now
        self._push_ready(step, task.namespace)

    def send_event(self, event: NewEvent, now: float) -> SendResult:
        with self._lock:
            events = self._events.setdefault(event.task_id, [])
            if event.idempotency_key is not None:
                for e in events:
                    if e.name == event.name and e.idempotency_key == event.idempotency_key:
                        return SendResult(SendStatus.DUPLICATE, e)
            task = self._tasks.get(event.task_id)
            if task is None:
                self._events.pop(event.task_id, None)
                return SendResult(SendStatus.NO_TASK)
            if task.status in ENDED_TASK:
                return SendResult(SendStatus.ENDED, task_status=task.status.value)
            events.append(EventRecord(next(self._event_ids), event.task_id, event.name, event.payload,
                                      event.idempotency_key, event.sender, now))
            waiting = next((s for s in task.steps if s.state is StepState.WAITING
                            and (s.wait or {}).get("event") == event.name
                            and (s.wait or {}).get("delivered") is None), None)
            if waiting is not None:
                self._deliver(task, waiting, len(events) - 1, now)
            return SendResult(SendStatus.SENT, events[-1], waiting.name if waiting else None, task.status.value)

    def wakes(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Wake]:
        with self._lock:
            found: dict[tuple[str, str], Wake] = {}
            for key in keys:
                step = self._steps.get(key)
                if step is not None and step.wait is not None:
                    delivered = tuple(e for e in self._events.get(key[0], ()) if e.step == key[1])
                    found[key] = Wake(dict(step.wait), delivered)
            return found

    def task_events(self, task_id: str) -> list[EventRecord]:
        with self._lock:
            return list(self._events.get(task_id, ()))

    def _wait_copy(self, step: StepRecord) -> dict[str, Any] | None:
        return dict(step.wait) if step.wait is not None else None
