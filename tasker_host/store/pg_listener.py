"""A PostgreSQL ``LISTEN`` in a thread of its own, that outlives its connection.

:class:`ChannelListener` holds one autocommit connection that ``LISTEN``s on a channel and hands
each notification to a callback. When the connection is lost (server restart, terminated
backend, network) it reconnects every ``retry_seconds``, logging one line when the connection is
lost and one when it listens again — not one per try. Notifications sent while it was away are
lost, so ``on_connect`` runs after every (re)connection for the owner to catch up. Used for
work wake-ups (:mod:`tasker_host.store.sql.notify`) and token revocations
(:mod:`tasker_host.store.token_notify`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

log = logging.getLogger("tasker_host.store")

WAIT = 0.25  # seconds a listener waits for a notification before checking whether it is closed


class ChannelListener:
    """``on_notice(payload)`` for each notification (``burst``: once per burst, the payload of its
    first), ``on_connect()`` after each (re)connection. ``what`` names it in log lines."""

    def __init__(self, conninfo: str, channel: str, *, on_notice: Callable[[str], None],
                 on_connect: Callable[[], None], what: str, burst: bool = False,
                 retry_seconds: float = 1.0) -> None:
        self._conninfo, self._channel, self._what = conninfo, channel, what
        self._on_notice, self._on_connect, self._burst = on_notice, on_connect, burst
        self._retry_seconds = retry_seconds
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._lost_at: float | None = None  # when the connection was lost (None: listening)
        self._thread = threading.Thread(target=self._run, name=f"tasker-listen-{channel}", daemon=True)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self, timeout: float = 5.0) -> Self:
        """Start listening; returns once LISTEN is in effect (or after ``timeout``)."""
        self._thread.start()
        self._listening.wait(timeout)
        return self

    def close(self) -> None:
        self._closed.set()
        self._thread.join(WAIT * 4)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - a lost connection: try again until closed
                self._listening.clear()
                self._lost(exc)
                self._closed.wait(self._retry_seconds)

    def _lost(self, exc: Exception) -> None:
        if self._lost_at is not None:
            return  # one line per outage
        self._lost_at = time.monotonic()
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning("%s lost its connection (%s: %s); reconnecting every %gs", self._what,
                    type(exc).__name__, first_line, self._retry_seconds)

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {self._channel}")
            if self._lost_at is not None:
                log.warning("%s listening again after %.1f s", self._what, time.monotonic() - self._lost_at)
                self._lost_at = None
            self._on_connect()
            self._listening.set()
            while not self._closed.is_set():
                for notice in conn.notifies(timeout=WAIT):
                    if not self._closed.is_set():
                        self._on_notice(notice.payload)
                    if self._burst:
                        break  # one call per burst: the owner takes whatever there is
