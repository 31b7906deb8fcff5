"""Step log lines in SQL (see :mod:`tasker_host.store.step_logs`).

An outcome's lines are inserted in the transaction that records it, after the record statement,
and only for the outcomes it applied. Batches without lines take the usual path unchanged (on
PostgreSQL one autocommitted statement); a batch with lines runs in a transaction: the record
statement, then one INSERT of every line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from tasker_host.store.base import StepOutcome, StepResultBatch
from tasker_host.store.sql.schema import step_logs
from tasker_host.store.step_logs import StepLogEntry

R = TypeVar("R")
L = step_logs.c
_INSERT = sa.insert(step_logs)


def has_logs(outcomes: Sequence[StepOutcome]) -> bool:
    return any(o.logs for o in outcomes)


def keeping_logs(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn(conn, outcomes, *args)`` (a record or record-and-claim, whose result is a
    :class:`StepResultBatch` or a tuple starting with one), then the applied outcomes' lines."""

    def run(conn: sa.Connection, outcomes: Sequence[StepOutcome], *args: Any) -> R:
        result = fn(conn, outcomes, *args)
        batch = result[0] if isinstance(result, tuple) else result
        assert isinstance(batch, StepResultBatch)
        insert(conn, outcomes, batch)
        return result

    return run


def insert(conn: sa.Connection, outcomes: Sequence[StepOutcome], batch: StepResultBatch) -> None:
    rejected = {id(o) for o in batch.rejected}
    rows = [{"task_id": o.task_id, "step": o.step, "attempt": o.attempt, "seq": seq, "at": line.at,
             "level": line.level, "message": line.message}
            for o in outcomes if o.logs and id(o) not in rejected for seq, line in enumerate(o.logs)]
    if rows:
        conn.execute(_INSERT, rows)


def read(conn: sa.Connection, task_id: str, step: str | None) -> list[StepLogEntry]:
    query = (sa.select(L.step, L.attempt, L.seq, L.at, L.level, L.message)
             .where(L.task_id == task_id, *([L.step == step] if step is not None else []))
             .order_by(L.id))
    return [StepLogEntry(*row) for row in conn.execute(query)]
