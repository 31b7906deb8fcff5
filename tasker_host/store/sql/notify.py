"""Wake-ups between processes on PostgreSQL: ``NOTIFY tasker_work`` when a write leaves steps
ready that nobody claimed, and a :class:`WorkListener` thread in each runner that ``LISTEN``s and
wakes the runner's claim loop at once (polling stays as the fallback).

A notification is delivered when its transaction commits, so a woken runner always finds the
work. Sending one takes a database-wide lock until the commit ends (PostgreSQL serialises
notifying commits, WAL flush included): a creation notifies with its insert only while no other
creation of the store is under way; concurrent ones leave it to :class:`Notifier`, which sends
one NOTIFY of its own per burst (a transaction that writes nothing commits at once). The busy
paths send
at most one per :data:`BUSY_WAKE_INTERVAL` per store: a busy runner's full batches only need to
wake idle runners once in a while (idle runners that worked lately also poll briefly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from tasker_host.store.pg_listener import WAIT, ChannelListener

log = logging.getLogger("tasker_host.store")

CHANNEL = "tasker_work"
BUSY_WAKE_INTERVAL = 0.5  # seconds between notifications sent by one store's busy paths


#: the same as a SELECT, to end a statement that does more (``InsertAll(then=...)``)
NOTIFY_SELECT = f"SELECT pg_notify('{CHANNEL}', '')"


def notify(conn: sa.Connection) -> None:
    """Queue a wake-up; PostgreSQL delivers it to every listener when ``conn``'s transaction commits."""
    conn.exec_driver_sql(f"NOTIFY {CHANNEL}")


class Notifier:
    """Sends ``NOTIFY`` from a thread of its own, on its own connection, so a creation's writer
    does not wait for it: :meth:`request` returns at once, and the requests that arrive while
    one notification is being sent are answered by the next one (one per burst)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._wanted = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def request(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name="tasker-notify", daemon=True)
                    self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        self._closed = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(WAIT * 4)

    def _run(self) -> None:
        import psycopg

        conn = None
        while True:
            self._wanted.wait()
            if self._closed:
                break
            self._wanted.clear()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._conninfo, autocommit=True)
                conn.execute(f"NOTIFY {CHANNEL}")
            except Exception as exc:  # noqa: BLE001 - runners still poll; try again next time
                log.warning("could not send a wake-up (%s: %s)", type(exc).__name__, exc)
                conn = None
        if conn is not None:
            conn.close()


class WakeLimiter:
    """Lets a busy path notify at most once per ``interval`` seconds (thread-safe enough: a
    race sends one notification too many, never too few)."""

    def __init__(self, interval: float = BUSY_WAKE_INTERVAL) -> None:
        self.interval = interval
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


class WorkListener(ChannelListener):
    """One connection that ``LISTEN``s for wake-ups and calls ``on_work`` (from its own thread)
    for each burst of notifications, and after each (re)connection (notifications sent meanwhile
    are lost)."""

    def __init__(self, conninfo: str, on_work: Callable[[], None], *, retry_seconds: float = 1.0) -> None:
        super().__init__(conninfo, CHANNEL, on_notice=lambda _payload: on_work(), on_connect=on_work,
                         what="wake-up listener", burst=True, retry_seconds=retry_seconds)


def listener_conninfo(url: sa.URL) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (query options kept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
