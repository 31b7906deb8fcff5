"""The reads of :class:`~tasker_host.store.sql.store.SqlStore` (a mixin over its ``_read``: one
read transaction each, retried and classified like every store call): task records, lists,
counts, logs, the lifecycle's version statistics and drain-check lookups, metric facts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.store.base import RunInputs, StateCounts, TaskFilter, TaskRecord, Transition
from tasker_host.store.metric_facts import Fact, IdCursor
from tasker_host.store.sql import metric_facts as sql_metric_facts
from tasker_host.store.sql import reads, version_stats
from tasker_host.store.sql import runs as sql_runs
from tasker_host.store.sql import step_logs as sql_step_logs
from tasker_host.store.sql.schema import tasks
from tasker_host.store.step_logs import StepLogEntry
from tasker_host.store.version_stats import VersionStats

T = tasks.c


class SqlReads:
    _read: Callable[..., Any]  # SqlStore._read(fn, *args, one_statement=False)

    # -- reading (sql.reads) ---------------------------------------------------------------
    def get_task(self, task_id: str, *, with_steps: bool = True) -> TaskRecord | None:
        return self._read(reads.load_one, T.id == task_id, with_steps)

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, TaskRecord]:
        if not task_ids:
            return {}
        found = self._read(reads.load, T.id.in_(sorted(set(task_ids))), True)
        return {t.id: t for t in found}

    def run_inputs(self, task_ids: Sequence[str]) -> dict[str, RunInputs]:
        """One statement (autocommitted on PostgreSQL, on the runner's step engine)."""
        return self._read(sql_runs.run_inputs, task_ids, one_statement=True)

    def find_child(self, parent_task_id: str, invocation_key: str) -> TaskRecord | None:
        return self._read(reads.load_one, sa.and_(T.parent_task_id == parent_task_id,
                                                  T.invocation_key == invocation_key))

    def step_results(self, task_id: str) -> dict[str, Any]:
        return self._read(reads.step_results, task_id)

    def list_tasks(self, query: TaskFilter) -> list[TaskRecord]:
        return self._read(reads.list_tasks, query)

    def transitions(self, task_id: str) -> list[Transition]:
        return self._read(reads.task_transitions, task_id)

    def step_logs(self, task_id: str, step: str | None = None) -> list[StepLogEntry]:
        return self._read(sql_step_logs.read, task_id, step)

    def count_by_state(self) -> StateCounts:
        return self._read(reads.count_by_state)

    def version_stats(self, namespaces: Sequence[str] | None = None, since: float | None = None) -> VersionStats:
        return self._read(version_stats.version_stats, namespaces, since)

    def find_idempotent(self, namespace: str, idempotency_key: str) -> TaskRecord | None:
        return self._read(reads.load_one, sa.and_(T.namespace == namespace,
                                                  T.idempotency_key == idempotency_key))

    def unfinished_using(self, distribution: str, namespaces: Sequence[str]) -> list[TaskRecord]:
        return self._read(version_stats.unfinished_using, distribution, namespaces)

    def next_ready_at(self) -> float | None:
        return self._read(reads.next_ready_at)

    def metric_facts(self, cursor: Any, now: float, limit: int = 100_000) -> tuple[list[Fact], IdCursor]:
        return self._read(sql_metric_facts.metric_facts, cursor, now, limit)
