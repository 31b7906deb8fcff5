"""The SQL store's hot paths — claiming steps and recording their outcomes.

Each function runs inside the caller's write transaction (``BEGIN IMMEDIATE`` on SQLite; on
PostgreSQL rows are locked with ``FOR UPDATE [SKIP LOCKED]``, steps before tasks).

PostgreSQL: a claim (without namespace caps) and a record are ONE statement each — data-modifying
CTEs over ``unnest`` of one array parameter per column, so the SQL text is the same for any batch
(psycopg prepares it after a few runs). Within a statement, locks are still taken in the order
the multi-statement version took them: named steps in key order, then dependents in key order,
then tasks in id order (each phase waits for the previous one through an ``InitPlan`` gate).
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
from tasker_host.store.sql_batch import Many, ManyInsert, Rows, Unindexed, lit
from tasker_host.store.sql_schema import RUNNABLE_PREDICATE, RUNNING_PREDICATE, Json, steps, tasks, transitions

S, T = steps.c, tasks.c
_B = sa.bindparam


#: same predicates as the partial indexes ix_steps_runnable / ix_steps_running
RUNNABLE = sa.and_(S.state.in_([lit("pending"), lit("waiting_retry")]), S.pending_deps == lit(0))
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
READY_Q = {pg: Rows(q) for pg, q in _locking(READY.limit(_B("limit")), **_SKIP).items()}
READY_IN_Q = {pg: Rows(q) for pg, q in
              _locking(READY.where(T.namespace == _B("namespace")).limit(_B("limit")), **_SKIP).items()}
READY_NOT_IN_Q = _locking(READY.where(T.namespace.not_in(_B("namespaces", expanding=True))).limit(_B("limit")),
                          **_SKIP)
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

# -- PostgreSQL: one statement per claim / record ------------------------------------------------
COMPLETE_REASON = "all steps complete"
_LIVE = ", ".join(f"'{s.value}'" for s in sorted(LIVE_TASK))
_FINAL = ", ".join(f"'{s.value}'" for s in sorted(FINAL_TASK))
#: steps with their (live) task, looked up step by step (``OFFSET 0`` keeps the subquery a per-row index
#: lookup, so the scan walks the partial index in order and stops at the limit whatever the estimates)
_CLAIMABLE_PG = ("SELECT s.task_id, s.name, s.state, s.attempts, s.lease_owner, t.* FROM steps AS s CROSS JOIN LATERAL "
                 "(SELECT namespace, name AS task_name, version, status FROM tasks "
                 f"WHERE tasks.id = s.task_id AND tasks.status IN ({_LIVE}) OFFSET 0) AS t WHERE")
#: claim(owner, limit): lock the steps (expired leases, then ready steps; SKIP LOCKED), take them,
#: start their pending tasks (locked in id order), log it; the claims in order.
CLAIM_PG = f"""WITH expired AS MATERIALIZED (
    {_CLAIMABLE_PG} {RUNNING_PREDICATE} AND s.lease_expires_at < %(now)s
    ORDER BY s.lease_expires_at LIMIT %(limit)s FOR UPDATE OF s SKIP LOCKED
), ready AS MATERIALIZED (
    {_CLAIMABLE_PG} {RUNNABLE_PREDICATE} AND s.ready_at <= %(now)s
    ORDER BY s.ready_at LIMIT GREATEST(%(limit)s - (SELECT count(*) FROM expired), 0) FOR UPDATE OF s SKIP LOCKED
), picked AS MATERIALIZED (
    SELECT u.*, row_number() OVER () AS n FROM (SELECT * FROM expired UNION ALL SELECT * FROM ready) AS u
), taken AS (
    UPDATE steps AS s SET state = 'in_progress', attempts = p.attempts + 1, lease_owner = %(owner)s,
        lease_expires_at = %(expires)s, started_at = %(now)s
    FROM picked AS p WHERE s.task_id = p.task_id AND s.name = p.name
), starting AS MATERIALIZED (
    SELECT t.id, t.status, f.name FROM (
        SELECT DISTINCT ON (task_id) task_id, name FROM picked WHERE status = 'pending' ORDER BY task_id, n
    ) AS f JOIN tasks AS t ON t.id = f.task_id ORDER BY t.id FOR NO KEY UPDATE OF t
), started AS (
    UPDATE tasks AS t SET status = 'in_progress', updated_at = %(now)s FROM starting AS k
    WHERE t.id = k.id AND k.status = 'pending' RETURNING t.id, k.name
), logged AS (
    INSERT INTO transitions (task_id, step, from_state, to_state, at, reason)
    SELECT task_id, step, from_state, 'in_progress', %(now)s, reason FROM (
        SELECT 0 AS g, p.n, p.task_id, p.name AS step, p.state AS from_state,
            CASE p.state WHEN 'in_progress' THEN format(%(reclaim)s, coalesce(p.lease_owner, 'None'))
                ELSE %(reason)s END AS reason
        FROM picked AS p
        UNION ALL
        SELECT 1, 0, id, NULL, 'pending', 'step ' || name || ' claimed' FROM started
    ) AS x ORDER BY g, n, task_id
)
SELECT p.task_id, p.name, p.attempts + 1, p.namespace, p.task_name, p.version FROM picked AS p ORDER BY p.n"""

#: record(outcomes as arrays): lock the named steps (key order), keep the first outcome per step that
#: holds its lease, apply them; then lock and unblock the dependents of completed steps (key order);
#: then lock their tasks (id order), count / move them, log it all. Returns the accepted outcomes'
#: positions and the task changes. (A row may be changed once per statement: the outcome rows and the
#: dependents never overlap, as a step's dependents cannot run before it is done.)
RECORD_PG = f"""WITH cur AS MATERIALIZED (
    SELECT o.*, s.state AS now_state, s.lease_owner, s.attempts, s.dependents
    FROM unnest(%(task_id)s::text[], %(name)s::text[], %(owner)s::text[], %(attempt)s::int[],
        %(state)s::text[], %(at)s::float8[], %(reason)s::text[], %(results)s::text[], %(error)s::text[],
        %(ready_at)s::float8[], %(task_error)s::text[], %(why)s::text[])
    WITH ORDINALITY AS o(task_id, name, owner, attempt, state, at, reason, results, error, ready_at, task_error,
        why, ord)
    JOIN steps AS s ON s.task_id = o.task_id AND s.name = o.name
    ORDER BY s.task_id, s.name, o.ord FOR UPDATE OF s
), ok AS MATERIALIZED (
    SELECT DISTINCT ON (task_id, name) * FROM cur
    WHERE now_state = 'in_progress' AND lease_owner = owner AND attempts = attempt ORDER BY task_id, name, ord
), applied AS (
    UPDATE steps AS s SET state = k.state, lease_owner = NULL, lease_expires_at = NULL,
        results = CASE k.state WHEN 'complete' THEN k.results::jsonb ELSE s.results END,
        completed_at = CASE k.state WHEN 'complete' THEN k.at ELSE s.completed_at END,
        last_error = CASE WHEN k.state IN ('waiting_retry', 'error') THEN k.error::jsonb ELSE s.last_error END,
        ready_at = CASE k.state WHEN 'waiting_retry' THEN k.ready_at ELSE s.ready_at END
    FROM ok AS k WHERE s.task_id = k.task_id AND s.name = k.name
), deps AS MATERIALIZED (
    SELECT s.task_id, s.name, d.n FROM steps AS s JOIN (
        SELECT k.task_id, e.name, count(*) AS n FROM ok AS k, jsonb_array_elements_text(k.dependents) AS e(name)
        WHERE k.state = 'complete' GROUP BY k.task_id, e.name
    ) AS d ON s.task_id = d.task_id AND s.name = d.name
    WHERE (SELECT count(*) FROM cur) >= 0 ORDER BY s.task_id, s.name FOR UPDATE OF s
), unblocked AS (
    UPDATE steps AS s SET pending_deps = s.pending_deps - d.n FROM deps AS d
    WHERE s.task_id = d.task_id AND s.name = d.name
), per_task AS (
    SELECT task_id, count(*) FILTER (WHERE state = 'complete') AS done, (array_agg(at ORDER BY ord DESC))[1] AS at,
        (array_agg(task_error ORDER BY ord) FILTER (WHERE state = 'error'))[1] AS task_error,
        (array_agg(why ORDER BY ord) FILTER (WHERE state = 'error'))[1] AS why
    FROM ok GROUP BY task_id HAVING count(*) FILTER (WHERE state IN ('complete', 'error')) > 0
), tk AS MATERIALIZED (
    SELECT t.id, t.status, t.steps_remaining - p.done AS remaining, p.at, p.task_error, p.why
    FROM per_task AS p JOIN tasks AS t ON t.id = p.task_id
    WHERE (SELECT count(*) FROM deps) >= 0 ORDER BY t.id FOR NO KEY UPDATE OF t
), nxt AS MATERIALIZED (
    SELECT id, status AS before, remaining, at, task_error, why,
        CASE WHEN remaining = 0 AND status NOT IN ({_FINAL}) THEN 'complete'
             WHEN task_error IS NOT NULL AND status IN ({_LIVE}) THEN 'error'
             ELSE status END AS after
    FROM tk
), moved AS (
    UPDATE tasks AS t SET steps_remaining = n.remaining, updated_at = n.at, status = n.after,
        error = CASE WHEN n.after = n.before THEN t.error WHEN n.after = 'error' THEN n.task_error::jsonb END,
        completed_at = CASE WHEN n.after = n.before THEN t.completed_at ELSE n.at END
    FROM nxt AS n WHERE t.id = n.id
), logged AS (
    INSERT INTO transitions (task_id, step, from_state, to_state, at, reason)
    SELECT task_id, step, from_state, to_state, at, reason FROM (
        SELECT 0 AS g, ord, task_id, name AS step, 'in_progress' AS from_state, state AS to_state, at, reason
        FROM ok
        UNION ALL
        SELECT 1, 0, id, NULL, before, after, at, CASE after WHEN 'complete' THEN '{COMPLETE_REASON}' ELSE why END
        FROM nxt WHERE after <> before
    ) AS x ORDER BY g, ord, task_id
)
SELECT (SELECT array_agg(ord) FROM ok), array_agg(id ORDER BY id), array_agg(before ORDER BY id),
    array_agg(after ORDER BY id)
FROM nxt WHERE after <> before"""


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
    if pg and not namespace_limits:
        return _claim_pg(conn, owner, limit, now, lease_seconds)

    def run(query: dict[bool, Any], n: int, **params: Any) -> list[Any]:
        statement = query[pg]
        params = {"now": now, "limit": n, **params}
        return statement(conn, params) if isinstance(statement, Rows) else list(conn.execute(statement, params))

    expired = run(EXPIRED_Q, limit)
    need = limit - len(expired)
    ready: list[Any] = []
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


def _claim_pg(conn: sa.Connection, owner: str, limit: int, now: float, lease_seconds: float) -> list[Claim]:
    reclaim = RECLAIM_REASON.format(previous="%s", owner=owner.replace("%", "%%"))  # for SQL format()
    params = {"now": now, "limit": limit, "owner": owner, "expires": now + lease_seconds,
              "reason": CLAIM_REASON.format(owner=owner), "reclaim": reclaim}
    return [Claim(*row) for row in conn.exec_driver_sql(CLAIM_PG, params)]


def renew_leases(conn: sa.Connection, owner: str, now: float, lease_seconds: float) -> int:
    result = conn.execute(sa.update(steps).where(RUNNING, S.lease_owner == owner)
                          .values(lease_expires_at=now + lease_seconds))
    return result.rowcount


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
    if not outcomes:
        return StepResultBatch()
    if conn.dialect.name == "postgresql":
        return _record_pg(conn, outcomes)
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
    return StepResultBatch(merge_changes(changes), tuple(rejected))


def _record_pg(conn: sa.Connection, outcomes: Sequence[StepOutcome]) -> StepResultBatch:
    failed = [StepState(o.state) is StepState.ERROR for o in outcomes]
    params = {
        "task_id": [o.task_id for o in outcomes], "name": [o.step for o in outcomes],
        "owner": [o.owner for o in outcomes], "attempt": [int(o.attempt) for o in outcomes],
        "state": [StepState(o.state).value for o in outcomes], "at": [float(o.at) for o in outcomes],
        "reason": [o.reason for o in outcomes], "results": [_json(o.results) for o in outcomes],
        "error": [_json(o.error) for o in outcomes],
        "ready_at": [float(o.at if o.ready_at is None else o.ready_at) for o in outcomes],
        "task_error": [json.dumps(task_error(o)) if f else None for o, f in zip(outcomes, failed)],
        "why": [error_reason(o) if f else None for o, f in zip(outcomes, failed)],
    }
    accepted, ids, before, after = conn.exec_driver_sql(RECORD_PG, params).one()
    taken = set(accepted or ())
    rejected = tuple(o for i, o in enumerate(outcomes, 1) if i not in taken)
    changes = [TaskChange(i, TaskState(b), TaskState(a)) for i, b, a in zip(ids or (), before or (), after or ())]
    return StepResultBatch(merge_changes(changes), rejected)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
