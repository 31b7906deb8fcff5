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
from collections.abc import Callable

import sqlalchemy as sa

from tasker_host.store.pg_listener import ChannelListener

log = logging.getLogger("tasker_host.store")

CHANNEL = "tasker_tokens"


def notify_revoked(conn: sa.Connection, digest: str) -> None:
    """Queue the revocation notice; PostgreSQL delivers it when ``conn``'s transaction commits."""
    conn.execute(sa.text("SELECT pg_notify(:channel, :digest)"), {"channel": CHANNEL, "digest": digest})


class RevocationListener(ChannelListener):
    """One connection that ``LISTEN``s on :data:`CHANNEL` (in its own thread) and calls
    ``on_revoked(digest)`` for each notice, ``on_reset()`` after each (re)connection."""

    def __init__(self, conninfo: str, on_revoked: Callable[[str], None], on_reset: Callable[[], None], *,
                 retry_seconds: float = 1.0) -> None:
        super().__init__(conninfo, CHANNEL, on_notice=on_revoked, on_connect=on_reset,
                         what="token revocation listener", retry_seconds=retry_seconds)
