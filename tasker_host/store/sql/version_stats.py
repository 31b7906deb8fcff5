"""The SQL aggregation behind ``Store.version_stats`` (see :mod:`tasker_host.store.version_stats`):
GROUP BY statements in one transaction (REPEATABLE READ on PostgreSQL, so every count comes from
the same snapshot; SQLite's read transaction is one snapshot already); the callers one joins
children to parents by primary key. And ``Store.unfinished_using`` (drain-check)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from tasker_host.store.base import UNFINISHED, TaskRecord
from tasker_host.store.sql import reads
from tasker_host.store.sql.schema import tasks
from tasker_host.store.version_stats import DIRECT, LIVE, VersionStats

T = tasks.c


def version_stats(conn: sa.Connection, namespaces: Sequence[str] | None, since: float | None = None) -> VersionStats:
    if conn.dialect.name == "postgresql":  # the first statement of the transaction
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    child, parent = tasks.alias("child"), tasks.alias("parent")
    scope = [T.namespace.in_(list(namespaces))] if namespaces is not None else []
    stats = VersionStats()
    by_status = (sa.select(T.namespace, T.name, T.version, T.status, sa.func.count(), sa.func.max(T.created_at))
                 .where(*scope).group_by(T.namespace, T.name, T.version, T.status))
    for ns, name, version, status, n, last in conn.execute(by_status):
        stats.by_status[(ns, name, version, status)] = n
        key = (ns, name, version)
        stats.last_created[key] = max(stats.last_created.get(key, last), last)
    callers = (sa.select(child.c.namespace, child.c.name, child.c.version, parent.c.namespace, sa.func.count())
               .join_from(child, parent, child.c.parent_task_id == parent.c.id)
               .where(*([child.c.namespace.in_(list(namespaces))] if namespaces is not None else []))
               .group_by(child.c.namespace, child.c.name, child.c.version, parent.c.namespace))
    for ns, name, version, caller, n in conn.execute(callers):
        stats.callers[(ns, name, version, caller)] = n
    waiting = (sa.select(parent.c.namespace, parent.c.name, parent.c.version,
                         sa.func.count(sa.distinct(parent.c.id)))
               .join_from(child, parent, child.c.parent_task_id == parent.c.id)
               .where(child.c.status.in_(LIVE), parent.c.status.in_(LIVE),
                      *([parent.c.namespace.in_(list(namespaces))] if namespaces is not None else []))
               .group_by(parent.c.namespace, parent.c.name, parent.c.version))
    for ns, name, version, n in conn.execute(waiting):
        stats.waiting_on_child[(ns, name, version)] = n
    if since is not None:
        _started_by(conn, stats, scope, since)
    return stats


def _started_by(conn: sa.Connection, stats: VersionStats, scope: Sequence[sa.ColumnElement[bool]],
                since: float) -> None:
    caller = sa.func.coalesce(T.caller_namespace, DIRECT)
    query = (sa.select(T.namespace, T.name, T.version, caller, sa.func.count())
             .where(T.created_at >= since, *scope).group_by(T.namespace, T.name, T.version, caller))
    for ns, name, version, who, n in conn.execute(query):
        stats.started_by[(ns, name, version, who)] = n


def unfinished_using(conn: sa.Connection, distribution: str, namespaces: Sequence[str]) -> list[TaskRecord]:
    provided = T.provenance["distribution"].as_string() == distribution
    where = sa.and_(T.status.in_([s.value for s in UNFINISHED]),
                    sa.or_(provided, T.namespace.in_(list(namespaces))))
    return reads.load(conn, where, False, order=(T.created_at, T.id))
