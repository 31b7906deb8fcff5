"""The audit trail in SQL (see :mod:`tasker_host.audit`): rows inserted inside the caller's
transaction (with the change they record), and the newest-first listing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from tasker_host.audit import ActorKind, AuditAction, AuditEntry, AuditFilter, AuditRecord
from tasker_host.store.sql.batch import ManyInsert
from tasker_host.store.sql.schema import audit

R = TypeVar("R")
A = audit.c
INSERT = ManyInsert(audit, [c.key for c in audit.c if c.key != "id"])


def row(entry: AuditEntry) -> dict[str, Any]:
    return {"at": entry.at, "principal": entry.principal, "token_name": entry.token_name,
            "actor_kind": entry.actor_kind.value, "os_user": entry.os_user, "action": entry.action.value,
            "namespace": entry.namespace, "target": entry.target, "details": dict(entry.details),
            "correlation_id": entry.correlation_id}


def append(conn: sa.Connection, entries: Sequence[AuditEntry]) -> None:
    INSERT(conn, [row(e) for e in entries])


def audited(action: Callable[..., R], entry: AuditEntry | None) -> Callable[..., R]:
    """``action(conn, ...)``, then (when it changed something) ``entry`` in the same transaction."""
    if entry is None:
        return action

    def run(conn: sa.Connection, *args: Any) -> R:
        changed = action(conn, *args)
        if changed:
            append(conn, [entry])
        return changed

    return run


def read(conn: sa.Connection, query: AuditFilter) -> list[AuditRecord]:
    where: list[sa.ColumnElement[bool]] = []
    if query.namespaces is not None:
        where.append(A.namespace.in_(list(query.namespaces)))
    if query.since is not None:
        where.append(A.at >= query.since)
    if query.before_id is not None:
        where.append(A.id < query.before_id)
    select = sa.select(audit).where(*where).order_by(A.id.desc()).limit(query.limit)
    return [AuditRecord(r.id, AuditEntry(
        at=r.at, principal=r.principal, actor_kind=ActorKind(r.actor_kind), action=AuditAction(r.action),
        token_name=r.token_name, os_user=r.os_user, namespace=r.namespace, target=r.target,
        details=r.details or {}, correlation_id=r.correlation_id)) for r in conn.execute(select)]
