"""The SQL :class:`~tasker_host.store.base.Store`: SQLite (embedded default) or PostgreSQL.

See :mod:`tasker_host.store.sql.engine` for connection settings and the schema life cycle,
:mod:`tasker_host.store.sql.schema` for the tables and :mod:`tasker_host.store.sql.work` for the
claim / record hot paths. Every method is one transaction. On SQLite this process serialises its
own writers with a lock (cheaper than SQLite's busy-wait); on PostgreSQL transactions that hit a
deadlock or serialization failure are retried.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from tasker_host.audit import AuditEntry, AuditFilter, AuditRecord
from tasker_host.errors import StoreUnavailableError
from tasker_host.store._common import check_outcomes, join_batches, split_waits
from tasker_host.store.base import (
    Claim,
    ClaimRequest,
    CreateResult,
    LostWorker,
    NewTask,
    NewWorker,
    StepOutcome,
    StepResultBatch,
    WorkerRecord,
)
from tasker_host.store.faults import unavailable_on_connection_failure
from tasker_host.store.sql import actions, reads, work, workers
from tasker_host.store.sql import audit as sql_audit
from tasker_host.store.sql import step_logs as sql_step_logs
from tasker_host.store.sql import waits as sql_waits
from tasker_host.store.sql.creation import create_rows
from tasker_host.store.sql.engine import READONLY, check_schema, make_engine, step_engine, upgrade_engine
from tasker_host.store.sql.notify import Notifier, WakeLimiter, WorkListener, listener_conninfo, notify
from tasker_host.store.sql.rows import keys_of
from tasker_host.store.sql.schema import tasks
from tasker_host.store.sql.store_reads import SqlReads
from tasker_host.store.urls import is_sqlite_memory, parse_url
from tasker_host.store.waits import EventRecord, NewEvent, SendResult, SendStatus, Wake

R = TypeVar("R")
W = TypeVar("W", bool, int, list[LostWorker])  # what a waking action returns: truthy when it changed something
log = logging.getLogger("tasker_host.store")
T = tasks.c
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_ATTEMPTS = 5


class SqlStore(SqlReads):
    """A :class:`Store` on SQLAlchemy 2 (Core statements on the hot paths).

    ``auto_upgrade``: bring the schema to the current revision on open (default: True for SQLite,
    False for PostgreSQL, where an outdated schema raises :class:`ConfigurationError`).
    ``engine_options``: extra keyword arguments for :func:`sqlalchemy.create_engine`.
    ``durable_steps``: PostgreSQL: step claims and outcomes wait for the WAL flush like every
    other write (default: they commit with ``synchronous_commit=off``, see
    :func:`~tasker_host.store.sql.engine.step_engine`).
    """

    def __init__(self, url: str, *, auto_upgrade: bool | None = None,
                 engine_options: Mapping[str, Any] | None = None, durable_steps: bool = False):
        parsed = parse_url(url)
        self.url = parsed.render_as_string(hide_password=False)
        self.dialect = parsed.get_backend_name()
        self._sqlite = self.dialect == "sqlite"
        # SQLite calls take well under a millisecond: the runner makes them on its event loop
        # (no thread hop); PostgreSQL calls go to worker threads, a few at a time.
        self.inline = self._sqlite
        self.parallel_calls = 1 if self._sqlite else 4
        self._engine = make_engine(parsed, **dict(engine_options or {}))
        self._steps = (self._engine if self._sqlite or durable_steps
                       else step_engine(parsed, **dict(engine_options or {})))
        # SQLite: one writer at a time anyway; in memory (one shared connection) readers too
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext())
        self._read_lock = self._write_lock if is_sqlite_memory(parsed) else contextlib.nullcontext()
        self._busy_wake = WakeLimiter()  # PostgreSQL: rate of wake-ups sent by full batches
        self._notifier = None if self._sqlite else Notifier(listener_conninfo(self._engine.url))
        self._count_lock, self._creations = threading.Lock(), 0  # creations under way
        try:
            with unavailable_on_connection_failure():
                if auto_upgrade if auto_upgrade is not None else self._sqlite:
                    self.upgrade()
                else:
                    check_schema(self._engine)
        except BaseException:
            self.close()
            raise

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @property
    def engines(self) -> tuple[sa.Engine, ...]:
        """Every engine: the main one, and (PostgreSQL) the step engine of the runner's hot paths."""
        return (self._engine,) if self._steps is self._engine else (self._engine, self._steps)

    def upgrade(self, revision: str = "head") -> str | None:
        """Run the Alembic migrations up to ``revision``; returns the database's revision."""
        with self._write_lock:
            return upgrade_engine(self._engine, revision)

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
        for engine in self.engines:
            engine.dispose()

    def listen(self, on_work: Callable[[], None]) -> WorkListener | None:
        """PostgreSQL: call ``on_work`` (from a thread) whenever another process leaves steps ready
        (LISTEN/NOTIFY); close the returned listener when done. SQLite: None (one process)."""
        if self._sqlite:
            return None
        return WorkListener(listener_conninfo(self._engine.url), on_work).start()

    def _wake_others(self, conn: sa.Connection, busy: bool = False) -> None:
        """Notify listening runners (PostgreSQL) at this transaction's commit; ``busy`` paths
        (a full batch) at most once per interval."""
        if not self._sqlite and (not busy or self._busy_wake.due()):
            notify(conn)

    # -- transactions ----------------------------------------------------------------------
    def _write(self, fn: Callable[..., R], *args: Any, one_statement: bool = False, step: bool = False) -> R:
        """``fn(conn, *args)`` in a write transaction. ``one_statement``: ``fn`` sends at most ONE
        statement, which is atomic by itself: it runs in autocommit mode (PostgreSQL), which saves
        the BEGIN and COMMIT round trips. ``step``: a claim / outcome of the runner's hot path
        (on the step engine). Serialization failures and deadlocks are retried here; other
        connection-level failures raise :class:`StoreUnavailableError` (whether the write was
        committed is then unknown: see :mod:`tasker_host.store.faults`)."""
        engine = self._steps if step else self._engine
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with unavailable_on_connection_failure():
                    if one_statement:
                        with self._write_lock, _autocommit(engine) as conn:
                            return fn(conn, *args)
                    with self._write_lock, engine.begin() as conn:
                        return fn(conn, *args)
            except StoreUnavailableError as exc:
                if attempt == _ATTEMPTS or not self._transient(exc.__cause__):
                    raise
                time.sleep(0.001 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[..., R], *args: Any, one_statement: bool = False) -> R:
        """``fn(conn, *args)`` in a read-only transaction; ``one_statement`` (PostgreSQL): in
        autocommit mode on the step engine (no BEGIN / COMMIT round trips: a runner's read). A
        read that meets a dropped connection is made once more (on a fresh one: the pool
        discards connections older than the failure) before :class:`StoreUnavailableError`."""
        for attempt in (1, 2):
            try:
                with unavailable_on_connection_failure():
                    return self._read_once(fn, *args, one_statement=one_statement)
            except StoreUnavailableError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _read_once(self, fn: Callable[..., R], *args: Any, one_statement: bool = False) -> R:
        if one_statement and not self._sqlite:
            with _autocommit(self._steps) as conn:
                return fn(conn, *args)
        with self._read_lock, self._engine.connect() as conn:
            conn.execution_options(**{READONLY: True})
            with conn.begin():
                return fn(conn, *args)

    def _transient(self, exc: BaseException | None) -> bool:
        """A serialization failure or deadlock: the transaction did not happen; retry at once.
        (SQLite writers already queue for busy_timeout with BEGIN IMMEDIATE.)"""
        return (not self._sqlite and isinstance(exc, DBAPIError)
                and getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES)

    # -- creation --------------------------------------------------------------------------
    def create_task(self, task: NewTask, now: float, claim: ClaimRequest | None = None) -> CreateResult:
        try:
            results = self._creating([task], now, claim)
        except IntegrityError:
            # a concurrent create with the same idempotency / invocation key won the race
            existing = self._read(reads.existing, task)
            if existing is None:
                raise
            return CreateResult(existing, created=False)
        return results[0]

    def create_tasks(self, tasks: Sequence[NewTask], now: float,
                     claim: ClaimRequest | None = None) -> list[CreateResult]:
        if len(tasks) == 1:
            return [self.create_task(tasks[0], now, claim)]
        try:
            return self._creating(tasks, now, claim)
        except IntegrityError:  # a key raced with another process: settle the tasks one by one
            return [self.create_task(task, now, claim) for task in tasks]

    def _creating(self, tasks: Sequence[NewTask], now: float, claim: ClaimRequest | None) -> list[CreateResult]:
        """Write the tasks, then wake the runners if none here claimed them (PostgreSQL): with the
        insert itself when no other creation of this store is under way, else through the
        notifier (after the commit, one NOTIFY per burst), so concurrent creations never queue on
        PostgreSQL's notification lock through each other's WAL flush."""
        wake = not self._sqlite and (claim is None or claim.limit <= 0)
        with self._count_lock:
            alone, self._creations = self._creations == 0, self._creations + 1
        try:
            results = self._write(self._create_many, tasks, now, claim, wake and alone,
                                  one_statement=self._insert_only(tasks, claim))
        finally:
            with self._count_lock:
                self._creations -= 1
        if wake and not alone and self._notifier is not None and any(r.created for r in results):
            self._notifier.request()
        return results

    def _insert_only(self, tasks: Sequence[NewTask], claim: ClaimRequest | None) -> bool:
        """PostgreSQL with no key to look up and nothing to claim: the creation is ONE statement,
        atomic alone (autocommit: no BEGIN / COMMIT round trips)."""
        return not self._sqlite and claim is None and not any(keys_of(t) for t in tasks)

    def _create_many(self, conn: sa.Connection, tasks: Sequence[NewTask], now: float,
                     claim: ClaimRequest | None, wake: bool = False) -> list[CreateResult]:
        results = create_rows(conn, tasks, now, wake=wake)
        if claim is None or claim.limit <= 0 or not any(r.created for r in results):
            return results
        claims = tuple(work.claim(conn, claim.owner, claim.limit, now, claim.lease_seconds, None))
        first = next(i for i, r in enumerate(results) if r.created)
        results[first] = CreateResult(results[first].task, True, claims)
        if len(claims) >= claim.limit:  # steps may be left for others
            self._wake_others(conn)
        return results

    # -- claiming and outcomes -------------------------------------------------------------
    def claim(self, owner: str, limit: int, now: float, lease_seconds: float,
              namespace_limits: Mapping[str, int] | None = None) -> list[Claim]:
        return self._write(self._claim, owner, limit, now, lease_seconds, namespace_limits, step=True,
                           one_statement=work.single_statement(self.dialect, namespace_limits))

    def _claim(self, conn: sa.Connection, owner: str, limit: int, now: float, lease_seconds: float,
               namespace_limits: Mapping[str, int] | None) -> list[Claim]:
        claims = work.claim(conn, owner, limit, now, lease_seconds, namespace_limits)
        if claims and len(claims) >= limit:  # a full batch: more may wait for idle runners
            self._wake_others(conn, busy=True)
        return claims

    def record_and_claim(self, outcomes: Sequence[StepOutcome], owner: str, limit: int, now: float,
                         lease_seconds: float, namespace_limits: Mapping[str, int] | None = None,
                         ) -> tuple[StepResultBatch, list[Claim]]:
        check_outcomes(outcomes)
        outcomes, waits = split_waits(outcomes)
        waited = self._record_waits(waits)
        logs = sql_step_logs.has_logs(outcomes)  # lines: one more INSERT in the same transaction
        recording = sql_step_logs.keeping_logs(work.record_and_claim) if logs else work.record_and_claim
        batch, claims = self._write(recording, outcomes, owner, limit, now, lease_seconds, namespace_limits, step=True,
                                    one_statement=not logs and work.single_statement(self.dialect, namespace_limits))
        if not self._sqlite and (len(claims) >= limit if limit else len(batch.rejected) < len(outcomes)):
            self._write_busy_wake()  # a full batch, or outcomes recorded with no room to claim
        return join_batches(waited, batch), claims

    def _write_busy_wake(self) -> None:
        """A wake-up after the call's own commit: if it cannot be sent, runners poll instead, and
        the call (committed) must not look failed — its caller would repeat it."""
        if self._busy_wake.due():
            try:
                self._write(notify, one_statement=True)
            except StoreUnavailableError as exc:
                log.info("wake-up not sent (%s); runners poll instead", exc)

    def renew_leases(self, owner: str, now: float, lease_seconds: float) -> int:
        return self._write(work.renew_leases, owner, now, lease_seconds, step=True)

    def record(self, outcomes: Sequence[StepOutcome]) -> StepResultBatch:
        check_outcomes(outcomes)
        outcomes, waits = split_waits(outcomes)
        waited = self._record_waits(waits)
        if not outcomes:
            return waited
        batch = self._write(sql_step_logs.keeping_logs(work.record), outcomes, step=True)
        if not self._sqlite and len(batch.rejected) < len(outcomes):
            self._write_busy_wake()  # recorded outcomes may have made steps ready
        return join_batches(waited, batch)

    # -- waits and events (sql_waits) ---------------------------------------------------------
    def _record_waits(self, waits: Sequence[StepOutcome]) -> StepResultBatch:
        """Waiting outcomes, in a transaction of their own before the batch's others (they lock
        their tasks, which the one-statement hot path does not); a wait delivered an event
        already sent wakes the runners."""
        if not waits:
            return StepResultBatch()
        return self._write(sql_step_logs.keeping_logs(self._waking_waits), waits, step=True)

    def _waking_waits(self, conn: sa.Connection, waits: Sequence[StepOutcome]) -> StepResultBatch:
        batch, delivered = sql_waits.record_waits(conn, waits)
        if delivered:
            self._wake_others(conn)  # events sent earlier made those steps ready now
        return batch

    def send_event(self, event: NewEvent, now: float) -> SendResult:
        try:
            result = self._write(self._sending, event, now)
        except IntegrityError:  # the same idempotency key raced with another sender
            original = self._read(sql_waits.existing_event, event)
            if original is None:
                raise
            return SendResult(SendStatus.DUPLICATE, original)
        return result

    def _sending(self, conn: sa.Connection, event: NewEvent, now: float) -> SendResult:
        result = sql_waits.send_event(conn, event, now)
        if result.woke is not None:
            self._wake_others(conn)
        return result

    def wakes(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Wake]:
        return self._read(sql_waits.wakes, keys) if keys else {}

    def task_events(self, task_id: str) -> list[EventRecord]:
        return self._read(sql_waits.task_events_of, task_id)

    # -- operator actions (sql_actions) ------------------------------------------------------
    def cancel_task(self, task_id: str, now: float, reason: str = "", *, audit: AuditEntry | None = None) -> bool:
        return self._write(sql_audit.audited(actions.cancel, audit), task_id, now, reason)

    def retry_task(self, task_id: str, now: float, reason: str = "", *, audit: AuditEntry | None = None) -> bool:
        return self._write(self._waking(sql_audit.audited(actions.retry, audit)), task_id, now, reason)

    def resolve_step(self, task_id: str, step: str, now: float, results: Any = None, reason: str = "", *,
                     audit: AuditEntry | None = None) -> bool:
        return self._write(self._waking(sql_audit.audited(actions.resolve, audit)), task_id, step, now, results,
                           reason)

    # -- the audit trail (sql_audit) ---------------------------------------------------------
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            self._write(sql_audit.append, entries)

    def list_audit(self, query: AuditFilter) -> list[AuditRecord]:
        return self._read(sql_audit.read, query)

    def _waking(self, action: Callable[..., W]) -> Callable[..., W]:
        """``action``, then (when it changed something) a wake-up for runners: its steps are ready."""
        def run(conn: sa.Connection, *args: Any) -> W:
            changed = action(conn, *args)
            if changed:
                self._wake_others(conn)
            return changed
        return run

    # -- workers (sql_workers) ----------------------------------------------------------------
    def register(self, worker: NewWorker, now: float) -> None:
        self._write(workers.register, worker, now, step=True)

    def heartbeat(self, worker_id: str, now: float, lease_seconds: float | None = None) -> bool:
        return self._write(workers.heartbeat, worker_id, now, lease_seconds, step=True,
                           one_statement=not self._sqlite and lease_seconds is None)

    def deregister(self, worker_id: str, now: float) -> int:
        return self._write(self._waking(workers.deregister), worker_id, now, step=True)

    def release(self, owner: str, now: float, keep: Collection[tuple[str, str]] = ()) -> int:
        return self._write(self._waking(workers.release), owner, now, keep, step=True)

    def reap_workers(self, keep: str, now: float, gone: Callable[[WorkerRecord], bool] | None = None,
                     watching_since: float | None = None) -> list[LostWorker]:
        return self._write(self._waking(workers.reap), keep, now, gone, watching_since, step=True)

    def workers(self) -> list[WorkerRecord]:
        return self._read(workers.list_workers)


@contextlib.contextmanager
def _autocommit(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection on which each statement commits by itself (for ONE-statement calls)."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn
