"""Counts for ``/metrics`` and ``/health/status``, in one query each, without widening the
:class:`~tasker_host.store.base.Store` protocol.

:func:`count_by_state` dispatches on the store: a store with its own ``count_by_state()`` method
is asked directly; :class:`SqlStore` gets two ``GROUP BY`` queries on its engine; the
:class:`MemoryStore` is counted under its lock. Steps are counted for *unfinished* tasks only
(``pending``, ``in_progress``, ``error``): that is the work in the system, and the query stays
cheap as history grows (it walks the live tasks through the status index, not every step row).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tasker_host.models import TaskState
from tasker_host.store.memory import MemoryStore

UNFINISHED = (TaskState.PENDING.value, TaskState.IN_PROGRESS.value, TaskState.ERROR.value)


@dataclass(frozen=True)
class StateCounts:
    tasks: Counter[tuple[str, str]] = field(default_factory=Counter)  # (namespace, status) -> n
    steps: Counter[tuple[str, str]] = field(default_factory=Counter)  # (namespace, state) -> n, unfinished tasks

    def tasks_by_state(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_, state), n in self.tasks.items():
            totals[state] += n
        return dict(sorted(totals.items()))


def count_by_state(store: Any) -> StateCounts:
    own = getattr(store, "count_by_state", None)
    if callable(own):
        return own()
    if isinstance(store, MemoryStore):
        return _memory_counts(store)
    from tasker_host.store.sql import SqlStore

    if isinstance(store, SqlStore):
        return _sql_counts(store)
    raise TypeError(f"cannot count tasks in a {type(store).__name__}")


def _memory_counts(store: MemoryStore) -> StateCounts:
    # the memory store keeps live records in ``_tasks`` (steps included); read them under its lock
    counts = StateCounts()
    with store._lock:
        for task in store._tasks.values():
            counts.tasks[(task.namespace, task.status.value)] += 1
            if task.status.value in UNFINISHED:
                for step in task.steps:
                    counts.steps[(task.namespace, step.state.value)] += 1
    return counts


def _sql_counts(store: Any) -> StateCounts:
    import sqlalchemy as sa

    from tasker_host.store.sql_schema import steps, tasks

    t, s = tasks.c, steps.c
    by_task = sa.select(t.namespace, t.status, sa.func.count()).group_by(t.namespace, t.status)
    by_step = (sa.select(t.namespace, s.state, sa.func.count())
               .select_from(tasks.join(steps, s.task_id == t.id))
               .where(t.status.in_(UNFINISHED)).group_by(t.namespace, s.state))
    counts = StateCounts()
    with store.engine.connect() as conn:
        counts.tasks.update({(ns, st): n for ns, st, n in conn.execute(by_task)})
        counts.steps.update({(ns, st): n for ns, st, n in conn.execute(by_step)})
    return counts
