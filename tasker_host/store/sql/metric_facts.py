"""The SQL side of ``Store.metric_facts`` (see :mod:`tasker_host.store.metric_facts`): the
transitions after the cursor's id (and its skipped ids that have appeared since), joined to their
task, step and (for creations) parent task; then one query for the completion times of the
dependencies of the steps that were claimed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.store.metric_facts import Fact, IdCursor, ready_since
from tasker_host.store.sql.schema import steps, tasks, transitions

R, T, S = transitions.c, tasks.c, steps.c
_PARENT = tasks.alias("parent")
_FACTS = (sa.select(R.id, R.task_id, R.step, R.from_state, R.to_state, R.at, T.namespace, T.name, T.version,
                    _PARENT.c.namespace.label("caller"), S.attempts, S.started_at, S.ready_at, S.depends_on)
          .join_from(transitions, tasks, T.id == R.task_id)
          .outerjoin(_PARENT, sa.and_(_PARENT.c.id == T.parent_task_id, R.step.is_(None), R.from_state.is_(None)))
          .outerjoin(steps, sa.and_(S.task_id == R.task_id, S.name == R.step)))


def metric_facts(conn: sa.Connection, cursor: IdCursor | None, now: float, limit: int) -> tuple[list[Fact], IdCursor]:
    if cursor is None:
        return [], IdCursor(conn.execute(sa.select(sa.func.coalesce(sa.func.max(R.id), 0))).scalar_one())
    rows = list(conn.execute(_FACTS.where(R.id > cursor.after).order_by(R.id).limit(limit)))
    if cursor.gaps:
        late = list(conn.execute(_FACTS.where(R.id.in_(sorted(cursor.gaps)))))
        rows = sorted(late + rows, key=lambda r: r.id)
    return _facts(conn, rows), cursor.advance([r.id for r in rows], now)


def _facts(conn: sa.Connection, rows: Sequence[Any]) -> list[Fact]:
    completed = _dependency_completions(conn, rows)
    return [Fact(r.task_id, r.step, r.from_state, r.to_state, r.at, r.namespace, r.name, r.version,
                 caller=r.caller, attempts=r.attempts, started_at=r.started_at,
                 ready_since=ready_since(r.ready_at, r.depends_on or (), completed.get(r.task_id, {}))
                 if r.step is not None else None)
            for r in rows]


def _dependency_completions(conn: sa.Connection, rows: Sequence[Any]) -> dict[str, dict[str, float]]:
    """task id → step → completed_at, for the tasks of claims of steps with dependencies."""
    wanted = sorted({r.task_id for r in rows if r.to_state == "in_progress" and r.depends_on})
    found: dict[str, dict[str, float]] = {}
    for start in range(0, len(wanted), 500):
        query = sa.select(S.task_id, S.name, S.completed_at).where(
            S.task_id.in_(wanted[start:start + 500]), S.completed_at.is_not(None))
        for task_id, name, at in conn.execute(query):
            found.setdefault(task_id, {})[name] = at
    return found
