"""Units of outage handling: which failures are about the connection, the backoff, one log line
per outage, and the supervisor that restarts a crashed engine."""

from __future__ import annotations

import logging
import random
import sqlite3

import anyio
import psycopg
import pytest
import sqlalchemy as sa

from tasker_host.engine.outage import Backoff, Outage
from tasker_host.engine.supervise import run_supervised
from tasker_host.errors import StoreUnavailableError
from tasker_host.store.faults import is_connection_failure, unavailable_on_connection_failure


def sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    return error


def dbapi(orig: BaseException, *, statement: str | None = "SELECT 1", invalidated: bool = False) -> sa.exc.DBAPIError:
    base = sqlite3.Error if isinstance(orig, sqlite3.Error) else psycopg.Error  # the dialect's driver
    return sa.exc.DBAPIError.instance(statement, {}, orig, base, connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    psycopg.errors.AdminShutdown("terminating connection"),
    psycopg.errors.SerializationFailure("could not serialize"),
    psycopg.errors.ConnectionFailure("connection failure"),
    psycopg.OperationalError("server closed the connection unexpectedly"),
    sqlite_error(5),  # SQLITE_BUSY
    sqlite_error(5 | (1 << 8)),  # SQLITE_BUSY_RECOVERY (extended code)
    sa.exc.DisconnectionError("stale"),
    ConnectionResetError(),
], ids=lambda e: type(e).__name__)
def test_connection_failures(error):
    assert is_connection_failure(error)
    assert is_connection_failure(dbapi(error)) or not isinstance(error, (psycopg.Error, sqlite3.Error))


@pytest.mark.parametrize("error", [
    psycopg.errors.InvalidTextRepresentation("invalid input syntax for type json"),
    psycopg.errors.UniqueViolation("duplicate key"),
    psycopg.errors.UndefinedTable("no such table"),
    sqlite3.IntegrityError("UNIQUE constraint failed"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    TypeError("Object of type set is not JSON serializable"),
], ids=lambda e: type(e).__name__)
def test_failures_about_the_data(error):
    assert not is_connection_failure(error)
    assert not is_connection_failure(dbapi(error))


def test_a_dropped_connection_and_a_failed_connect_are_connection_failures():
    assert is_connection_failure(dbapi(psycopg.errors.UndefinedTable("x"), invalidated=True))
    connect = sa.exc.OperationalError(None, {}, psycopg.errors.ObjectNotInPrerequisiteState("not accepting"))
    assert is_connection_failure(connect)


def test_only_connection_failures_become_store_unavailable():
    with pytest.raises(StoreUnavailableError) as caught, unavailable_on_connection_failure():
        raise dbapi(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert "AdminShutdown: terminating connection" in str(caught.value)
    with pytest.raises(sa.exc.DBAPIError), unavailable_on_connection_failure():
        raise dbapi(psycopg.errors.UniqueViolation("duplicate key"))


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter():
    exact = Backoff(first=0.1, cap=2.0, jitter=0.0)
    assert [exact.delay(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    jittery = Backoff(first=1.0, cap=1.0, jitter=0.2, rng=random.Random(7))
    delays = [jittery.delay(3) for _ in range(200)]
    assert 0.8 <= min(delays) < 0.9 and 1.1 < max(delays) <= 1.2


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(caplog):
    outage = Outage()
    caplog.set_level(logging.WARNING, "tasker_host.engine")
    for t in range(5):
        outage.failed(StoreUnavailableError("AdminShutdown: terminating"), 100.0 + t)
    assert outage.active and outage.failures == 5
    outage.recovered(107.5)
    outage.recovered(108.0)
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable (StoreUnavailableError: AdminShutdown: terminating); retrying with backoff",
        "database available again after 7.5 s (5 failed calls)"]
    assert not outage.active and outage.incidents == 1 and outage.failed_calls == 5


class CrashingEngine:
    """Crashes ``crashes`` times, then runs until stopped."""

    def __init__(self, crashes: int):
        self.crashes, self.runs = crashes, 0

    async def run(self, *, until_idle: bool, stop: anyio.Event, grace_seconds: float) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise ExceptionGroup("engine", [KeyError("a bug")])
        await stop.wait()


@pytest.mark.anyio
async def test_a_crashed_engine_is_started_again_until_stopped():
    engine, stop, told = CrashingEngine(crashes=2), anyio.Event(), []

    def on_crash(error):
        told.append(None if error is None else type(error).__name__)
        if error is None and engine.runs == 2:
            stop.set()  # stopped while the second restart is about to run

    crashes = await run_supervised(engine, stop, grace_seconds=0, on_crash=on_crash,
                                   backoff=Backoff(first=0.0, cap=0.0, jitter=0.0))
    assert crashes == 2 and told == ["ExceptionGroup", None, "ExceptionGroup", None] and engine.runs == 3


@pytest.fixture
def anyio_backend():
    return "asyncio"
