"""The SQL store's hot paths — claiming steps and recording their outcomes.

Each function runs inside the caller's write transaction (``BEGIN IMMEDIATE`` on SQLite; on
PostgreSQL rows are locked with ``FOR UPDATE [SKIP LOCKED]``, steps before tasks).

PostgreSQL: a claim (without namespace caps), a record and a record-and-claim are ONE statement
each (:mod:`tasker_host.store.sql.pg`).
SQLite: one SELECT with ``IN (...)`` per table, one executemany per kind of UPDATE, one
executemany INSERT of transitions (its calls cost microseconds: statements are not the cost).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.models import StepState, TaskState
from tasker_host.store._common import (
    CLAIM_REASON,
    FINAL_TASK,
    LIVE_TASK,
    RECLAIM_REASON,
    error_reason,
    merge_changes,
    task_error,
)
from tasker_host.store.base import Claim, StepOutcome, StepResultBatch, TaskChange
from tasker_host.store.sql import pg as pg_work
from tasker_host.store.sql.batch import Many, ManyInsert, Rows, Unindexed, lit
from tasker_host.store.sql.pg import COMPLETE_REASON
from tasker_host.store.sql.schema import Json, steps, tasks, transitions

S, T = steps.c, tasks.c
_B = sa.bindparam


#: same predicates as the partial indexes ix_steps_runnable / ix_steps_running
RUNNABLE = sa.and_(S.state.in_([lit("pending"), lit("waiting_retry"), lit("waiting")]), S.pending_deps == lit(0))
RUNNING = S.state == lit("in_progress")
LIVE = Unindexed(T.status).in_([lit(s.value) for s in sorted(LIVE_TASK)])
DONE = [StepState.COMPLETE.value, StepState.RESOLVED_MANUALLY.value]

_CLAIMABLE = (sa.select(S.task_id, S.name, S.state, S.attempts, S.lease_owner, S.ready_at,
                        T.namespace, T.name.label("task_name"), T.version, T.status)
              .join_from(steps, tasks, S.task_id == T.id).where(LIVE))
#: steps whose lease expired (their worker died), most overdue first
EXPIRED = _CLAIMABLE.where(RUNNING, S.lease_expires_at < _B("now")).order_by(S.lease_expires_at)
#: waiting steps whose dependencies are done and whose backoff is over, oldest first
READY = _CLAIMABLE.where(RUNNABLE, S.ready_at <= _B("now")).order_by(S.ready_at)


def _locking(query: sa.Select[Any], **options: Any) -> dict[bool, sa.Select[Any]]:
    """``query`` without / with ``FOR UPDATE`` (PostgreSQL), built once."""
    return {False: query, True: query.with_for_update(**options)}


_SKIP = {"skip_locked": True, "of": steps}
EXPIRED_Q = {pg: Rows(q) for pg, q in _locking(EXPIRED.limit(_B("limit")), **_SKIP).items()}
READY_IN_Q = {pg: Rows(q) for pg, q in
              _locking(READY.where(S.namespace == _B("namespace")).limit(_B("limit")), **_SKIP).items()}
READY_NAMESPACES = sa.text(f"WITH RECURSIVE {pg_work.READY_NAMESPACES} SELECT ns FROM ready_ns WHERE ns IS NOT NULL")
RUNNING_BY_NAMESPACE = (sa.select(S.namespace, sa.func.count()).where(RUNNING, S.namespace.in_(
    _B("namespaces", expanding=True))).group_by(S.namespace))

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
          namespace_limits: Mapping[str, int] | None, prefer: frozenset[tuple[str, str]] = frozenset(),
          ) -> list[Claim]:
    """Claim up to ``limit`` steps: expired leases first, then ready steps by
    :func:`fair_order`, ``prefer`` (steps the caller's own outcomes made ready) first in their
    namespace's turn."""
    if limit <= 0:
        return []
    pg = conn.dialect.name == "postgresql"
    if pg and not namespace_limits:
        return pg_work.claim(conn, owner, limit, now, lease_seconds)

    def run(query: dict[bool, Any], n: int, **params: Any) -> list[Any]:
        statement = query[pg]
        params = {"now": now, "limit": n, **params}
        return statement(conn, params) if isinstance(statement, Rows) else list(conn.execute(statement, params))

    expired = run(EXPIRED_Q, limit)
    need = limit - len(expired)
    ready: list[Any] = []
    if need > 0:
        allowances = dict(_allowances(conn, pg, need, namespace_limits))
        for namespace, allowance in allowances.items():  # (the preferred steps may not be the oldest)
            ready += run(READY_IN_Q, allowance + len(prefer), namespace=namespace)
        ready = _within(fair_order(ready, prefer), allowances, need)
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
        claims.append(Claim(row.task_id, row.name, attempt, row.namespace, row.task_name, row.version, row.state))
    TAKE(conn, updates)
    pending = sorted({row.task_id for row in (*expired, *ready) if row.status == TaskState.PENDING.value})
    if pending:
        first: dict[str, Any] = {}
        for c in claims:
            first.setdefault(c.task_id, c.step)
        for task_id in conn.execute(START_TASKS, {"ids": pending, "now": now}).scalars():
            log.append(transition(task_id, None, TaskState.PENDING.value, TaskState.IN_PROGRESS.value, now,
                                  f"step {first[task_id]} claimed"))
    INSERT_TRANSITIONS(conn, log)
    return claims


def _allowances(conn: sa.Connection, pg: bool, need: int, namespace_limits: Mapping[str, int] | None,
                ) -> list[tuple[str, int]]:
    """(namespace, how many of its ready steps to look at) for each namespace with runnable steps;
    capped namespaces get what their cap leaves (on PostgreSQL their claimers are serialised by
    an advisory lock, so a cap holds across processes)."""
    limits = namespace_limits or {}
    namespaces = list(conn.execute(READY_NAMESPACES).scalars())
    capped = sorted(n for n in namespaces if n in limits)
    running: dict[str, int] = {}
    if capped:
        if pg:
            for namespace in capped:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x7A5D, sa.func.hashtext(namespace))))
        running = dict(conn.execute(RUNNING_BY_NAMESPACE, {"namespaces": capped}).all())
    allowances = [(n, min(need, limits[n] - running.get(n, 0)) if n in capped else need)
                  for n in namespaces]
    return [(n, a) for n, a in allowances if a > 0]


def _within(rows: list[Any], allowances: Mapping[str, int], need: int) -> list[Any]:
    """The first ``need`` rows that keep each namespace within its allowance."""
    taken: Counter[str] = Counter()
    picked: list[Any] = []
    for row in rows:
        if len(picked) == need:
            break
        if taken[row.namespace] < allowances[row.namespace]:
            taken[row.namespace] += 1
            picked.append(row)
    return picked


def fair_order(rows: list[Any], prefer: frozenset[tuple[str, str]] = frozenset()) -> list[Any]:
    """Ready rows with namespaces taking turns: every namespace's first, then every second ...
    (each turn oldest first); within a namespace, ``prefer``-red steps before the others. As
    :data:`~tasker_host.store.sql.pg.FAIR_ORDER` on PostgreSQL."""
    def key(r: Any) -> tuple[Any, ...]:
        return ((r.task_id, r.name) not in prefer, r.ready_at, r.task_id, r.name)

    rank: Counter[str] = Counter()
    keyed = []
    for row in sorted(rows, key=key):
        keyed.append(((rank[row.namespace], *key(row)), row))
        rank[row.namespace] += 1
    return [row for _, row in sorted(keyed, key=lambda item: item[0])]


def renew_leases(conn: sa.Connection, owner: str, now: float, lease_seconds: float) -> int:
    result = conn.execute(sa.update(steps).where(RUNNING, S.lease_owner == owner)
                          .values(lease_expires_at=now + lease_seconds))
    return result.rowcount


# -- record and claim ----------------------------------------------------------------------------
def single_statement(dialect: str, namespace_limits: Mapping[str, int] | None) -> bool:
    """Whether ``record_and_claim`` sends ONE statement (PostgreSQL without namespace caps), which
    is atomic on its own: it needs no transaction around it (no BEGIN / COMMIT round trips)."""
    return dialect == "postgresql" and not namespace_limits


def record_and_claim(conn: sa.Connection, outcomes: Sequence[StepOutcome], owner: str, limit: int, now: float,
                     lease_seconds: float, namespace_limits: Mapping[str, int] | None,
                     ) -> tuple[StepResultBatch, list[Claim]]:
    """``record`` then ``claim``; on PostgreSQL without namespace caps ONE statement."""
    if outcomes and limit > 0 and single_statement(conn.dialect.name, namespace_limits):
        return pg_work.record_and_claim(conn, outcomes, owner, limit, now, lease_seconds)
    batch, made_ready = _record(conn, outcomes) if outcomes else (StepResultBatch(), frozenset())
    claims = claim(conn, owner, limit, now, lease_seconds, namespace_limits, made_ready) if limit > 0 else []
    return batch, claims


# -- record --------------------------------------------------------------------------------------
def _current_steps(conn: sa.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(state, lease_owner, attempts, dependents) of the steps named by ``keys`` (SQLite).

    ``task_id IN (...)`` lets SQLite use the primary key (it scans the table for a row-value IN
    alone). Bound by hand: half the cost of expanding 600 parameters through the compiler.
    """
    ids = sorted({k[0] for k in keys})
    sql = (f"SELECT task_id, name, state, lease_owner, attempts, dependents FROM steps "
           f"WHERE task_id IN ({', '.join('?' * len(ids))}) "
           f"AND (task_id, name) IN (VALUES {', '.join(['(?, ?)'] * len(keys))})")
    rows = conn.exec_driver_sql(sql, (*ids, *(part for key in keys for part in key)))
    return {(r[0], r[1]): (r[2], r[3], r[4], json.loads(r[5])) for r in rows}


def record(conn: sa.Connection, outcomes: Sequence[StepOutcome]) -> StepResultBatch:
    return _record(conn, outcomes)[0] if outcomes else StepResultBatch()


def _record(conn: sa.Connection, outcomes: Sequence[StepOutcome]) -> tuple[StepResultBatch, frozenset[tuple[str, str]]]:
    """``record``, and (SQLite) the steps its outcomes may have made ready: completed steps'
    dependents, retries. PostgreSQL: one statement (the steps are not needed: there the
    one-statement record-and-claim ranks them itself)."""
    if conn.dialect.name == "postgresql":
        return pg_work.record(conn, outcomes), frozenset()
    current = _current_steps(conn, sorted({(o.task_id, o.step) for o in outcomes}))

    applied: dict[tuple[str, str], StepOutcome] = {}
    rejected: list[StepOutcome] = []
    running = StepState.IN_PROGRESS.value
    for o in outcomes:
        key = (o.task_id, o.step)
        row = current.get(key)  # (state, lease_owner, attempts, dependents)
        if row is None or key in applied or row[0] != running or row[1] != o.owner or row[2] != o.attempt:
            rejected.append(o)
        else:
            applied[key] = o
    if not applied:
        return StepResultBatch(rejected=tuple(rejected)), frozenset()

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
            for name in current[key][3]:
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
        task_rows = conn.exec_driver_sql(  # bound by hand, as in _current_steps
            f"SELECT id, status, steps_remaining FROM tasks WHERE id IN ({', '.join('?' * len(touched))})",
            tuple(touched)).all()
        for row_id, before, count in task_rows:
            at, status, remaining = last_at[row_id], TaskState(before), count - done[row_id]
            params = {"k_id": row_id, "remaining": remaining, "at": at}
            after, error, reason = status, None, ""
            if remaining == 0 and status not in FINAL_TASK:
                after, reason = TaskState.COMPLETE, COMPLETE_REASON
            elif row_id in failed and status in LIVE_TASK:
                after, error, reason = TaskState.ERROR, task_error(failed[row_id]), error_reason(failed[row_id])
            if after is status:
                counts.append(params)
                continue
            statuses.append({**params, "status": after.value, "error": error, "completed_at": at})
            changes.append(TaskChange(row_id, status, after))
            log.append(transition(row_id, None, status.value, after.value, at, reason))
        if counts:
            TASK_COUNT(conn, counts)
        if statuses:
            TASK_STATUS(conn, statuses)
    INSERT_TRANSITIONS(conn, log)
    retried = {key for key, o in applied.items() if StepState(o.state) is StepState.WAITING_RETRY}
    return StepResultBatch(merge_changes(changes), tuple(rejected)), frozenset(unblock.keys() | retried)
