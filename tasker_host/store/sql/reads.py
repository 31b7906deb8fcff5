"""The SQL store's reads: task records (with or without their steps), listings, transitions,
step results and counts. Each function takes a connection; :class:`SqlStore` picks the
transaction (see :mod:`tasker_host.store.sql.store`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.models import TaskState
from tasker_host.store.base import UNFINISHED, NewTask, StateCounts, TaskFilter, TaskRecord, Transition
from tasker_host.store.sql import work
from tasker_host.store.sql.rows import step_record, task_record
from tasker_host.store.sql.schema import steps, tasks, transitions

S, T, X = steps.c, tasks.c, transitions.c
_TASK_COLUMNS = [c for c in tasks.c if c.key != "steps_remaining"]
_STEP_COLUMNS = [c for c in steps.c if c.key not in ("position", "namespace")]


def load(conn: sa.Connection, where: sa.ColumnElement[bool], with_steps: bool,
         order: Sequence[Any] = (), limit: int | None = None) -> list[TaskRecord]:
    """The tasks matching ``where`` (with their steps in order when ``with_steps``)."""
    query = sa.select(*_TASK_COLUMNS).where(where).order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    found = [task_record(r) for r in conn.execute(query)]
    if with_steps and found:
        by_id = {t.id: t for t in found}
        query = (sa.select(*_STEP_COLUMNS).where(S.task_id.in_(list(by_id)))
                 .order_by(S.task_id, S.position))
        for r in conn.execute(query):
            by_id[r.task_id].steps.append(step_record(r))
    return found


def load_one(conn: sa.Connection, where: sa.ColumnElement[bool], with_steps: bool = True) -> TaskRecord | None:
    found = load(conn, where, with_steps)
    return found[0] if found else None


def existing(conn: sa.Connection, task: NewTask) -> TaskRecord | None:
    """The task that already holds ``task``'s idempotency or invocation key, if any."""
    conditions = []
    if task.idempotency_key is not None:
        conditions.append(sa.and_(T.namespace == task.namespace, T.idempotency_key == task.idempotency_key))
    if task.parent_task_id is not None and task.invocation_key is not None:
        conditions.append(sa.and_(T.parent_task_id == task.parent_task_id,
                                  T.invocation_key == task.invocation_key))
    for condition in conditions:
        found = load(conn, condition, with_steps=True)
        if found:
            return found[0]
    return None


def list_tasks(conn: sa.Connection, q: TaskFilter) -> list[TaskRecord]:
    where: list[sa.ColumnElement[bool]] = []
    if q.after_id is not None:
        created = conn.execute(sa.select(T.created_at).where(T.id == q.after_id)).scalar()
        if created is None:
            return []
        where += _after(created, q.after_id, q.newest_first)
    if q.namespaces is not None:
        where.append(T.namespace.in_(list(q.namespaces)))
    for column, value in ((T.name, q.name), (T.version, q.version), (T.parent_task_id, q.parent_task_id),
                          (T.correlation_id, q.correlation_id),
                          (T.status, TaskState(q.status).value if q.status is not None else None)):
        if value is not None:
            where.append(column == value)
    if q.created_after is not None:
        where.append(T.created_at >= q.created_after)
    if q.created_before is not None:
        where.append(T.created_at < q.created_before)
    if q.context_text:
        where.append(sa.cast(T.context, sa.Text).contains(q.context_text, autoescape=True))
    if q.id_prefix:
        where.append(T.id.startswith(q.id_prefix, autoescape=True))
    order = (T.created_at.desc(), T.id.desc()) if q.newest_first else (T.created_at, T.id)
    return load(conn, sa.and_(sa.true(), *where), False, order, max(q.limit, 0))


def _after(created: float, task_id: str, newest_first: bool) -> list[sa.ColumnElement[bool]]:
    """Keyset condition: the rows after (created, task_id) in the listing's order (the first
    term lets both planners use the (created_at, id) indexes as a range)."""
    if newest_first:
        return [T.created_at <= created,
                sa.or_(T.created_at < created, sa.and_(T.created_at == created, T.id < task_id))]
    return [T.created_at >= created, sa.or_(T.created_at > created, sa.and_(T.created_at == created, T.id > task_id))]


def step_results(conn: sa.Connection, task_id: str) -> dict[str, Any]:
    query = sa.select(S.name, S.results).where(S.task_id == task_id, S.state.in_(work.DONE)).order_by(S.position)
    return {name: results for name, results in conn.execute(query)}


def task_transitions(conn: sa.Connection, task_id: str) -> list[Transition]:
    query = (sa.select(X.task_id, X.step, X.from_state, X.to_state, X.at, X.reason)
             .where(X.task_id == task_id).order_by(X.id))
    return [Transition(*r) for r in conn.execute(query)]


#: a namespace's earliest runnable step of a live task: an ordered walk of ix_steps_runnable
#: (namespace, ready_at) that stops at the first live one (waiting steps without a timer, NULL,
#: are skipped: SQLite sorts NULL first)
_NEXT_IN = (sa.select(S.ready_at).join_from(steps, tasks, S.task_id == T.id)
            .where(work.RUNNABLE, S.namespace == sa.bindparam("ns"), S.ready_at.is_not(None), work.LIVE)
            .order_by(S.ready_at).limit(1))


def next_ready_at(conn: sa.Connection) -> float | None:
    """The earliest ``ready_at`` of a runnable step: one index descent per namespace that has
    runnable steps (found by a loose index scan), never a scan of the waiting steps, however
    many wait (100,000 timers: bench/timers_bench.py)."""
    found = [conn.execute(_NEXT_IN, {"ns": ns}).scalar() for ns in conn.execute(work.READY_NAMESPACES).scalars()]
    times = [t for t in found if t is not None]
    return min(times) if times else None


def count_by_state(conn: sa.Connection) -> StateCounts:
    unfinished = [state.value for state in UNFINISHED]
    by_task = sa.select(T.namespace, T.status, sa.func.count()).group_by(T.namespace, T.status)
    by_step = (sa.select(T.namespace, S.state, sa.func.count()).select_from(tasks.join(steps, S.task_id == T.id))
               .where(T.status.in_(unfinished)).group_by(T.namespace, S.state))
    counts = StateCounts()
    counts.tasks.update({(ns, st): n for ns, st, n in conn.execute(by_task)})
    counts.steps.update({(ns, st): n for ns, st, n in conn.execute(by_step)})
    return counts
