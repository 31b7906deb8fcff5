"""``metric_facts`` of :class:`~tasker_host.store.memory.MemoryStore` (see
:mod:`tasker_host.store.metric_facts`): a mixin on the store's own lock. One process only, so the
cursor simply counts the transitions read per task."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from tasker_host.store.base import StepRecord, TaskRecord, Transition
from tasker_host.store.metric_facts import CountCursor, Fact, is_deprecated_creation, ready_since


class MemoryMetricFacts:
    _lock: threading.Lock
    _tasks: dict[str, TaskRecord]
    _steps: dict[tuple[str, str], StepRecord]
    _transitions: dict[str, list[Transition]]

    def metric_facts(self, cursor: Any, now: float, limit: int = 100_000) -> tuple[list[Fact], CountCursor]:
        with self._lock:
            counts = {task_id: len(log) for task_id, log in self._transitions.items()}
            if cursor is None:
                return [], CountCursor(counts)
            assert isinstance(cursor, CountCursor)
            seen, facts = dict(cursor.seen), list[Fact]()
            for task_id, log in self._transitions.items():
                start = seen.get(task_id, 0)
                new = log[start:start + max(0, limit - len(facts))]
                facts += [self._fact(t) for t in new]
                seen[task_id] = start + len(new)
            facts.sort(key=lambda f: f.at)
            return facts, CountCursor(seen)

    def _fact(self, t: Transition) -> Fact:
        task = self._tasks[t.task_id]
        caller, creation = None, t.step is None and t.from_state is None
        if creation and task.parent_task_id in self._tasks:
            caller = self._tasks[task.parent_task_id or ""].namespace
        fact = Fact(t.task_id, t.step, t.from_state, t.to_state, t.at, task.namespace, task.name, task.version,
                    caller=caller, deprecated=creation and is_deprecated_creation(task.warnings))
        step = self._steps.get((t.task_id, t.step)) if t.step is not None else None
        if step is None:
            return fact
        completed = {d: self._steps[(t.task_id, d)].completed_at for d in step.depends_on}
        return replace(fact, attempts=step.attempts, started_at=step.started_at,
                       ready_since=ready_since(step.ready_at, step.depends_on, completed))
