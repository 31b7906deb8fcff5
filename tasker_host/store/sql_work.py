"""The SQL store's hot paths — claiming steps and recording their outcomes — as Core statements.

Each function runs inside the caller's write transaction (``BEGIN IMMEDIATE`` on SQLite; on
PostgreSQL rows are locked with ``FOR UPDATE [SKIP LOCKED]``, steps before tasks). Per-row work is
batched: one SELECT with ``IN (...)`` per table, one executemany per kind of UPDATE, one
executemany INSERT of transitions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from tasker_host.models import StepState, TaskState
from tasker_host.store._common import (
    CLAIM_REASON,
    LIVE_TASK,
    RECLAIM_REASON,
    error_reason,
    merge_changes,
    task_error,
)
from tasker_host.store.base import Claim, StepOutcome, StepResultBatch, TaskChange
from tasker_host.store.sql_schema import Json, steps, tasks, transitions

S, T = steps.c, tasks.c
_B = sa.bindparam


def _lit(value: str | int) -> sa.ColumnElement[Any]:
    """A literal in the SQL text (lets the planners match the partial indexes' predicates)."""
    return sa.literal_column(repr(value) if isinstance(value, str) else str(value))


class Many:
    """An executemany of a Core DML statement: compiled once per dialect, parameters bound here.

    ``Connection.execute(stmt, rows)`` builds and type-processes a parameter dict per row in Python
    (several microseconds each); a claim or record of 200 steps writes ~800 rows, which made that
    the largest cost on SQLite. Rows are dicts keyed by bind name; bind names a row lacks take the
    statement's constant (e.g. ``state='complete'`` in ``values()``). Values still go through each
    type's own bind processor (JSON serialisation), and the driver call still goes through the
    connection (events, transaction, error wrapping).
    """

    def __init__(self, statement: sa.Executable):
        self.statement = statement
        self._plans: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

    def _plan(self, dialect: sa.Dialect) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            positional = bool(compiled.positional)
            names = list(compiled.positiontup or ()) if positional else list(compiled.binds)
            env: dict[str, Any] = {}
            parts = []
            for i, name in enumerate(names):
                bind = compiled.binds[name]
                if bind.required:
                    expr = f"r[{name!r}]"
                else:
                    env[f"d{i}"] = bind.value
                    expr = f"r.get({name!r}, d{i})"
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    env[f"p{i}"] = processor
                    expr = f"p{i}({expr})"
                parts.append(expr if positional else f"{name!r}: {expr}")
            body = f"({', '.join(parts)},)" if positional else f"{{{', '.join(parts)}}}"
            # one row -> driver parameters, as a compiled expression (no per-value Python loop)
            binder = eval(f"lambda r: {body}", env)  # noqa: S307 - built from bind names only
            plan = self._plans[dialect.name] = (compiled.string, binder)
        return plan

    def __call__(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            sql, binder = self._plan(conn.dialect)
            conn.exec_driver_sql(sql, list(map(binder, rows)))


class _Unindexed(ColumnElement[Any]):
    """``column`` that SQLite must not look up through an index (rendered ``+column`` there).

    Without statistics SQLite would otherwise drive the claim query from ``tasks`` by status and
    sort every live task's steps, instead of walking ``ix_steps_runnable`` in ``ready_at`` order.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement[Any]):
        self.column = column
        self.type = column.type


@compiles(_Unindexed)
def _unindexed(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_Unindexed, "sqlite")
def _unindexed_sqlite(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


#: same predicates as the partial indexes ix_steps_runnable / ix_steps_running
RUNNABLE = sa.and_(S.state.in_([_lit("pending"), _lit("waiting_retry")]), S.pending_deps == _lit(0))
RUNNING = S.state == _lit("in_progress")
LIVE = _Unindexed(T.status).in_([s.value for s in LIVE_TASK])
DONE = [StepState.COMPLETE.value, StepState.RESOLVED_MANUALLY.value]

_CLAIMABLE = (sa.select(S.task_id, S.name, S.state, S.attempts, S.lease_owner, S.ready_at,
                        T.namespace, T.name.label("task_name"), T.version, T.status)
              .join_from(steps, tasks, S.task_id == T.id).where(LIVE))
#: steps whose lease expired (their worker died), most overdue first
EXPIRED = _CLAIMABLE.where(RUNNING, S.lease_expires_at < _B("now")).order_by(S.lease_expires_at)
#: waiting steps whose dependencies are done and whose backoff is over, oldest first
READY = _CLAIMABLE.where(RUNNABLE, S.ready_at <= _B("now")).order_by(S.ready_at)


class ManyInsert(Many):
    """Rows into ``table``: executemany, or on PostgreSQL one ``INSERT ... SELECT FROM unnest(arrays)``
    (one array parameter per column; about twice as fast as a pipelined executemany)."""

    _COERCE: dict[type, Callable[[Any], Any]] = {sa.Float: float, sa.Integer: int, sa.String: str,
                                                 sa.Boolean: bool}

    def __init__(self, table: sa.Table, columns: Sequence[str]):
        super().__init__(sa.insert(table).values({c: _B(c) for c in columns}))
        self.table, self.columns = table, list(columns)
        self._pg: tuple[str, list[tuple[str, Callable[[Any], Any]]]] | None = None

    def _pg_plan(self, dialect: sa.Dialect) -> tuple[str, list[tuple[str, Callable[[Any], Any]]]]:
        if self._pg is None:
            quote = dialect.identifier_preparer.quote
            arrays, selected, coercions = [], [], []
            for name in self.columns:
                column_type = self.table.c[name].type
                if isinstance(column_type, sa.JSON):
                    arrays.append(f"CAST(%({name})s AS TEXT[])")
                    selected.append(f"CAST(v.{quote(name)} AS JSONB)")
                    coercions.append((name, lambda v: None if v is None else json.dumps(v)))
                    continue
                coerce = next(f for t, f in self._COERCE.items() if isinstance(column_type, t))
                array = ARRAY(column_type).compile(dialect=dialect)
                arrays.append(f"CAST(%({name})s AS {array})")
                selected.append(f"v.{quote(name)}")
                coercions.append((name, coerce))
            sql = (f"INSERT INTO {dialect.identifier_preparer.format_table(self.table)} "
                   f"({', '.join(quote(c) for c in self.columns)}) SELECT {', '.join(selected)} "
                   f"FROM unnest({', '.join(arrays)}) AS v({', '.join(quote(c) for c in self.columns)})")
            self._pg = (sql, coercions)
        return self._pg

    def __call__(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows or conn.dialect.name != "postgresql":
            return super().__call__(conn, rows)
        sql, coercions = self._pg_plan(conn.dialect)
        conn.exec_driver_sql(sql, {name: [None if (v := row[name]) is None else coerce(v) for row in rows]
                                   for name, coerce in coercions})


def _locking(query: sa.Select[Any], **options: Any) -> dict[bool, sa.Select[Any]]:
    """``query`` without / with ``FOR UPDATE`` (PostgreSQL), built once."""
    return {False: query, True: query.with_for_update(**options)}


_SKIP = {"skip_locked": True, "of": steps}
EXPIRED_Q = _locking(EXPIRED.limit(_B("limit")), **_SKIP)
READY_Q = _locking(READY.limit(_B("limit")), **_SKIP)
READY_IN_Q = _locking(READY.where(T.namespace == _B("namespace")).limit(_B("limit")), **_SKIP)
READY_NOT_IN_Q = _locking(READY.where(T.namespace.not_in(_B("namespaces", expanding=True))).limit(_B("limit")),
                          **_SKIP)
# task_id IN (...) lets SQLite use the primary key (it scans the table for a row-value IN alone)
_KEYS = (sa.func.unnest(sa.cast(_B("task_ids", type_=ARRAY(sa.String)), ARRAY(sa.String)),
                        sa.cast(_B("names", type_=ARRAY(sa.String)), ARRAY(sa.String)))
         .table_valued("task_id", "name").render_derived(name="k"))
_CURRENT_COLUMNS = (S.task_id, S.name, S.state, S.lease_owner, S.attempts, S.dependents)
#: the steps named by (task_id, name) pairs. SQLite: ``task_id IN (...)`` lets it use the primary
#: key (it scans the table for a row-value IN alone); PostgreSQL: a join with ``unnest`` of two
#: arrays plans far faster than a 200-element row-value IN list.
CURRENT_STEPS = {
    False: sa.select(*_CURRENT_COLUMNS).where(S.task_id.in_(_B("ids", expanding=True)),
                                              sa.tuple_(S.task_id, S.name).in_(_B("keys", expanding=True)))
    .order_by(S.task_id, S.name),
    True: sa.select(*_CURRENT_COLUMNS).join_from(steps, _KEYS, sa.and_(S.task_id == _KEYS.c.task_id,
                                                                       S.name == _KEYS.c.name))
    .order_by(S.task_id, S.name).with_for_update(of=steps),
}
TASK_COUNTS = _locking(sa.select(T.id, T.status, T.steps_remaining).where(T.id.in_(_B("ids", expanding=True)))
                       .order_by(T.id))
RUNNING_BY_NAMESPACE = (sa.select(T.namespace, sa.func.count()).join_from(steps, tasks, S.task_id == T.id)
                        .where(RUNNING, T.namespace.in_(_B("namespaces", expanding=True)))
                        .group_by(T.namespace))

_STEP_KEY = sa.and_(S.task_id == _B("k_task"), S.name == _B("k_name"))
_GUARD = sa.and_(_STEP_KEY, RUNNING, S.lease_owner == _B("k_owner"), S.attempts == _B("k_attempt"))
_NO_LEASE = {"lease_owner": None, "lease_expires_at": None}

TAKE = Many(sa.update(steps).where(_STEP_KEY).values(
    state=StepState.IN_PROGRESS.value, attempts=_B("attempts"), lease_owner=_B("owner"),
    lease_expires_at=_B("expires"), started_at=_B("now")))
START_TASKS = (sa.update(tasks).where(T.id.in_(_B("ids", expanding=True)), T.status == TaskState.PENDING.value)
               .values(status=TaskState.IN_PROGRESS.value, updated_at=_B("now")).returning(T.id))
INSERT_TRANSITIONS = ManyInsert(transitions, ["task_id", "step", "from_state", "to_state", "at", "reason"])

OUTCOME_UPDATES = {
    StepState.COMPLETE: Many(sa.update(steps).where(_GUARD).values(
        state=StepState.COMPLETE.value, results=_B("results", type_=Json), completed_at=_B("at"), **_NO_LEASE)),
    StepState.WAITING_RETRY: Many(sa.update(steps).where(_GUARD).values(
        state=StepState.WAITING_RETRY.value, last_error=_B("error", type_=Json), ready_at=_B("ready_at"),
        **_NO_LEASE)),
    StepState.ERROR: Many(sa.update(steps).where(_GUARD).values(
        state=StepState.ERROR.value, last_error=_B("error", type_=Json), **_NO_LEASE)),
    StepState.CANCELLED: Many(sa.update(steps).where(_GUARD).values(state=StepState.CANCELLED.value, **_NO_LEASE)),
}
UNBLOCK = Many(sa.update(steps).where(_STEP_KEY).values(pending_deps=S.pending_deps - _B("n")))
TASK_COUNT = Many(sa.update(tasks).where(T.id == _B("k_id")).values(
    steps_remaining=_B("remaining"), updated_at=_B("at")))
TASK_STATUS = Many(sa.update(tasks).where(T.id == _B("k_id")).values(
    steps_remaining=_B("remaining"), status=_B("status"), error=_B("error", type_=Json),
    completed_at=_B("completed_at"), updated_at=_B("at")))


def transition(task_id: str, step: str | None, before: str | None, after: str, at: float,
               reason: str = "") -> dict[str, Any]:
    return {"task_id": task_id, "step": step, "from_state": before, "to_state": after, "at": at,
            "reason": reason}


# -- claim ---------------------------------------------------------------------------------------
def claim(conn: sa.Connection, owner: str, limit: int, now: float, lease_seconds: float,
          namespace_limits: Mapping[str, int] | None) -> list[Claim]:
    if limit <= 0:
        return []
    pg = conn.dialect.name == "postgresql"

    def run(query: dict[bool, sa.Select[Any]], n: int, **params: Any) -> list[sa.Row[Any]]:
        return list(conn.execute(query[pg], {"now": now, "limit": n, **params}))

    expired = run(EXPIRED_Q, limit)
    need = limit - len(expired)
    ready: list[sa.Row[Any]] = []
    if need > 0 and namespace_limits:
        limited = sorted(namespace_limits)
        if pg:  # serialise claimers of a capped namespace, so the cap holds across processes
            for namespace in limited:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x7A5D, sa.func.hashtext(namespace))))
        running = dict(conn.execute(RUNNING_BY_NAMESPACE, {"namespaces": limited}).all())
        for namespace in limited:
            allowance = min(namespace_limits[namespace] - running.get(namespace, 0), need)
            if allowance > 0:
                ready += run(READY_IN_Q, allowance, namespace=namespace)
        ready += run(READY_NOT_IN_Q, need, namespaces=limited)
        ready = sorted(ready, key=lambda r: r.ready_at)[:need]
    elif need > 0:
        ready = run(READY_Q, need)
    if not expired and not ready:
        return []

    expires = now + lease_seconds
    updates, log, claims = [], [], []
    reason = CLAIM_REASON.format(owner=owner)
    for row in (*expired, *ready):
        attempt = row.attempts + 1
        updates.append({"k_task": row.task_id, "k_name": row.name, "attempts": attempt, "owner": owner,
                        "expires": expires, "now": now})
        why = RECLAIM_REASON.format(previous=row.lease_owner, owner=owner) if row.state == "in_progress" else reason
        log.append(transition(row.task_id, row.name, row.state, StepState.IN_PROGRESS.value, now, why))
        claims.append(Claim(row.task_id, row.name, attempt, row.namespace, row.task_name, row.version))
    TAKE(conn, updates)
    pending = sorted({row.task_id for row in (*expired, *ready) if row.status == TaskState.PENDING.value})
    if pending:
        first = {}
        for c in claims:
            first.setdefault(c.task_id, c.step)
        for task_id in conn.execute(START_TASKS, {"ids": pending, "now": now}).scalars():
            log.append(transition(task_id, None, TaskState.PENDING.value, TaskState.IN_PROGRESS.value, now,
                                  f"step {first[task_id]} claimed"))
    INSERT_TRANSITIONS(conn, log)
    return claims


def renew_leases(conn: sa.Connection, owner: str, now: float, lease_seconds: float) -> int:
    result = conn.execute(sa.update(steps).where(RUNNING, S.lease_owner == owner)
                          .values(lease_expires_at=now + lease_seconds))
    return result.rowcount


# -- record --------------------------------------------------------------------------------------
def record(conn: sa.Connection, outcomes: Sequence[StepOutcome]) -> StepResultBatch:
    if not outcomes:
        return StepResultBatch()
    pg = conn.dialect.name == "postgresql"
    keys = sorted({(o.task_id, o.step) for o in outcomes})
    params = ({"task_ids": [k[0] for k in keys], "names": [k[1] for k in keys]} if pg
              else {"ids": sorted({k[0] for k in keys}), "keys": keys})
    rows = conn.execute(CURRENT_STEPS[pg], params)
    current = {(r.task_id, r.name): r for r in rows}

    applied: dict[tuple[str, str], StepOutcome] = {}
    rejected: list[StepOutcome] = []
    for o in outcomes:
        key = (o.task_id, o.step)
        row = current.get(key)
        if (row is None or key in applied or row.state != StepState.IN_PROGRESS.value
                or row.lease_owner != o.owner or row.attempts != o.attempt):
            rejected.append(o)
        else:
            applied[key] = o
    if not applied:
        return StepResultBatch(rejected=tuple(rejected))

    by_state: dict[StepState, list[dict[str, Any]]] = {}
    unblock: Counter[tuple[str, str]] = Counter()
    done: Counter[str] = Counter()
    failed: dict[str, StepOutcome] = {}
    last_at: dict[str, float] = {}
    log = []
    for key, o in applied.items():
        state = StepState(o.state)
        params = {"k_task": o.task_id, "k_name": o.step, "k_owner": o.owner, "k_attempt": o.attempt}
        if state is StepState.COMPLETE:
            params.update(results=o.results, at=o.at)
            done[o.task_id] += 1
            for name in current[key].dependents:
                unblock[(o.task_id, name)] += 1
        elif state is StepState.WAITING_RETRY:
            params.update(error=o.error, ready_at=o.ready_at if o.ready_at is not None else o.at)
        elif state is StepState.ERROR:
            params.update(error=o.error)
            failed.setdefault(o.task_id, o)
        by_state.setdefault(state, []).append(params)
        last_at[o.task_id] = o.at
        log.append(transition(o.task_id, o.step, StepState.IN_PROGRESS.value, state.value, o.at, o.reason))
    for state, params_list in by_state.items():
        OUTCOME_UPDATES[state](conn, params_list)
    if unblock:
        UNBLOCK(conn, [{"k_task": t, "k_name": n, "n": c} for (t, n), c in sorted(unblock.items())])

    changes: list[TaskChange] = []
    touched = sorted(set(done) | set(failed))
    if touched:
        counts, statuses = [], []
        for row in conn.execute(TASK_COUNTS[pg], {"ids": touched}):
            at, status, remaining = last_at[row.id], TaskState(row.status), row.steps_remaining - done[row.id]
            params = {"k_id": row.id, "remaining": remaining, "at": at}
            after, error, reason = status, None, ""
            if remaining == 0 and status in LIVE_TASK | {TaskState.ERROR}:
                after, reason = TaskState.COMPLETE, "all steps complete"
            elif row.id in failed and status in LIVE_TASK:
                after, error, reason = TaskState.ERROR, task_error(failed[row.id]), error_reason(failed[row.id])
            if after is status:
                counts.append(params)
                continue
            statuses.append({**params, "status": after.value, "error": error, "completed_at": at})
            changes.append(TaskChange(row.id, status, after))
            log.append(transition(row.id, None, status.value, after.value, at, reason))
        if counts:
            TASK_COUNT(conn, counts)
        if statuses:
            TASK_STATUS(conn, statuses)
    INSERT_TRANSITIONS(conn, log)
    return StepResultBatch(merge_changes(changes), tuple(rejected))
