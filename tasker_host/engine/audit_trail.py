"""The service side of the audit trail (:mod:`tasker_host.audit`): builds the entry recording an
actor's action, for the store to append in the transaction of the change (``NewTask.audit``, the
``audit`` argument of ``cancel_task`` / ``retry_task`` / ``resolve_step``), or alone when there is
no other change to write (a console sign-in); and lists the trail. No actor (a change the engine
itself makes, e.g. a ``ctx.invoke`` child task): no entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasker_host.audit import Actor, AuditAction, AuditEntry, AuditFilter, AuditRecord, entry_for
from tasker_host.engine.clock import Clock
from tasker_host.store.base import Store


class AuditTrail:
    def __init__(self, store: Store, clock: Clock):
        self.store, self.clock = store, clock

    def entry(self, actor: Actor | None, action: AuditAction, *, namespace: str | None = None,
              target: str | None = None, details: Mapping[str, Any] | None = None,
              correlation_id: str | None = None) -> AuditEntry | None:
        """The entry for ``actor``'s ``action`` now (None without an actor)."""
        if actor is None:
            return None
        return entry_for(actor, action, self.clock.now(), namespace=namespace, target=target, details=details,
                         correlation_id=correlation_id)

    def record(self, actor: Actor, action: AuditAction, **fields: Any) -> None:
        """Append the entry by itself (an action that changes nothing else in the database)."""
        entry = self.entry(actor, action, **fields)
        if entry is not None:
            self.store.append_audit([entry])

    def list(self, query: AuditFilter) -> list[AuditRecord]:
        return self.store.list_audit(query)
