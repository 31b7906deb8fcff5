"""What a runner loads to run steps of tasks it has not seen: ONE statement for a batch of tasks,
returning only what running needs (:class:`~tasker_host.store.base.RunInputs`).

A runner picking up steps another runner (or the API) left needs the task's identity, context,
frozen template and its done steps' results. Loading whole task records for that (every column of
every step, each JSON column decoded and wrapped) cost ~0.4 ms of Python per 10-step task; this
costs a few microseconds: the done steps' results come aggregated into one JSON object per task,
and the template comes as text, which the runner parses once per distinct text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.store._common import DONE_STEP
from tasker_host.store.base import RunInputs

_DONE = ", ".join(f"'{s.value}'" for s in sorted(DONE_STEP))
_SELECT = ("SELECT t.id, t.namespace, t.name, t.version, t.context, t.correlation_id, {template}, "
           f"(SELECT {{results}} FROM steps AS s WHERE s.task_id = t.id AND s.state IN ({_DONE})), t.traceparent "
           "FROM tasks AS t WHERE {ids}")
_PG = _SELECT.format(template="t.template::text", results="jsonb_object_agg(s.name, s.results)",
                     ids="t.id = ANY(%(ids)s)")
_SQLITE = _SELECT.format(template="t.template", results="json_group_object(s.name, json(s.results))",
                         ids="t.id IN ({marks})")
_SQLITE_TASKS = ("SELECT t.id, t.namespace, t.name, t.version, t.context, t.correlation_id, t.template, "
                 "t.traceparent FROM tasks AS t WHERE t.id IN ({marks})")


def run_inputs(conn: sa.Connection, task_ids: Sequence[str]) -> dict[str, RunInputs]:
    """The run inputs of the tasks among ``task_ids`` that exist (one statement)."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    if conn.dialect.name == "postgresql":  # psycopg decodes jsonb itself
        rows = conn.exec_driver_sql(_PG, {"ids": ids})
        return {r[0]: RunInputs(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or {}, r[8]) for r in rows}
    marks = ", ".join("?" * len(ids))
    try:
        found = conn.exec_driver_sql(_SQLITE.format(marks=marks), tuple(ids)).all()
    except sa.exc.OperationalError:  # "malformed JSON": results SQLite's json() refuses (below)
        return _legacy_sqlite(conn, ids, marks)
    return {r[0]: RunInputs(r[0], r[1], r[2], r[3], _json(r[4]), r[5], r[6], _json(r[7]) or {}, r[8]) for r in found}


def _legacy_sqlite(conn: sa.Connection, ids: list[str], marks: str) -> dict[str, RunInputs]:
    """Results written before the value rule (tasker_host.values) may hold ``Infinity`` or
    ``NaN``, which Python's json reads and SQLite's json() refuses: parsed here, step by step."""
    results: dict[str, dict[str, Any]] = {i: {} for i in ids}
    for task_id, name, text in conn.exec_driver_sql(
            f"SELECT task_id, name, results FROM steps WHERE task_id IN ({marks}) AND state IN ({_DONE})", tuple(ids)):
        results[task_id][name] = _json(text)
    rows = conn.exec_driver_sql(_SQLITE_TASKS.format(marks=marks), tuple(ids))
    return {r[0]: RunInputs(r[0], r[1], r[2], r[3], _json(r[4]), r[5], r[6], results[r[0]], r[7]) for r in rows}


def _json(text: str | float | None) -> Any:
    # (a JSON column has NUMERIC affinity on SQLite: a bare number comes back as one)
    return json.loads(text) if isinstance(text, str) else text
