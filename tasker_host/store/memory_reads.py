"""The reads of :class:`~tasker_host.store.memory.MemoryStore` (a mixin on the store's own lock
and dictionaries): task records (copies, so callers never hold the live ones), lists, counts, the
lifecycle's version statistics and drain-check lookups."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from tasker_host.store._common import DONE_STEP
from tasker_host.store.base import UNFINISHED, RunInputs, StateCounts, TaskFilter, TaskRecord, Transition
from tasker_host.store.version_stats import VersionStats, stats_of, using


class MemoryReads:
    _lock: threading.Lock
    _tasks: dict[str, TaskRecord]
    _by_idempotency: dict[tuple[str, str], str]
    _by_invocation: dict[tuple[str, str], str]
    _transitions: dict[str, list[Transition]]

    # -- reading ---------------------------------------------------------------------------
    def get_task(self, task_id: str, *, with_steps: bool = True) -> TaskRecord | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return self._copy(task, with_steps) if task is not None else None

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, TaskRecord]:
        with self._lock:
            return {i: self._copy(self._tasks[i], True) for i in task_ids if i in self._tasks}

    def run_inputs(self, task_ids: Sequence[str]) -> dict[str, RunInputs]:
        with self._lock:
            return {t.id: RunInputs(t.id, t.namespace, t.name, t.version, t.context, t.correlation_id,
                                    json.dumps(t.template, sort_keys=True),
                                    {s.name: s.results for s in t.steps if s.state in DONE_STEP},
                                    t.traceparent)
                    for t in map(self._tasks.get, task_ids) if t is not None}

    def step_results(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            task = self._tasks.get(task_id)
            return {s.name: s.results for s in task.steps if s.state in DONE_STEP} if task else {}

    def list_tasks(self, query: TaskFilter) -> list[TaskRecord]:
        with self._lock:
            after: tuple[float, str] | None = None
            if query.after_id is not None:
                cursor = self._tasks.get(query.after_id)
                if cursor is None:
                    return []
                after = (cursor.created_at, cursor.id)
            keyed = sorted(((t.created_at, t.id), t) for t in self._matching(query))
            if query.newest_first:
                keyed.reverse()
            found = [t for key, t in keyed
                     if after is None or (key < after if query.newest_first else key > after)]
            return [self._copy(t, False) for t in found[:max(query.limit, 0)]]

    def _matching(self, q: TaskFilter) -> Iterator[TaskRecord]:
        namespaces = set(q.namespaces) if q.namespaces is not None else None
        for t in self._tasks.values():
            if ((namespaces is None or t.namespace in namespaces) and (q.name is None or t.name == q.name)
                    and (q.version is None or t.version == q.version)
                    and (q.status is None or t.status == q.status)
                    and (q.created_after is None or t.created_at >= q.created_after)
                    and (q.created_before is None or t.created_at < q.created_before)
                    and (q.parent_task_id is None or t.parent_task_id == q.parent_task_id)
                    and (q.correlation_id is None or t.correlation_id == q.correlation_id)
                    and (not q.context_text or q.context_text in json.dumps(t.context))
                    and (not q.id_prefix or t.id.startswith(q.id_prefix))):
                yield t

    def find_child(self, parent_task_id: str, invocation_key: str) -> TaskRecord | None:
        with self._lock:
            task_id = self._by_invocation.get((parent_task_id, invocation_key))
            return self._copy(self._tasks[task_id], True) if task_id is not None else None

    def transitions(self, task_id: str) -> list[Transition]:
        with self._lock:
            return list(self._transitions.get(task_id, ()))

    def count_by_state(self) -> StateCounts:
        counts = StateCounts()
        with self._lock:
            for task in self._tasks.values():
                counts.tasks[(task.namespace, task.status.value)] += 1
                if task.status in UNFINISHED:
                    for step in task.steps:
                        counts.steps[(task.namespace, step.state.value)] += 1
        return counts

    def version_stats(self, namespaces: Sequence[str] | None = None, since: float | None = None) -> VersionStats:
        with self._lock:
            return stats_of(list(self._tasks.values()), namespaces, since)

    def find_idempotent(self, namespace: str, idempotency_key: str) -> TaskRecord | None:
        with self._lock:
            task_id = self._by_idempotency.get((namespace, idempotency_key))
            return self._copy(self._tasks[task_id], True) if task_id is not None else None

    def unfinished_using(self, distribution: str, namespaces: Sequence[str]) -> list[TaskRecord]:
        with self._lock:
            return [self._copy(t, False) for t in using(self._tasks.values(), distribution, namespaces)]

    @staticmethod
    def _copy(task: TaskRecord, with_steps: bool) -> TaskRecord:
        return replace(task, steps=[replace(s) for s in task.steps] if with_steps else [])
