"""The SQL store's hot paths on PostgreSQL: claim, record and record-and-claim, ONE statement each.

Data-modifying CTEs over the outcomes as one JSON parameter (``json_to_recordset``), so the SQL
text is the same for any batch (prepared once per connection, see
:class:`~tasker_host.store.sql.batch.PgStatement`).
Rows are locked in the order separate statements would lock them: named steps in key order, then
dependents in key order, then tasks in id order, then (``SKIP LOCKED``) the steps to claim, then
the tasks they start in id order (each phase waits for the previous one through an ``InitPlan``
gate or by reading its rows). Rows to lock are looked up one by one through their primary key
(:func:`_lock`), whatever the planner guesses of the batch's size.

All parts of a statement see the same snapshot and may change a row only once. So record-and-claim
cannot simply run the claim after the record: its claim part takes what the record part does from
the record CTEs. Steps the record part makes claimable (dependents whose ``pending_deps`` reach 0,
retries already due) are ranked with the ready steps the index scan finds and claimed by the same
UPDATE that records / unblocks them; the scans skip the tasks the record part ends and the steps it
records. Results (and rows) are those of ``record`` then ``claim`` in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from tasker_host.store.sql.batch import PgStatement
from tasker_host.store.sql.schema import RUNNABLE_PREDICATE, RUNNING_PREDICATE

COMPLETE_REASON = "all steps complete"
_LIVE = ", ".join(f"'{s.value}'" for s in sorted(LIVE_TASK))
_FINAL = ", ".join(f"'{s.value}'" for s in sorted(FINAL_TASK))


def _lock(table: str, key: str, strength: str = "UPDATE") -> str:
    """The row of ``table`` matching ``key`` (on columns of an outer row), locked: a subquery for
    ``CROSS JOIN LATERAL`` after a sorted subquery, so rows are locked one by one in that order,
    each through the primary key (a join would let the planner, blind to the size of arrays and
    CTEs, hash the whole table)."""
    return f"SELECT * FROM {table} WHERE {key} OFFSET 0 FOR {strength}"


def _claimable(predicate: str, excluded: str) -> str:
    """Steps matching ``predicate`` with their (live) task, looked up step by step (``OFFSET 0``
    keeps the subquery a per-row index lookup, so the scan walks the partial index in order and
    stops at the limit whatever the estimates). Columns: src 0 (a scan), the step, its task, the
    sort key ``k``."""
    key = "s.lease_expires_at" if predicate == RUNNING_PREDICATE else "s.ready_at"
    return ("SELECT 0 AS src, s.task_id, s.name, s.state, s.attempts, s.lease_owner, t.*, "
            f"{key} AS k FROM steps AS s CROSS JOIN LATERAL (SELECT namespace, name AS task_name, version, "
            f"status FROM tasks WHERE tasks.id = s.task_id AND tasks.status IN ({_LIVE}) OFFSET 0) AS t "
            f"WHERE {predicate}{excluded}")


#: The namespaces that have runnable steps: a loose index scan of ``ix_steps_runnable``
#: (namespace, ready_at), one index descent per namespace whatever the backlog. A RECURSIVE CTE:
#: statements using it start ``WITH RECURSIVE``.
READY_NAMESPACES = f"""ready_ns(ns) AS (
    SELECT (SELECT min(namespace) FROM steps WHERE {RUNNABLE_PREDICATE})
    UNION ALL
    SELECT (SELECT min(namespace) FROM steps WHERE {RUNNABLE_PREDICATE} AND namespace > r.ns)
    FROM ready_ns AS r WHERE r.ns IS NOT NULL
)"""
#: Fair claims: namespaces take turns (each one's first step, then each one's second ...), so a
#: backlog in one namespace never holds back another's work by more than one turn per batch.
#: Within a namespace, the steps this statement's own outcomes made ready (src 1) come first,
#: then the oldest: a runner carries on with the tasks it has (their results are in its cache,
#: and their rows are not updated by two runners at once), the others take what it leaves.
FAIR_ORDER = ("row_number() OVER (PARTITION BY namespace ORDER BY src DESC, k, task_id, name), "
              "src DESC, k, task_id, name")


def _claim(expired_excluded: str = "", ready_excluded: str = "", fresh: str = "") -> str:
    """The claim's locking CTEs: the steps (expired leases, then ready steps, SKIP LOCKED) numbered
    in that order (``picked``); the pending tasks they start, locked in id order (``starting``).
    Ready steps are looked up namespace by namespace (``ready_ns``: the statement must define it)
    and taken in turns (:data:`FAIR_ORDER`). ``fresh``: more claimable steps (locked already),
    ranked with the ready ones (src 1).

    A namespace's scan stops at the room its fresh steps leave: its ready steps past that could
    never be picked (they rank after its fresh ones), and locking them would hide them from the
    other runners until this statement ends (and write a row lock each)."""
    ready = "SELECT * FROM ready" + (" UNION ALL SELECT * FROM fresh" if fresh else "")
    room = "GREATEST(%(limit)s - (SELECT count(*) FROM expired), 0)"
    scan = f"GREATEST({room} - (SELECT count(*) FROM fresh AS f WHERE f.namespace = n.ns), 0)" if fresh else room
    return f"""expired AS MATERIALIZED (
    {_claimable(RUNNING_PREDICATE, expired_excluded)} AND s.lease_expires_at < %(now)s
    ORDER BY s.lease_expires_at LIMIT %(limit)s FOR UPDATE OF s SKIP LOCKED
), {f"fresh AS MATERIALIZED ({fresh}), " if fresh else ""}ready AS MATERIALIZED (
    SELECT c.* FROM ready_ns AS n CROSS JOIN LATERAL (
        {_claimable(RUNNABLE_PREDICATE, ready_excluded)} AND s.namespace = n.ns AND s.ready_at <= %(now)s
        ORDER BY s.ready_at LIMIT {scan} FOR UPDATE OF s SKIP LOCKED
    ) AS c WHERE n.ns IS NOT NULL
), picked AS MATERIALIZED (
    SELECT u.*, row_number() OVER () AS n FROM (
        SELECT * FROM expired UNION ALL (SELECT * FROM ({ready}) AS r
            ORDER BY {FAIR_ORDER} LIMIT {room})
    ) AS u
), starting AS MATERIALIZED (
    SELECT t.id, t.status, f.name FROM (
        SELECT DISTINCT ON (task_id) task_id, name FROM picked WHERE status = 'pending' ORDER BY task_id, n
    ) AS f JOIN tasks AS t ON t.id = f.task_id ORDER BY t.id FOR NO KEY UPDATE OF t
), started AS (
    UPDATE tasks AS t SET status = 'in_progress', updated_at = %(now)s FROM starting AS k
    WHERE t.id = k.id AND k.status = 'pending' RETURNING t.id, k.name
)"""


#: The record CTEs (outcomes as arrays): lock the named steps (key order), keep the first outcome
#: per step that holds its lease (``ok``); lock the dependents of completed steps (key order,
#: ``deps``; ``unnest(ARRAY(...))`` because the planner expects 10 elements there, not 100); lock
#: their tasks (id order), count / move them (``nxt``, ``moved``). The outcome rows and the
#: dependents never overlap (a step's dependents cannot run before it is done).
_RECORD = f"""cur AS MATERIALIZED (
    SELECT o.*, s.state AS now_state, s.lease_owner, s.attempts, s.pending_deps, s.dependents FROM (
        SELECT * FROM json_to_recordset(%(outcomes)s::json) AS o(ord int, task_id text, name text, owner text,
            attempt int, state text, at float8, reason text, results jsonb, error jsonb, ready_at float8,
            task_error jsonb, why text) ORDER BY task_id, name, ord
    ) AS o CROSS JOIN LATERAL ({_lock("steps", "steps.task_id = o.task_id AND steps.name = o.name")}) AS s
), ok AS MATERIALIZED (
    SELECT DISTINCT ON (task_id, name) * FROM cur
    WHERE now_state = 'in_progress' AND lease_owner = owner AND attempts = attempt ORDER BY task_id, name, ord
), deps AS MATERIALIZED (
    SELECT d.task_id, d.name, d.n, s.state, s.attempts, s.ready_at, s.pending_deps - d.n AS deps_left FROM (
        SELECT k.task_id, e.name, count(*) AS n
        FROM ok AS k, unnest(ARRAY(SELECT jsonb_array_elements_text(k.dependents))) AS e(name)
        WHERE k.state = 'complete' AND (SELECT count(*) FROM cur) >= 0 GROUP BY k.task_id, e.name
        ORDER BY k.task_id, e.name
    ) AS d CROSS JOIN LATERAL ({_lock("steps", "steps.task_id = d.task_id AND steps.name = d.name")}) AS s
), per_task AS (
    SELECT task_id, count(*) FILTER (WHERE state = 'complete') AS done, (array_agg(at ORDER BY ord DESC))[1] AS at,
        (array_agg(task_error ORDER BY ord) FILTER (WHERE state = 'error'))[1] AS task_error,
        (array_agg(why ORDER BY ord) FILTER (WHERE state = 'error'))[1] AS why
    FROM ok GROUP BY task_id HAVING count(*) FILTER (WHERE state IN ('complete', 'error')) > 0
), nxt AS MATERIALIZED (
    SELECT p.task_id AS id, t.status AS before, t.steps_remaining - p.done AS remaining, p.at, p.task_error, p.why,
        CASE WHEN t.steps_remaining = p.done AND t.status NOT IN ({_FINAL}) THEN 'complete'
             WHEN p.task_error IS NOT NULL AND t.status IN ({_LIVE}) THEN 'error'
             ELSE t.status END AS after
    FROM (SELECT * FROM per_task WHERE (SELECT count(*) FROM deps) >= 0 ORDER BY task_id) AS p
    CROSS JOIN LATERAL ({_lock("tasks", "tasks.id = p.task_id", "NO KEY UPDATE")}) AS t
), moved AS (
    UPDATE tasks AS t SET steps_remaining = n.remaining, updated_at = n.at, status = n.after,
        error = CASE WHEN n.after = n.before THEN t.error WHEN n.after = 'error' THEN n.task_error::jsonb END,
        completed_at = CASE WHEN n.after = n.before THEN t.completed_at ELSE n.at END
    FROM nxt AS n WHERE t.id = n.id
)"""


#: ``ok`` / ``deps`` rows claimed too: a hashed subplan (the planner, blind to the size of CTEs,
#: could join two of them by a nested loop, quadratic in the batch)
_FRESH_CLAIMED = "(task_id, name) IN (SELECT task_id, name FROM picked WHERE src = 1)"


def _steps_update(claim: bool) -> str:
    """ONE UPDATE of the steps a statement changes: outcomes (``ok``), dependents (``deps``) and,
    with a claim, the steps the scans picked. ``ok`` / ``deps`` rows may be claimed too (the
    claim's changes win over the record's lease reset)."""
    nothing = "NULL, NULL, NULL, NULL, NULL"
    claimed = _FRESH_CLAIMED if claim else "false"
    owner, expires, now = ("%(claimer)s::text", "%(expires)s", "%(now)s") if claim else ("NULL", "NULL", "NULL")
    scanned = f"\n        UNION ALL SELECT task_id, name, {nothing}, 0, true FROM picked WHERE src = 0" if claim else ""
    return f"""stepped AS (
    UPDATE steps AS s SET
        state = CASE WHEN c.claimed THEN 'in_progress' ELSE coalesce(c.state, s.state) END,
        lease_owner = CASE WHEN c.claimed THEN {owner} WHEN c.state IS NULL THEN s.lease_owner END,
        lease_expires_at = CASE WHEN c.claimed THEN {expires} WHEN c.state IS NULL THEN s.lease_expires_at END,
        started_at = CASE WHEN c.claimed THEN {now} ELSE s.started_at END,
        attempts = s.attempts + c.claimed::int, pending_deps = s.pending_deps - c.n,
        results = CASE c.state WHEN 'complete' THEN c.results::jsonb ELSE s.results END,
        completed_at = CASE c.state WHEN 'complete' THEN c.at ELSE s.completed_at END,
        last_error = CASE WHEN c.state IN ('waiting_retry', 'error') THEN c.error::jsonb ELSE s.last_error END,
        ready_at = CASE c.state WHEN 'waiting_retry' THEN c.ready_at ELSE s.ready_at END
    FROM (
        SELECT task_id, name, state, results, at, error, ready_at, 0 AS n, {claimed} AS claimed FROM ok
        UNION ALL SELECT task_id, name, {nothing}, n, {claimed} FROM deps{scanned}
    ) AS c WHERE s.task_id = c.task_id AND s.name = c.name
)"""


#: transitions, as rows (g, n, task_id, step, from_state, to_state, at, reason): of a record ...
_RECORD_LOG = f"""SELECT 0, ord, task_id, name, 'in_progress', state, at, reason FROM ok
    UNION ALL
    SELECT 1, 0, id, NULL, before, after, at, CASE after WHEN 'complete' THEN '{COMPLETE_REASON}' ELSE why END
    FROM nxt WHERE after <> before"""
#: ... and of a claim
_CLAIM_LOG = """SELECT 2, p.n, p.task_id, p.name, p.state, 'in_progress', %(now)s,
        CASE p.state WHEN 'in_progress' THEN format(%(reclaim)s, coalesce(p.lease_owner, 'None'))
            ELSE %(claim_reason)s END
    FROM picked AS p
    UNION ALL
    SELECT 3, 0, id, NULL, 'pending', 'in_progress', %(now)s, 'step ' || name || ' claimed' FROM started"""


def _log(*parts: str) -> str:
    return f"""logged AS (
    INSERT INTO transitions (task_id, step, from_state, to_state, at, reason)
    SELECT task_id, step, from_state, to_state, at, reason FROM ({' UNION ALL '.join(parts)}
    ) AS x(g, n, task_id, step, from_state, to_state, at, reason) ORDER BY g, n, task_id
)"""


#: results: the accepted outcomes' positions; the task changes; the claims in ``picked`` order
_ACCEPTED = "(SELECT array_agg(ord) FROM ok)"
_CHANGES = ("(SELECT array_agg(id ORDER BY id), array_agg(before ORDER BY id), array_agg(after ORDER BY id) "
            "FROM nxt WHERE after <> before) AS changes")
_CLAIMS = ("(SELECT array_agg(task_id), array_agg(name), array_agg(attempts + 1), array_agg(namespace), "
           "array_agg(task_name), array_agg(version), array_agg(state) FROM (SELECT * FROM picked ORDER BY n) AS q) "
           "AS claims")

#: claim(owner, limit): the claims.
CLAIM_PG = f"""WITH RECURSIVE {READY_NAMESPACES}, {_claim()}, taken AS (
    UPDATE steps AS s SET state = 'in_progress', attempts = p.attempts + 1, lease_owner = %(claimer)s::text,
        lease_expires_at = %(expires)s, started_at = %(now)s
    FROM picked AS p WHERE s.task_id = p.task_id AND s.name = p.name
), {_log(_CLAIM_LOG)}
SELECT claims.* FROM {_CLAIMS}"""

#: record(outcomes): the accepted outcomes' positions and the task changes.
RECORD_PG = f"""WITH {_RECORD}, {_steps_update(claim=False)}, {_log(_RECORD_LOG)}
SELECT {_ACCEPTED}, changes.* FROM {_CHANGES}"""

#: the steps the record part makes claimable (all locked by it, in tasks still live after it):
#: dependents whose pending_deps reach 0, retries already due. A task's status after the record
#: part comes from a map of ``nxt`` (not a join of two CTEs: see ``_FRESH_CLAIMED``).
_STATUS = "coalesce((SELECT jsonb_object_agg(id, after) FROM nxt) ->> t.id, t.status)"
_FRESH = f"""SELECT 1, task_id, name, state, attempts, NULL, namespace, task_name, version, status, k FROM (
        SELECT f.*, t.namespace, t.name AS task_name, t.version, {_STATUS} AS status
        FROM (SELECT task_id, name, state, attempts, ready_at FROM deps WHERE deps_left = 0
              UNION ALL SELECT task_id, name, 'waiting_retry', attempts, ready_at FROM ok
              WHERE state = 'waiting_retry' AND pending_deps = 0) AS f(task_id, name, state, attempts, k)
        CROSS JOIN LATERAL (SELECT id, namespace, name, version, status FROM tasks WHERE tasks.id = f.task_id
            OFFSET 0) AS t
        WHERE f.state IN ('pending', 'waiting_retry') AND f.k <= %(now)s OFFSET 0
    ) AS v WHERE status IN ({_LIVE})"""
#: the scans skip the tasks the record part ends, and the expired-lease scan the steps it records
#: (the other rows it locks cannot match a scan: recorded steps are running, dependents waiting)
_GONE = f" AND s.task_id NOT IN (SELECT id FROM nxt WHERE after NOT IN ({_LIVE}))"
_RECORDED = " AND (s.task_id, s.name) NOT IN (SELECT task_id, name FROM ok)"

#: record then claim: the accepted outcomes' positions, the task changes, the claims.
RECORD_CLAIM_PG = f"""WITH RECURSIVE {READY_NAMESPACES}, {_RECORD}, {_claim(_GONE + _RECORDED, _GONE, _FRESH)},
{_steps_update(claim=True)}, {_log(_RECORD_LOG, _CLAIM_LOG)}
SELECT {_ACCEPTED}, changes.*, claims.* FROM {_CHANGES}, {_CLAIMS}"""

_CLAIM, _RECORD_ONLY, _RECORD_CLAIM = PgStatement(CLAIM_PG), PgStatement(RECORD_PG), PgStatement(RECORD_CLAIM_PG)


def _claim_params(owner: str, limit: int, now: float, lease_seconds: float) -> dict[str, Any]:
    reclaim = RECLAIM_REASON.format(previous="%s", owner=owner.replace("%", "%%"))  # for SQL format()
    return {"now": now, "limit": limit, "claimer": owner, "expires": now + lease_seconds,
            "claim_reason": CLAIM_REASON.format(owner=owner), "reclaim": reclaim}


def _record_params(outcomes: Sequence[StepOutcome]) -> dict[str, Any]:
    """The outcomes as ONE JSON text (``json.dumps`` in C), not one array parameter per column,
    which the driver renders element by element in Python."""
    rows = []
    for ord_, o in enumerate(outcomes, 1):
        state = StepState(o.state)
        failed = state is StepState.ERROR
        rows.append({
            "ord": ord_, "task_id": o.task_id, "name": o.step, "owner": o.owner, "attempt": int(o.attempt),
            "state": state.value, "at": float(o.at), "reason": o.reason, "results": o.results,
            "error": o.error, "ready_at": float(o.at if o.ready_at is None else o.ready_at),
            "task_error": task_error(o) if failed else None, "why": error_reason(o) if failed else None})
    return {"outcomes": json.dumps(rows, separators=(",", ":"))}


def _batch(outcomes: Sequence[StepOutcome], accepted: Any, ids: Any, before: Any, after: Any) -> StepResultBatch:
    taken = set(accepted or ())
    rejected = tuple(o for i, o in enumerate(outcomes, 1) if i not in taken)
    changes = [TaskChange(i, TaskState(b), TaskState(a))
               for i, b, a in zip(ids or (), before or (), after or (), strict=True)]
    return StepResultBatch(merge_changes(changes), rejected)


def _claims(columns: Sequence[Any]) -> list[Claim]:
    return [Claim(*row) for row in zip(*columns, strict=True)] if columns[0] else []


def claim(conn: sa.Connection, owner: str, limit: int, now: float, lease_seconds: float) -> list[Claim]:
    return _claims(_CLAIM(conn, _claim_params(owner, limit, now, lease_seconds)).one())


def record(conn: sa.Connection, outcomes: Sequence[StepOutcome]) -> StepResultBatch:
    accepted, ids, before, after = _RECORD_ONLY(conn, _record_params(outcomes)).one()
    return _batch(outcomes, accepted, ids, before, after)


def record_and_claim(conn: sa.Connection, outcomes: Sequence[StepOutcome], owner: str, limit: int, now: float,
                     lease_seconds: float) -> tuple[StepResultBatch, list[Claim]]:
    """``record`` then ``claim`` (no namespace caps) as one statement; both parts must have work."""
    params = {**_record_params(outcomes), **_claim_params(owner, limit, now, lease_seconds)}
    row = _RECORD_CLAIM(conn, params).one()
    return _batch(outcomes, row[0], row[1], row[2], row[3]), _claims(row[4:])
