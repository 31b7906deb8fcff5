"""The SQL :class:`~tasker_host.store.base.Store`: SQLite (embedded default) or PostgreSQL.

See :mod:`tasker_host.store.sql_engine` for connection settings and the schema life cycle,
:mod:`tasker_host.store.sql_schema` for the tables and :mod:`tasker_host.store.sql_work` for the
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

from tasker_host.errors import StoreUnavailableError
from tasker_host.models import TaskState
from tasker_host.store import sql_actions as actions
from tasker_host.store import sql_runs, sql_step_logs, sql_version_stats
from tasker_host.store import sql_work as work
from tasker_host.store import sql_workers as workers
from tasker_host.store._common import check_outcomes
from tasker_host.store.faults import unavailable_on_connection_failure
from tasker_host.store.base import (
    UNFINISHED,
    LostWorker,
    NewWorker,
    WorkerRecord,
    StateCounts,
    ClaimRequest,
    Claim,
    CreateResult,
    NewTask,
    RunInputs,
    StepOutcome,
    StepResultBatch,
    TaskFilter,
    TaskRecord,
    Transition,
)
from tasker_host.store.sql_batch import InsertAll, ManyInsert
from tasker_host.store.sql_engine import READONLY, check_schema, make_engine, step_engine, upgrade_engine
from tasker_host.store.sql_notify import NOTIFY_SELECT, Notifier, WakeLimiter, WorkListener, listener_conninfo, notify
from tasker_host.store.sql_rows import keys_of, new_rows, step_record, task_record
from tasker_host.store.sql_schema import steps, tasks, transitions
from tasker_host.store.step_logs import StepLogEntry
from tasker_host.store.urls import is_sqlite_memory, parse_url
from tasker_host.store.version_stats import VersionStats

R = TypeVar("R")
log = logging.getLogger("tasker_host.store")
S, T, X = steps.c, tasks.c, transitions.c
_TASK_COLUMNS = [c for c in tasks.c if c.key != "steps_remaining"]
_STEP_COLUMNS = [c for c in steps.c if c.key not in ("position", "namespace")]
_INSERT_TASK = InsertAll(ManyInsert(tasks, [c.key for c in tasks.c]), ManyInsert(steps, [c.key for c in steps.c]),
                         work.INSERT_TRANSITIONS)
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_ATTEMPTS = 5


class SqlStore:
    """A :class:`Store` on SQLAlchemy 2 (Core statements on the hot paths).

    ``auto_upgrade``: bring the schema to the current revision on open (default: True for SQLite,
    False for PostgreSQL, where an outdated schema raises :class:`ConfigurationError`).
    ``engine_options``: extra keyword arguments for :func:`sqlalchemy.create_engine`.
    ``durable_steps``: PostgreSQL: step claims and outcomes wait for the WAL flush like every
    other write (default: they commit with ``synchronous_commit=off``, see
    :func:`~tasker_host.store.sql_engine.step_engine`).
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
            existing = self._read(self._existing, task)
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
        results = self._create_rows(conn, tasks, now, wake=wake)
        if claim is None or claim.limit <= 0 or not any(r.created for r in results):
            return results
        claims = tuple(work.claim(conn, claim.owner, claim.limit, now, claim.lease_seconds, None))
        first = next(i for i, r in enumerate(results) if r.created)
        results[first] = CreateResult(results[first].task, True, claims)
        if len(claims) >= claim.limit:  # steps may be left for others
            self._wake_others(conn)
        return results

    def _existing(self, conn: sa.Connection, task: NewTask) -> TaskRecord | None:
        conditions = []
        if task.idempotency_key is not None:
            conditions.append(sa.and_(T.namespace == task.namespace, T.idempotency_key == task.idempotency_key))
        if task.parent_task_id is not None and task.invocation_key is not None:
            conditions.append(sa.and_(T.parent_task_id == task.parent_task_id,
                                      T.invocation_key == task.invocation_key))
        for condition in conditions:
            found = self._load(conn, condition, with_steps=True)
            if found:
                return found[0]
        return None

    def _create_rows(self, conn: sa.Connection, tasks: Sequence[NewTask], now: float, *,
                     wake: bool = False) -> list[CreateResult]:
        """Create tasks with ONE insert for all their rows (PostgreSQL: one statement, notifying
        the runners when ``wake``); a task whose idempotency / invocation key exists already, or
        repeats an earlier one of the batch, is answered with that task and writes nothing."""
        results: list[CreateResult] = []
        fresh: dict[tuple[Any, ...], TaskRecord] = {}
        rows: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        for task in tasks:
            keys = keys_of(task)
            earlier = next((fresh[k] for k in keys if k in fresh), None)
            existing = earlier or (self._existing(conn, task) if keys else None)
            if existing is not None:
                results.append(CreateResult(existing, created=False))
                continue
            record, task_row, step_rows, log = new_rows(task, now)
            rows[0].append(task_row)
            rows[1].extend(step_rows)
            rows[2].extend(log)
            fresh.update(dict.fromkeys(keys, record))
            results.append(CreateResult(record, created=True))
        if rows[0]:
            _INSERT_TASK(conn, *rows, then=NOTIFY_SELECT if wake else None)  # PostgreSQL: one statement
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
        logs = sql_step_logs.has_logs(outcomes)  # lines: one more INSERT in the same transaction
        recording = sql_step_logs.keeping_logs(work.record_and_claim) if logs else work.record_and_claim
        batch, claims = self._write(recording, outcomes, owner, limit, now, lease_seconds, namespace_limits, step=True,
                                    one_statement=not logs and work.single_statement(self.dialect, namespace_limits))
        if not self._sqlite and (len(claims) >= limit if limit else len(batch.rejected) < len(outcomes)):
            self._write_busy_wake()  # a full batch, or outcomes recorded with no room to claim
        return batch, claims

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
        batch = self._write(sql_step_logs.keeping_logs(work.record), outcomes, step=True)
        if not self._sqlite and len(batch.rejected) < len(outcomes):
            self._write_busy_wake()  # recorded outcomes may have made steps ready
        return batch

    # -- operator actions (sql_actions) ------------------------------------------------------
    def cancel_task(self, task_id: str, now: float, reason: str = "") -> bool:
        return self._write(actions.cancel, task_id, now, reason)

    def retry_task(self, task_id: str, now: float, reason: str = "") -> bool:
        return self._write(self._waking(actions.retry), task_id, now, reason)

    def resolve_step(self, task_id: str, step: str, now: float, results: Any = None, reason: str = "") -> bool:
        return self._write(self._waking(actions.resolve), task_id, step, now, results, reason)

    def _waking(self, action: Callable[..., bool]) -> Callable[..., bool]:
        """``action``, then (when it changed something) a wake-up for runners: its steps are ready."""
        def run(conn: sa.Connection, *args: Any) -> bool:
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

    # -- reading ---------------------------------------------------------------------------
    def get_task(self, task_id: str, *, with_steps: bool = True) -> TaskRecord | None:
        found = self._read(self._load, T.id == task_id, with_steps)
        return found[0] if found else None

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, TaskRecord]:
        if not task_ids:
            return {}
        found = self._read(self._load, T.id.in_(sorted(set(task_ids))), True)
        return {t.id: t for t in found}

    def run_inputs(self, task_ids: Sequence[str]) -> dict[str, RunInputs]:
        """One statement (autocommitted on PostgreSQL, on the runner's step engine)."""
        return self._read(sql_runs.run_inputs, task_ids, one_statement=True)

    def find_child(self, parent_task_id: str, invocation_key: str) -> TaskRecord | None:
        found = self._read(self._load, sa.and_(T.parent_task_id == parent_task_id,
                                               T.invocation_key == invocation_key), True)
        return found[0] if found else None

    def _load(self, conn: sa.Connection, where: sa.ColumnElement[bool], with_steps: bool,
              order: Sequence[Any] = (), limit: int | None = None) -> list[TaskRecord]:
        query = sa.select(*_TASK_COLUMNS).where(where).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        found = [task_record(r) for r in conn.execute(query)]
        if with_steps and found:
            by_id = {t.id: t for t in found}
            query = (sa.select(*_STEP_COLUMNS).where(S.task_id.in_(list(by_id)))
                     .order_by(S.task_id, S.position))
            for r in conn.execute(query):
                by_id[r.task_id].steps.append(step_record(r))
        return found

    def step_results(self, task_id: str) -> dict[str, Any]:
        query = sa.select(S.name, S.results).where(S.task_id == task_id, S.state.in_(work.DONE)).order_by(S.position)
        return self._read(lambda conn: dict(conn.execute(query).all()))

    def list_tasks(self, query: TaskFilter) -> list[TaskRecord]:
        return self._read(self._list, query)

    def _list(self, conn: sa.Connection, q: TaskFilter) -> list[TaskRecord]:
        where: list[sa.ColumnElement[bool]] = []
        if q.after_id is not None:
            created = conn.execute(sa.select(T.created_at).where(T.id == q.after_id)).scalar()
            if created is None:
                return []
            where += _after(created, q.after_id, q.newest_first)
        if q.namespaces is not None:
            where.append(T.namespace.in_(list(q.namespaces)))
        for column, value in ((T.name, q.name), (T.version, q.version), (T.parent_task_id, q.parent_task_id),
                              (T.correlation_id, q.correlation_id),
                              (T.status, TaskState(q.status).value if q.status is not None else None)):
            if value is not None:
                where.append(column == value)
        if q.created_after is not None:
            where.append(T.created_at >= q.created_after)
        if q.created_before is not None:
            where.append(T.created_at < q.created_before)
        if q.context_text:
            where.append(sa.cast(T.context, sa.Text).contains(q.context_text, autoescape=True))
        order = (T.created_at.desc(), T.id.desc()) if q.newest_first else (T.created_at, T.id)
        return self._load(conn, sa.and_(sa.true(), *where), False, order, max(q.limit, 0))

    def transitions(self, task_id: str) -> list[Transition]:
        query = (sa.select(X.task_id, X.step, X.from_state, X.to_state, X.at, X.reason)
                 .where(X.task_id == task_id).order_by(X.id))
        return self._read(lambda conn: [Transition(*r) for r in conn.execute(query)])

    def step_logs(self, task_id: str, step: str | None = None) -> list[StepLogEntry]:
        return self._read(sql_step_logs.read, task_id, step)

    def count_by_state(self) -> StateCounts:
        return self._read(_count_by_state)

    def version_stats(self, namespaces: Sequence[str] | None = None) -> VersionStats:
        return self._read(sql_version_stats.version_stats, namespaces)

    def next_ready_at(self) -> float | None:
        query = (sa.select(S.ready_at).join_from(steps, tasks, S.task_id == T.id)
                 .where(work.RUNNABLE, work.LIVE).order_by(S.ready_at).limit(1))
        return self._read(lambda conn: conn.execute(query).scalar())


def _after(created: float, task_id: str, newest_first: bool) -> list[sa.ColumnElement[bool]]:
    """Keyset condition: the rows after (created, task_id) in the listing's order (the first
    term lets both planners use the (created_at, id) indexes as a range)."""
    if newest_first:
        return [T.created_at <= created,
                sa.or_(T.created_at < created, sa.and_(T.created_at == created, T.id < task_id))]
    return [T.created_at >= created, sa.or_(T.created_at > created, sa.and_(T.created_at == created, T.id > task_id))]


@contextlib.contextmanager
def _autocommit(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection on which each statement commits by itself (for ONE-statement calls)."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def _count_by_state(conn: sa.Connection) -> StateCounts:
    unfinished = [state.value for state in UNFINISHED]
    by_task = sa.select(T.namespace, T.status, sa.func.count()).group_by(T.namespace, T.status)
    by_step = (sa.select(T.namespace, S.state, sa.func.count()).select_from(tasks.join(steps, S.task_id == T.id))
               .where(T.status.in_(unfinished)).group_by(T.namespace, S.state))
    counts = StateCounts()
    counts.tasks.update({(ns, st): n for ns, st, n in conn.execute(by_task)})
    counts.steps.update({(ns, st): n for ns, st, n in conn.execute(by_step)})
    return counts
