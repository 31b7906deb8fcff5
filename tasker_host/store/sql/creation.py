"""The SQL store's task creation: all rows of a batch of new tasks in ONE insert (on PostgreSQL
one statement, which can also notify the runners); a task whose idempotency / invocation key is
taken is answered with the existing task and writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.store.base import CreateResult, NewTask, TaskRecord
from tasker_host.store.sql import audit as sql_audit
from tasker_host.store.sql import work
from tasker_host.store.sql.batch import InsertAll, ManyInsert
from tasker_host.store.sql.notify import NOTIFY_SELECT
from tasker_host.store.sql.reads import existing
from tasker_host.store.sql.rows import keys_of, new_rows
from tasker_host.store.sql.schema import steps, tasks

_INSERT_TASK = InsertAll(ManyInsert(tasks, [c.key for c in tasks.c]), ManyInsert(steps, [c.key for c in steps.c]),
                         work.INSERT_TRANSITIONS, sql_audit.INSERT)  # audit: each created task's NewTask.audit


def create_rows(conn: sa.Connection, new: Sequence[NewTask], now: float, *, wake: bool = False) -> list[CreateResult]:
    """Create tasks with ONE insert for all their rows (PostgreSQL: one statement, notifying
    the runners when ``wake``); a task whose idempotency / invocation key exists already, or
    repeats an earlier one of the batch, is answered with that task and writes nothing."""
    results: list[CreateResult] = []
    fresh: dict[tuple[Any, ...], TaskRecord] = {}
    rows: tuple[list[Any], list[Any], list[Any], list[Any]] = ([], [], [], [])
    for task in new:
        keys = keys_of(task)
        earlier = next((fresh[k] for k in keys if k in fresh), None)
        found = earlier or (existing(conn, task) if keys else None)
        if found is not None:
            results.append(CreateResult(found, created=False))
            continue
        record, task_row, step_rows, log = new_rows(task, now)
        rows[0].append(task_row)
        rows[1].extend(step_rows)
        rows[2].extend(log)
        if task.audit is not None:
            rows[3].append(sql_audit.row(task.audit))
        fresh.update(dict.fromkeys(keys, record))
        results.append(CreateResult(record, created=True))
    if rows[0]:
        _INSERT_TASK(conn, *rows, then=NOTIFY_SELECT if wake else None)  # PostgreSQL: one statement
    return results
