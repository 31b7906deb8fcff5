"""The SQL store's hot paths — claiming steps and recording their outcomes — as Core statements.

Each function runs inside the caller's write transaction (``BEGIN IMMEDIATE`` on SQLite; on
PostgreSQL rows are locked with ``FOR UPDATE [SKIP LOCKED]``, steps before tasks). Per-row work is
batched: one SELECT with ``IN (...)`` per table, one executemany per kind of UPDATE, one
executemany INSERT of transitions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

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


#: same predicates as the partial indexes ix_steps_runnable / ix_steps_running
RUNNABLE = sa.and_(S.state.in_([_lit("pending"), _lit("waiting_retry")]), S.pending_deps == _lit(0))
RUNNING = S.state == _lit("in_progress")
LIVE = T.status.in_([s.value for s in LIVE_TASK])
DONE = [StepState.COMPLETE.value, StepState.RESOLVED_MANUALLY.value]

_CLAIMABLE = (sa.select(S.task_id, S.name, S.state, S.attempts, S.lease_owner, S.ready_at,
                        T.namespace, T.name.label("task_name"), T.version, T.status)
              .join_from(steps, tasks, S.task_id == T.id).where(LIVE))
#: steps whose lease expired (their worker died), most overdue first
EXPIRED = _CLAIMABLE.where(RUNNING, S.lease_expires_at < _B("now")).order_by(S.lease_expires_at)
#: waiting steps whose dependencies are done and whose backoff is over, oldest first
READY = _CLAIMABLE.where(RUNNABLE, S.ready_at <= _B("now")).order_by(S.ready_at)
RUNNING_BY_NAMESPACE = (sa.select(T.namespace, sa.func.count()).join_from(steps, tasks, S.task_id == T.id)
                        .where(RUNNING, T.namespace.in_(_B("namespaces", expanding=True)))
                        .group_by(T.namespace))

_STEP_KEY = sa.and_(S.task_id == _B("k_task"), S.name == _B("k_name"))
_GUARD = sa.and_(_STEP_KEY, RUNNING, S.lease_owner == _B("k_owner"), S.attempts == _B("k_attempt"))
_NO_LEASE = {"lease_owner": None, "lease_expires_at": None}

TAKE = sa.update(steps).where(_STEP_KEY).values(
    state=StepState.IN_PROGRESS.value, attempts=_B("attempts"), lease_owner=_B("owner"),
    lease_expires_at=_B("expires"), started_at=_B("now"))
START_TASKS = (sa.update(tasks).where(T.id.in_(_B("ids", expanding=True)), T.status == TaskState.PENDING.value)
               .values(status=TaskState.IN_PROGRESS.value, updated_at=_B("now")).returning(T.id))
INSERT_TRANSITIONS = sa.insert(transitions)

OUTCOME_UPDATES = {
    StepState.COMPLETE: sa.update(steps).where(_GUARD).values(
        state=StepState.COMPLETE.value, results=_B("results", type_=Json), completed_at=_B("at"), **_NO_LEASE),
    StepState.WAITING_RETRY: sa.update(steps).where(_GUARD).values(
        state=StepState.WAITING_RETRY.value, last_error=_B("error", type_=Json), ready_at=_B("ready_at"),
        **_NO_LEASE),
    StepState.ERROR: sa.update(steps).where(_GUARD).values(
        state=StepState.ERROR.value, last_error=_B("error", type_=Json), **_NO_LEASE),
    StepState.CANCELLED: sa.update(steps).where(_GUARD).values(state=StepState.CANCELLED.value, **_NO_LEASE),
}
UNBLOCK = sa.update(steps).where(_STEP_KEY).values(pending_deps=S.pending_deps - _B("n"))
TASK_COUNT = sa.update(tasks).where(T.id == _B("k_id")).values(
    steps_remaining=_B("remaining"), updated_at=_B("at"))
TASK_STATUS = sa.update(tasks).where(T.id == _B("k_id")).values(
    steps_remaining=_B("remaining"), status=_B("status"), error=_B("error", type_=Json),
    completed_at=_B("completed_at"), updated_at=_B("at"))


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

    def run(query: sa.Select[Any], n: int, **params: Any) -> list[sa.Row[Any]]:
        query = query.limit(n)
        if pg:
            query = query.with_for_update(skip_locked=True, of=steps)
        return list(conn.execute(query, {"now": now, **params}))

    expired = run(EXPIRED, limit)
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
                ready += run(READY.where(T.namespace == namespace), allowance)
        ready += run(READY.where(T.namespace.not_in(limited)), need)
        ready = sorted(ready, key=lambda r: r.ready_at)[:need]
    elif need > 0:
        ready = run(READY, need)
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
    conn.execute(TAKE, updates)
    pending = sorted({row.task_id for row in (*expired, *ready) if row.status == TaskState.PENDING.value})
    if pending:
        first = {}
        for c in claims:
            first.setdefault(c.task_id, c.step)
        for task_id in conn.execute(START_TASKS, {"ids": pending, "now": now}).scalars():
            log.append(transition(task_id, None, TaskState.PENDING.value, TaskState.IN_PROGRESS.value, now,
                                  f"step {first[task_id]} claimed"))
    conn.execute(INSERT_TRANSITIONS, log)
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
    query = (sa.select(S.task_id, S.name, S.state, S.lease_owner, S.attempts, S.dependents)
             .where(sa.tuple_(S.task_id, S.name).in_(keys)).order_by(S.task_id, S.name))
    if pg:
        query = query.with_for_update()
    current = {(r.task_id, r.name): r for r in conn.execute(query)}

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
        conn.execute(OUTCOME_UPDATES[state], params_list)
    if unblock:
        conn.execute(UNBLOCK, [{"k_task": t, "k_name": n, "n": c} for (t, n), c in sorted(unblock.items())])

    changes: list[TaskChange] = []
    touched = sorted(set(done) | set(failed))
    if touched:
        query = sa.select(T.id, T.status, T.steps_remaining).where(T.id.in_(touched)).order_by(T.id)
        if pg:
            query = query.with_for_update()
        counts, statuses = [], []
        for row in conn.execute(query):
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
            conn.execute(TASK_COUNT, counts)
        if statuses:
            conn.execute(TASK_STATUS, statuses)
    conn.execute(INSERT_TRANSITIONS, log)
    return StepResultBatch(merge_changes(changes), tuple(rejected))
