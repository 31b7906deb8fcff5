"""The SQL side of ``Store.metric_facts`` (see :mod:`tasker_host.store.metric_facts`): the
transitions after the cursor's id (and its skipped ids that have appeared since), joined to their
task, step and (for creations) parent task; then one query for the completion times of the
dependencies of the steps that were claimed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.store.metric_facts import Fact, IdCursor, is_deprecated_creation, ready_since
from tasker_host.store.sql.schema import steps, tasks, transitions

R, T, S = transitions.c, tasks.c, steps.c
_PARENT = tasks.alias("parent")
_FACTS = (sa.select(R.id, R.task_id, R.step, R.from_state, R.to_state, R.at, T.namespace, T.name, T.version,
                    _PARENT.c.namespace.label("caller"), S.attempts, S.started_at, S.ready_at, T.warnings)
          .join_from(transitions, tasks, T.id == R.task_id)
          .outerjoin(_PARENT, sa.and_(_PARENT.c.id == T.parent_task_id, R.step.is_(None), R.from_state.is_(None)))
          .outerjoin(steps, sa.and_(S.task_id == R.task_id, S.name == R.step)))
_CHUNK = 500


def metric_facts(conn: sa.Connection, cursor: IdCursor | None, now: float, limit: int) -> tuple[list[Fact], IdCursor]:
    if cursor is None:
        return [], IdCursor(conn.execute(sa.select(sa.func.coalesce(sa.func.max(R.id), 0))).scalar_one())
    rows = list(conn.execute(_FACTS.where(R.id > cursor.after).order_by(R.id).limit(limit)))
    if cursor.gaps:
        late = list(conn.execute(_FACTS.where(R.id.in_(sorted(cursor.gaps)))))
        rows = sorted(late + rows, key=lambda r: r[0])
    return _facts(conn, rows), cursor.advance([r[0] for r in rows], now)


def _facts(conn: sa.Connection, rows: Sequence[Any]) -> list[Fact]:
    """Facts of the rows; a claim's ``ready_since`` also looks at its dependencies' completions."""
    readiness = _readiness(conn, rows)
    return [Fact(task_id, step, before, after, at, ns, name, version, caller, attempts, started,
                 readiness.get((task_id, step), ready_at) if after == "in_progress" else ready_at,
                 deprecated=step is None and before is None and is_deprecated_creation(warnings))
            for _, task_id, step, before, after, at, ns, name, version, caller, attempts, started, ready_at, warnings
            in rows]


def _readiness(conn: sa.Connection, rows: Sequence[Any]) -> dict[tuple[str, str], float | None]:
    """(task, step) → when the claimed step became runnable, for the claims of steps that have
    dependencies (one query per 500 tasks: their steps' dependencies and completion times)."""
    wanted = sorted({r[1] for r in rows if r[4] == "in_progress" and r[2] is not None})
    found: dict[tuple[str, str], float | None] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = sa.select(S.task_id, S.name, S.depends_on, S.ready_at, S.completed_at).where(
            S.task_id.in_(wanted[start:start + _CHUNK]))
        by_task: dict[str, list[Any]] = {}
        for row in conn.execute(query):
            by_task.setdefault(row.task_id, []).append(row)
        for task_id, task_steps in by_task.items():
            completed = {s.name: s.completed_at for s in task_steps}
            for s in task_steps:
                if s.depends_on:
                    found[(task_id, s.name)] = ready_since(s.ready_at, s.depends_on, completed)
    return found
