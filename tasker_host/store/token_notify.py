"""Revocations pushed to every API process on PostgreSQL: a revocation sends
``NOTIFY tasker_tokens, '<digest>'`` with its commit, and each API process with a token cache runs
a :class:`RevocationListener` that ``LISTEN``s and drops that token from its cache at once.

Notifications sent while a listener is disconnected are lost, so after each (re)connection the
listener calls ``on_reset`` (the cache forgets everything; the next requests check the database):
at worst, during an outage of the listener's connection, a revoked token keeps working until the
cache entry expires (``--token-cache-seconds``), as without this module. The channel is
database-wide (not per schema); the payload is the token's SHA-256 digest, never the token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

log = logging.getLogger("tasker_host.store")

CHANNEL = "tasker_tokens"
_WAIT = 0.25  # seconds a listener waits for a notification before checking whether it is closed


def notify_revoked(conn: sa.Connection, digest: str) -> None:
    """Queue the revocation notice; PostgreSQL delivers it when ``conn``'s transaction commits."""
    conn.execute(sa.text("SELECT pg_notify(:channel, :digest)"), {"channel": CHANNEL, "digest": digest})


class RevocationListener:
    """One connection that ``LISTEN``s on :data:`CHANNEL` (in its own thread) and calls
    ``on_revoked(digest)`` for each notice, ``on_reset()`` after each (re)connection."""

    def __init__(self, conninfo: str, on_revoked: Callable[[str], None], on_reset: Callable[[], None], *,
                 retry_seconds: float = 1.0) -> None:
        self._conninfo, self._retry_seconds = conninfo, retry_seconds
        self._on_revoked, self._on_reset = on_revoked, on_reset
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tasker-token-listen", daemon=True)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self, timeout: float = 5.0) -> RevocationListener:
        """Start listening; returns once LISTEN is in effect (or after ``timeout``)."""
        self._thread.start()
        self._listening.wait(timeout)
        return self

    def close(self) -> None:
        self._closed.set()
        self._thread.join(_WAIT * 4)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the cache's expiry covers until it is back
                self._listening.clear()
                log.warning("token revocation listener lost its connection (%s: %s); reconnecting in %gs",
                            type(exc).__name__, exc, self._retry_seconds)
                self._closed.wait(self._retry_seconds)

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._on_reset()  # whatever was revoked while not listening
            self._listening.set()
            while not self._closed.is_set():
                for notice in conn.notifies(timeout=_WAIT):
                    self._on_revoked(notice.payload)
