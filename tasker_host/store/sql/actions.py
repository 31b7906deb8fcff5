"""Operator actions on one task, each inside the caller's write transaction: cancel it, retry
its failed steps, resolve a failed step by hand. Each locks the task's steps, then the task
(PostgreSQL), the order the claim / record hot paths use."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa

from tasker_host.models import StepState, TaskState
from tasker_host.store._common import CANCELLABLE_STEP, FINAL_TASK, WAITING_STEP
from tasker_host.store.sql import work
from tasker_host.store.sql.schema import steps, tasks

S, T = steps.c, tasks.c


def _lock_task(conn: sa.Connection, task_id: str) -> tuple[Any, list[Any]]:
    """Lock the task's steps, then the task (PostgreSQL; the order claim/record use too)."""
    step_query = sa.select(S.name, S.state, S.dependents).where(S.task_id == task_id).order_by(S.name)
    task_query = sa.select(T.status, T.steps_remaining).where(T.id == task_id)
    if conn.dialect.name != "sqlite":
        step_query, task_query = step_query.with_for_update(), task_query.with_for_update()
    rows = list(conn.execute(step_query))
    return conn.execute(task_query).first(), rows


def cancel(conn: sa.Connection, task_id: str, now: float, reason: str) -> bool:
    task, rows = _lock_task(conn, task_id)
    if task is None or TaskState(task.status) in FINAL_TASK:
        return False
    log = [work.transition(task_id, r.name, r.state, StepState.CANCELLED.value, now, reason)
           for r in rows if StepState(r.state) in CANCELLABLE_STEP]
    if log:
        conn.execute(sa.update(steps).where(S.task_id == task_id, S.state.in_([s.value for s in CANCELLABLE_STEP]))
                     .values(state=StepState.CANCELLED.value, lease_owner=None, lease_expires_at=None))
    conn.execute(sa.update(tasks).where(T.id == task_id).values(
        status=TaskState.CANCELLED.value, completed_at=now, updated_at=now))
    log.append(work.transition(task_id, None, task.status, TaskState.CANCELLED.value, now, reason))
    work.INSERT_TRANSITIONS(conn, log)
    return True


def retry(conn: sa.Connection, task_id: str, now: float, reason: str) -> bool:
    task, rows = _lock_task(conn, task_id)
    if task is None or task.status != TaskState.ERROR.value:
        return False
    log = [work.transition(task_id, r.name, r.state, StepState.PENDING.value, now, reason)
           for r in rows if r.state == StepState.ERROR.value]
    conn.execute(sa.update(steps).where(S.task_id == task_id, S.state == StepState.ERROR.value).values(
        state=StepState.PENDING.value, attempts=0, ready_at=now, lease_owner=None, lease_expires_at=None))
    _set_status(conn, task_id, task.status, TaskState.IN_PROGRESS, now, reason, log,
                error=None, completed_at=None)
    work.INSERT_TRANSITIONS(conn, log)
    return True


def resolve(conn: sa.Connection, task_id: str, step: str, now: float, results: Any, reason: str) -> bool:
    task, rows = _lock_task(conn, task_id)
    row = next((r for r in rows if r.name == step), None)
    if task is None or row is None or TaskState(task.status) in FINAL_TASK:
        return False
    status, state = TaskState(task.status), StepState(row.state)
    if not (state is StepState.ERROR or (state in WAITING_STEP and status is TaskState.ERROR)):
        return False
    conn.execute(sa.update(steps).where(S.task_id == task_id, S.name == step).values(
        state=StepState.RESOLVED_MANUALLY.value, results=results,
        completed_at=now, lease_owner=None, lease_expires_at=None))
    unblock = Counter(row.dependents)
    if unblock:
        work.UNBLOCK(conn, [{"k_task": task_id, "k_name": n, "n": c} for n, c in sorted(unblock.items())])
    log = [work.transition(task_id, step, state.value, StepState.RESOLVED_MANUALLY.value, now, reason)]
    remaining = task.steps_remaining - 1
    conn.execute(sa.update(tasks).where(T.id == task_id).values(steps_remaining=remaining, updated_at=now))
    if remaining == 0:
        _set_status(conn, task_id, status.value, TaskState.COMPLETE, now, reason, log,
                    error=None, completed_at=now)
    elif status is TaskState.ERROR and not any(r.state == StepState.ERROR.value for r in rows if r.name != step):
        _set_status(conn, task_id, status.value, TaskState.IN_PROGRESS, now, reason, log,
                    error=None, completed_at=None)
    work.INSERT_TRANSITIONS(conn, log)
    return True


def _set_status(conn: sa.Connection, task_id: str, before: str, after: TaskState, now: float, reason: str,
                log: list[dict[str, Any]], **values: Any) -> None:
    conn.execute(sa.update(tasks).where(T.id == task_id).values(status=after.value, updated_at=now, **values))
    log.append(work.transition(task_id, None, before, after.value, now, reason))
