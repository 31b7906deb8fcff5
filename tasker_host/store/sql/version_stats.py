"""The SQL aggregation behind ``Store.version_stats`` (see :mod:`tasker_host.store.version_stats`):
two GROUP BY statements in one transaction (REPEATABLE READ on PostgreSQL, so every count comes
from the same snapshot; SQLite's read transaction is one snapshot already): one over a covering
index for everything per version, one joining live children to live parents (waiting on a child).
And ``Store.unfinished_using`` (drain-check)."""

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
    scope = [T.namespace.in_(list(namespaces))] if namespaces is not None else []
    stats = VersionStats()
    _by_version(conn, stats, scope, since)
    child, parent = tasks.alias("child"), tasks.alias("parent")
    waiting = (sa.select(parent.c.namespace, parent.c.name, parent.c.version,
                         sa.func.count(sa.distinct(parent.c.id)))
               .join_from(child, parent, child.c.parent_task_id == parent.c.id)
               .where(child.c.status.in_(LIVE), parent.c.status.in_(LIVE),
                      *([parent.c.namespace.in_(list(namespaces))] if namespaces is not None else []))
               .group_by(parent.c.namespace, parent.c.name, parent.c.version))
    for ns, name, version, n in conn.execute(waiting):
        stats.waiting_on_child[(ns, name, version)] = n
    return stats


def _by_version(conn: sa.Connection, stats: VersionStats, scope: Sequence[sa.ColumnElement[bool]],
                since: float | None) -> None:
    """Statuses, last start, callers (all time) and who started it since ``since``: ONE scan of
    the covering index ``ix_tasks_version_stats``, grouped by version, status, caller and
    whether the task is recent."""
    recent = sa.case((T.created_at >= since, 1), else_=0) if since is not None else sa.literal(0)
    keys = (T.namespace, T.name, T.version, T.status, T.caller_namespace, recent)
    query = sa.select(*keys, sa.func.count(), sa.func.max(T.created_at)).where(*scope).group_by(*keys)
    for ns, name, version, status, caller, is_recent, n, last in conn.execute(query):
        key = (ns, name, version)
        stats.by_status[(*key, status)] += n
        stats.last_created[key] = max(stats.last_created.get(key, last), last)
        if caller is not None:
            stats.callers[(*key, caller)] += n
        if is_recent:
            stats.started_by[(*key, caller or DIRECT)] += n


def unfinished_using(conn: sa.Connection, distribution: str, namespaces: Sequence[str]) -> list[TaskRecord]:
    provided = T.provenance["distribution"].as_string() == distribution
    where = sa.and_(T.status.in_([s.value for s in UNFINISHED]),
                    sa.or_(provided, T.namespace.in_(list(namespaces))))
    return reads.load(conn, where, False, order=(T.created_at, T.id))
