"""The audit trail of :class:`~tasker_host.store.memory.MemoryStore`: a mixin on the store's own
lock. Rows are appended (with the change they record, under the same lock) and listed; never
changed."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tasker_host.audit import AuditEntry, AuditFilter, AuditRecord


class MemoryAudit:
    _lock: threading.Lock
    _audit: list[AuditRecord]

    def _keep_audit(self, entry: AuditEntry | None) -> None:
        """Under the store's lock, with the change ``entry`` records."""
        if entry is not None:
            self._audit.append(AuditRecord(len(self._audit) + 1, entry))

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        with self._lock:
            for entry in entries:
                self._keep_audit(entry)

    def list_audit(self, query: AuditFilter) -> list[AuditRecord]:
        wanted = None if query.namespaces is None else set(query.namespaces)
        with self._lock:
            found = []
            for record in reversed(self._audit):
                e = record.entry
                if ((query.before_id is None or record.id < query.before_id)
                        and (query.since is None or e.at >= query.since)
                        and (wanted is None or e.namespace in wanted)):
                    found.append(record)
                    if len(found) >= query.limit:
                        break
            return found
