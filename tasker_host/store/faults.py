"""Which database failures are about the connection (retry later) and which are about the data.

A connection-level failure says nothing about the statement: the server went away (terminated
backend, restart, network error), refuses connections for now, or a lock was not granted in
time. The same call may succeed later, so the store raises
:class:`~tasker_host.errors.StoreUnavailableError` and its callers retry with backoff (the
runner) or answer 503 (the API). Anything else (a value the database rejects, a constraint) is
about what was sent: retrying the same call fails the same way.

Classification uses SQLSTATE codes (PostgreSQL) and result codes (SQLite), never message text.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import sqlalchemy as sa

from tasker_host.errors import StoreUnavailableError

#: PostgreSQL SQLSTATE classes / codes of failures that concern the connection or the server:
#: 08 connection exception, 53 insufficient resources, 57P01-57P05 operator intervention
#: (terminated backend, server shutting down or starting), 40001 / 40P01 serialization failure
#: and deadlock (the transaction did not happen), 55P03 lock not available.
_PG_CLASSES = ("08", "53")
_PG_CODES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "40001", "40P01", "55P03"})
#: SQLite primary result codes: BUSY, LOCKED, IOERR, CANTOPEN, PROTOCOL.
_SQLITE_CODES = frozenset({5, 6, 10, 14, 15})


def is_connection_failure(exc: BaseException) -> bool:
    """True when ``exc`` (a SQLAlchemy or driver error) concerns the connection, not the data."""
    if isinstance(exc, (sa.exc.DisconnectionError, sa.exc.TimeoutError)):
        return True  # pool: no connection could be had in time / it broke at checkout
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or (exc.statement is None and isinstance(exc, sa.exc.OperationalError)):
            return True  # (no statement: the connection could not even be made)
        return _driver_failure(exc.orig)
    return _driver_failure(exc)


def _driver_failure(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_CODES
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate in _PG_CODES or sqlstate[:2] in _PG_CLASSES
    return _psycopg_operational(exc) or isinstance(exc, (ConnectionError, TimeoutError))


def _psycopg_operational(exc: BaseException) -> bool:
    """psycopg raises ``OperationalError`` without a SQLSTATE when the connection itself failed
    (refused, closed by the server, lost mid-query)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


@contextlib.contextmanager
def unavailable_on_connection_failure() -> Iterator[None]:
    """Re-raise a connection-level failure as :class:`StoreUnavailableError` (cause kept)."""
    try:
        yield
    except StoreUnavailableError:
        raise
    except Exception as exc:
        if is_connection_failure(exc):
            raise StoreUnavailableError(describe(exc)) from exc
        raise


def describe(exc: BaseException) -> str:
    """One line naming the failure: the driver's class and first message line."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else 'no message'}"
