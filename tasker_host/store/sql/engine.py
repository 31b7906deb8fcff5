"""Engines for the SQL store, and the schema's life cycle (Alembic, configured in code).

SQLite
    WAL journal, ``synchronous=NORMAL``, ``busy_timeout``, foreign keys on (set on every new
    connection). With WAL + NORMAL a committed transaction survives the *process* dying at any
    point (SIGKILL included): the commit is in the WAL file, which the OS writes out by itself. Only
    an OS crash or power loss may lose the last few commits (never corrupting the database).
    Transactions that write start with ``BEGIN IMMEDIATE``, so concurrent connections queue on the
    database lock (up to ``busy_timeout``) instead of failing later with "database is locked";
    read-only transactions use a plain ``BEGIN`` and run next to a writer (WAL).
PostgreSQL
    ``postgresql://`` / ``postgres://`` use psycopg 3. The schema is never changed behind the
    operator's back: a missing or outdated schema is a :class:`ConfigurationError` that says to
    run ``tasker-host db upgrade`` (unless the store is opened with ``auto_upgrade=True``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import StaticPool

from tasker_host.errors import ConfigurationError
from tasker_host.migrations import make_config
from tasker_host.store.urls import default_sqlite_url, is_sqlite_memory, parse_url, redact, render_url

SQLITE_BUSY_TIMEOUT_MS = 15_000
IDLE_PING_SECONDS = 5.0  # PostgreSQL: check pooled connections idle longer than this before use
READONLY = "tasker_readonly"  # execution option: this transaction only reads (SQLite: plain BEGIN)
_UPGRADE_LOCK = (0x7A5C, 1)  # pg_advisory_xact_lock key pair serialising concurrent upgrades


def make_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for ``url`` (normalised first) with the per-database settings described above."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(parsed, **options)
        if not options.get("pool_pre_ping"):
            _ping_idle_connections(engine)
        return engine
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    memory = is_sqlite_memory(parsed)
    if memory:
        options.setdefault("poolclass", StaticPool)
    else:
        Path(parsed.database or "").resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args=connect_args, **options)
    _sqlite_events(engine, wal=not memory)
    return engine


def step_engine(url: str | URL, **options: Any) -> Engine:
    """A second PostgreSQL engine for the runner's claims and step outcomes, whose transactions
    commit with ``synchronous_commit=off``: PostgreSQL acknowledges them before their WAL is
    flushed (within ~3 x ``wal_writer_delay``, 0.6 s by default). Nothing committed is lost when
    a tasker-host process is killed; a crash of the PostgreSQL server (or its machine) may lose
    the last step transitions, never corrupting anything — those steps then run again, as after
    a worker's death (execution is at-least-once). Task creations, operator actions and tokens
    stay on the main engine and wait for the flush."""
    engine = make_engine(url, **options)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        dbapi_connection.commit()

    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before use only when it may have gone stale: when the
    driver knows it is broken, or it sat idle over :data:`IDLE_PING_SECONDS` (server restarts and
    idle timeouts hit idle connections). A busy runner's connections skip the round trip that
    ``pool_pre_ping`` would spend on every checkout. A failed check hands out a new connection."""
    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
            raise sa.exc.DisconnectionError("connection closed")
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: this connection is gone
            raise sa.exc.DisconnectionError(f"stale connection: {exc}") from exc


def _sqlite_events(engine: Engine, *, wal: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN by itself: we do
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        readonly = connection.get_execution_options().get(READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


# -- schema life cycle ---------------------------------------------------------------------------
def head_revision() -> str:
    """The revision this version of tasker-host needs."""
    head = ScriptDirectory.from_config(make_config()).get_current_head()
    assert head is not None
    return head


def revision_of(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_engine(engine: Engine, revision: str = "head") -> str | None:
    """Run ``alembic upgrade <revision>`` in one transaction on ``engine``; the new revision."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(*_UPGRADE_LOCK)))
        command.upgrade(make_config(connection=connection), revision)
        return revision_of(connection)


def check_schema(engine: Engine) -> None:
    """Raise :class:`ConfigurationError` unless the database is at :func:`head_revision`."""
    with engine.connect() as connection:
        connection.execution_options(**{READONLY: True})
        current = revision_of(connection)
    head = head_revision()
    if current == head:
        return
    where = redact(render_url(engine.url))
    if current is None:
        raise ConfigurationError(f"the database {where} has no tasker-host schema: "
                                 "run `tasker-host db upgrade` first")
    known = {rev.revision for rev in ScriptDirectory.from_config(make_config()).walk_revisions()}
    if current not in known:
        raise ConfigurationError(f"the database {where} is at schema revision {current}, which this "
                                 f"tasker-host does not know (it needs {head}): is a newer tasker-host "
                                 "using it?")
    raise ConfigurationError(f"the database {where} is at schema revision {current}, this tasker-host "
                             f"needs {head}: run `tasker-host db upgrade`")


def upgrade(url: str | None = None, revision: str = "head") -> str | None:
    """``tasker-host db upgrade``: bring the database at ``url`` (None: the embedded SQLite default)
    to ``revision``; returns the database's revision afterwards."""
    engine = make_engine(url or default_sqlite_url())
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def current_revision(url: str | None = None) -> str | None:
    """The schema revision of the database at ``url`` (None: no tasker-host schema yet)."""
    engine = make_engine(url or default_sqlite_url())
    try:
        with engine.connect() as connection:
            connection.execution_options(**{READONLY: True})
            return revision_of(connection)
    finally:
        engine.dispose()
