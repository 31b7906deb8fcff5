"""Persistence of API tokens: the :class:`~tasker_host.auth.TokenStore` protocol, in memory and SQL.

* :class:`MemoryTokenStore` — a dict behind a lock (tests, ``memory://`` hosts);
* :class:`SqlTokenStore` — the ``api_tokens`` table, on the engine of a :class:`SqlStore` and with
  its transaction discipline (one transaction per call; on SQLite the store's writer lock; on
  PostgreSQL deadlocks / serialization failures retried);
* :func:`token_store_for` — the token store that lives next to a task store.

Revocations reach running API processes (:meth:`listen`): in memory at once (the listeners are
called by :meth:`revoke_token`); on PostgreSQL at once too, by ``NOTIFY tasker_tokens`` with the
revocation's commit (:mod:`tasker_host.store.token_notify`); on SQLite not at all — a server's
token cache keeps a revoked token until the entry expires. ``revocations_pushed`` says which.

Only a token's SHA-256 digest is ever stored. Names are unique: :meth:`add_token` raises
:class:`~tasker_host.errors.ConfigurationError` when the name (or id, or digest) is taken, and
writes nothing. :meth:`list_tokens` returns every token (revoked ones too), oldest first (ties by
name). :meth:`revoke_token` takes an id or a name (an id wins) and returns the record as revoked
(a token revoked earlier keeps its first ``revoked_at``), or None when nothing matches.
Both take an ``audit`` entry (:mod:`tasker_host.audit`), appended with the change (a revocation's
with the token's name as target) and only when the change happens: in the same transaction (SQL),
or to the task store's trail right after it (memory).

SQLAlchemy is imported only when a SQL token store is used (like :mod:`tasker_host.store`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tasker_host.audit import AuditEntry
from tasker_host.auth import Grant, TokenRecord, TokenStore
from tasker_host.errors import ConfigurationError
from tasker_host.store.memory import MemoryStore

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

    from tasker_host.store.sql import SqlStore
    from tasker_host.store.token_notify import RevocationListener

__all__ = ["MemoryTokenStore", "SqlTokenStore", "token_store_for"]

OnRevoked = Callable[[str], None]  # called with the revoked token's digest


def _taken(name: str) -> ConfigurationError:
    return ConfigurationError(f"a token named {name!r} already exists: pick another name "
                              "(or revoke it and use a new name; names are never reused)")


def _order(record: TokenRecord) -> tuple[float, str]:
    return record.created_at, record.name


class MemoryTokenStore:
    """Tokens in a dict (by id); one lock guards every method. Records are immutable."""

    revocations_pushed = True  # listeners are called by revoke_token itself

    def __init__(self, audit: Callable[[Sequence[AuditEntry]], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, TokenRecord] = {}
        self._listeners: list[OnRevoked] = []
        self._audit = audit  # where audit entries go (the memory task store's trail); None: dropped

    def listen(self, on_revoked: OnRevoked, on_reset: Callable[[], None]) -> _Subscription:
        """Call ``on_revoked(digest)`` for every later revocation (in the revoking thread)."""
        with self._lock:
            self._listeners.append(on_revoked)
        return _Subscription(self._listeners, on_revoked, self._lock)

    def add_token(self, record: TokenRecord, *, audit: AuditEntry | None = None) -> None:
        with self._lock:
            for existing in self._by_id.values():
                if existing.name == record.name:
                    raise _taken(record.name)
                if existing.id == record.id or existing.digest == record.digest:
                    raise ConfigurationError(f"token {record.name!r}: its id or digest is already stored")
            self._by_id[record.id] = record
        self._append(audit)

    def _append(self, entry: AuditEntry | None) -> None:
        if entry is not None and self._audit is not None:
            self._audit([entry])

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        with self._lock:
            return next((r for r in self._by_id.values() if r.digest == digest), None)

    def list_tokens(self) -> Sequence[TokenRecord]:
        with self._lock:
            return sorted(self._by_id.values(), key=_order)

    def revoke_token(self, id_or_name: str, now: float, *, audit: AuditEntry | None = None) -> TokenRecord | None:
        with self._lock:
            record = self._by_id.get(id_or_name) or next(
                (r for r in self._by_id.values() if r.name == id_or_name), None)
            if record is None:
                return None
            revoking = record.revoked_at is None
            if revoking:
                record = self._by_id[record.id] = replace(record, revoked_at=now)
            listeners = list(self._listeners)
        if revoking and audit is not None:
            self._append(audit.with_target(record.name))
        for on_revoked in listeners:
            on_revoked(record.digest)
        return record


class _Subscription:
    def __init__(self, listeners: list[OnRevoked], listener: OnRevoked, lock: threading.Lock):
        self._listeners, self._listener, self._lock = listeners, listener, lock

    def close(self) -> None:
        with self._lock:
            if self._listener in self._listeners:
                self._listeners.remove(self._listener)


class SqlTokenStore:
    """Tokens in the ``api_tokens`` table of ``store``'s database (schema revision 0002+)."""

    def __init__(self, store: SqlStore):
        self._store = store

    @property
    def revocations_pushed(self) -> bool:
        """PostgreSQL: revocations are notified to running servers; SQLite: they are not."""
        return self._store.dialect != "sqlite"

    def listen(self, on_revoked: OnRevoked, on_reset: Callable[[], None]) -> RevocationListener | None:
        """PostgreSQL: a started :class:`RevocationListener` (close it when done); SQLite: None."""
        if not self.revocations_pushed:
            return None
        from tasker_host.store.sql.notify import listener_conninfo
        from tasker_host.store.token_notify import RevocationListener

        return RevocationListener(listener_conninfo(self._store.engine.url), on_revoked, on_reset).start()

    def add_token(self, record: TokenRecord, *, audit: AuditEntry | None = None) -> None:
        from sqlalchemy.exc import IntegrityError

        try:
            self._store._write(self._add, record, audit)
        except IntegrityError:
            # a concurrent add with the same name won the race (the unique index refused ours)
            if self._store._read(self._name_taken, record.name):
                raise _taken(record.name) from None
            raise ConfigurationError(f"token {record.name!r}: its id or digest is already stored") from None

    def _add(self, conn: sa.Connection, record: TokenRecord, audit: AuditEntry | None = None) -> None:
        import sqlalchemy as sa

        from tasker_host.store.sql.schema import api_tokens

        if self._name_taken(conn, record.name):
            raise _taken(record.name)  # nothing written: the transaction rolls back
        conn.execute(sa.insert(api_tokens), {
            "id": record.id, "name": record.name, "digest": record.digest, "admin": record.admin,
            "grants": [str(g) for g in record.grants], "created_at": record.created_at,
            "revoked_at": record.revoked_at})
        if audit is not None:
            from tasker_host.store.sql.audit import append

            append(conn, [audit])

    @staticmethod
    def _name_taken(conn: sa.Connection, name: str) -> bool:
        import sqlalchemy as sa

        from tasker_host.store.sql.schema import api_tokens

        return conn.execute(sa.select(api_tokens.c.id).where(api_tokens.c.name == name)).first() is not None

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        import sqlalchemy as sa

        from tasker_host.store.sql.schema import api_tokens

        query = sa.select(api_tokens).where(api_tokens.c.digest == digest)
        return self._store._read(lambda conn: _one(conn.execute(query).first()))

    def list_tokens(self) -> Sequence[TokenRecord]:
        import sqlalchemy as sa

        from tasker_host.store.sql.schema import api_tokens

        query = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.name)
        return self._store._read(lambda conn: [_record(r) for r in conn.execute(query)])

    def revoke_token(self, id_or_name: str, now: float, *, audit: AuditEntry | None = None) -> TokenRecord | None:
        return self._store._write(self._revoke, id_or_name, now, audit)

    def _revoke(self, conn: sa.Connection, id_or_name: str, now: float,
                audit: AuditEntry | None = None) -> TokenRecord | None:
        import sqlalchemy as sa

        from tasker_host.store.sql.schema import api_tokens

        c = api_tokens.c
        for condition in (c.id == id_or_name, c.name == id_or_name):
            query = sa.select(api_tokens).where(condition)
            if self._store.dialect != "sqlite":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                continue
            record = _record(row)
            if record.revoked_at is None:
                conn.execute(sa.update(api_tokens).where(c.id == record.id).values(revoked_at=now))
                record = replace(record, revoked_at=now)
                if self.revocations_pushed:
                    from tasker_host.store.token_notify import notify_revoked

                    notify_revoked(conn, record.digest)  # delivered with the commit
                if audit is not None:
                    from tasker_host.store.sql.audit import append

                    append(conn, [audit.with_target(record.name)])
            return record
        return None


def _record(row: Any) -> TokenRecord:
    return TokenRecord(id=row.id, name=row.name, digest=row.digest, admin=bool(row.admin),
                       grants=tuple(Grant.parse(g) for g in row.grants or ()), created_at=row.created_at,
                       revoked_at=row.revoked_at)


def _one(row: Any) -> TokenRecord | None:
    return None if row is None else _record(row)


_MEMORY_TOKENS = "_tasker_memory_tokens"  # the attribute a non-SQL store keeps its tokens in


def token_store_for(store: Any) -> TokenStore:
    """The token store that lives next to ``store``.

    :class:`SqlStore` → :class:`SqlTokenStore` on the same database; :class:`MemoryStore` → the
    :class:`MemoryTokenStore` of that store (kept on the store object: the same one on every call,
    gone with the store). Any other object (a test's wrapper around a store, say) also gets a
    per-object :class:`MemoryTokenStore`: its tokens are not persisted.
    """
    if not isinstance(store, MemoryStore):
        from tasker_host.store.sql import SqlStore

        if isinstance(store, SqlStore):
            return SqlTokenStore(store)
    try:
        attributes = vars(store)
    except TypeError:  # no __dict__ (slots, builtins): nothing to keep it on
        return MemoryTokenStore()
    audit = getattr(store, "append_audit", None)  # the memory store's trail (a test double's, if any)
    return attributes.setdefault(_MEMORY_TOKENS, MemoryTokenStore(audit))  # atomic: one winner per store
