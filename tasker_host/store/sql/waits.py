"""The SQL store's waits and events (semantics in :mod:`tasker_host.store.waits`).

Each function runs inside the caller's write transaction and locks rows in the order the operator
actions do (:mod:`tasker_host.store.sql.actions`): a task's steps (by name), then the task. So an
event and the wait it answers never miss each other: whichever commits second sees the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasker_host.models import StepState, TaskState
from tasker_host.store._common import ENDED_TASK
from tasker_host.store.base import StepOutcome, StepResultBatch
from tasker_host.store.sql import work
from tasker_host.store.sql.schema import Json, steps, task_events, tasks
from tasker_host.store.waits import EventRecord, NewEvent, SendResult, SendStatus, Wake

S, T, E = steps.c, tasks.c, task_events.c
_EVENT_COLUMNS = (E.id, E.task_id, E.name, E.payload, E.idempotency_key, E.sender, E.created_at, E.step,
                  E.delivered_at)
_WAITING = StepState.WAITING.value


def _event(row: Any) -> EventRecord:
    return EventRecord(*row)


def _lock_steps(conn: sa.Connection, task_id: str) -> dict[str, Any]:
    """The task's steps (name -> row), locked on PostgreSQL (in name order)."""
    query = (sa.select(S.name, S.state, S.attempts, S.lease_owner, S.wait, S.position)
             .where(S.task_id == task_id).order_by(S.name))
    return {r.name: r for r in conn.execute(query.with_for_update() if conn.dialect.name != "sqlite" else query)}


def _lock_task(conn: sa.Connection, task_id: str) -> Any:
    query = sa.select(T.status).where(T.id == task_id)
    return conn.execute(query.with_for_update() if conn.dialect.name != "sqlite" else query).first()


def _lock(conn: sa.Connection, task_id: str) -> tuple[Any, dict[str, Any]]:
    """The task's steps (name -> row) and then the task, locked on PostgreSQL."""
    rows = _lock_steps(conn, task_id)
    return _lock_task(conn, task_id), rows


def _undelivered(conn: sa.Connection, task_id: str, name: str) -> Any:
    return conn.execute(sa.select(E.id).where(E.task_id == task_id, E.name == name, E.step.is_(None))
                        .order_by(E.id).limit(1)).scalar()


def _deliver(conn: sa.Connection, event_id: int, task_id: str, step: str, wait: dict[str, Any], now: float) -> None:
    """Hand event ``event_id`` to the waiting ``step``: runnable now, its wait naming the event."""
    conn.execute(sa.update(task_events).where(E.id == event_id).values(step=step, delivered_at=now))
    conn.execute(sa.update(steps).where(S.task_id == task_id, S.name == step).values(
        wait=sa.bindparam("w", {**wait, "delivered": event_id}, type_=Json), ready_at=now))


# -- waits ---------------------------------------------------------------------------------------
def record_waits(conn: sa.Connection, outcomes: Sequence[StepOutcome]) -> tuple[StepResultBatch, int]:
    """Apply ``waiting`` outcomes (guarded like every outcome: the step's lease and attempt); also
    how many took an event sent earlier (those steps are ready now)."""
    rejected: list[StepOutcome] = []
    log: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    delivered = 0
    by_task: dict[str, list[StepOutcome]] = {}
    for o in outcomes:
        by_task.setdefault(o.task_id, []).append(o)
    locked = {task_id: _lock_steps(conn, task_id) for task_id in sorted(by_task)}  # steps, then tasks:
    for task_id in sorted(by_task):  # the order of the hot paths (no deadlock with a batch's record)
        _lock_task(conn, task_id)
    for task_id, rows in locked.items():
        for o in by_task[task_id]:
            row = rows.get(o.step)
            if (row is None or (o.task_id, o.step) in seen or row.state != StepState.IN_PROGRESS.value
                    or row.lease_owner != o.owner or row.attempts != o.attempt):
                rejected.append(o)
                continue
            seen.add((o.task_id, o.step))
            wait = {**(o.wait or {}), "delivered": None}
            conn.execute(sa.update(steps).where(S.task_id == o.task_id, S.name == o.step).values(
                state=_WAITING, attempts=S.attempts - 1, lease_owner=None, lease_expires_at=None,
                wait=sa.bindparam("w", wait, type_=Json), ready_at=o.ready_at))
            log.append(work.transition(o.task_id, o.step, StepState.IN_PROGRESS.value, _WAITING, o.at, o.reason))
            event = wait.get("event")
            if event and (found := _undelivered(conn, o.task_id, event)) is not None:
                _deliver(conn, found, o.task_id, o.step, wait, o.at)
                delivered += 1
    if log:
        work.INSERT_TRANSITIONS(conn, log)
    return StepResultBatch(rejected=tuple(rejected)), delivered


# -- events --------------------------------------------------------------------------------------
def existing_event(conn: sa.Connection, event: NewEvent) -> EventRecord | None:
    if event.idempotency_key is None:
        return None
    row = conn.execute(sa.select(*_EVENT_COLUMNS).where(
        E.task_id == event.task_id, E.name == event.name, E.idempotency_key == event.idempotency_key)).first()
    return _event(row) if row is not None else None


def send_event(conn: sa.Connection, event: NewEvent, now: float) -> SendResult:
    """Store ``event`` and deliver it to a step waiting for its name, if one does."""
    if (original := existing_event(conn, event)) is not None:
        return SendResult(SendStatus.DUPLICATE, original)
    task, rows = _lock(conn, event.task_id)
    if task is None:
        return SendResult(SendStatus.NO_TASK)
    if TaskState(task.status) in ENDED_TASK:
        return SendResult(SendStatus.ENDED, task_status=task.status)
    event_id = conn.execute(sa.insert(task_events).values(
        task_id=event.task_id, name=event.name, payload=sa.bindparam("p", event.payload, type_=Json),
        idempotency_key=event.idempotency_key, sender=event.sender, created_at=now).returning(E.id)).scalar_one()
    waiting = sorted((r.position, r.name) for r in rows.values()
                     if r.state == _WAITING and (r.wait or {}).get("event") == event.name
                     and (r.wait or {}).get("delivered") is None)
    woke = None
    if waiting:
        woke = waiting[0][1]
        _deliver(conn, event_id, event.task_id, woke, dict(rows[woke].wait), now)
    record = EventRecord(event_id, event.task_id, event.name, event.payload, event.idempotency_key, event.sender,
                         now, woke, now if woke else None)
    return SendResult(SendStatus.SENT, record, woke, task.status)


def wakes(conn: sa.Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Wake]:
    if not keys:
        return {}
    wanted = sorted(set(keys))
    found = {(r.task_id, r.name): r.wait for r in conn.execute(
        sa.select(S.task_id, S.name, S.wait).where(sa.tuple_(S.task_id, S.name).in_(wanted), S.wait.is_not(None)))}
    if not found:
        return {}
    events: dict[tuple[str, str], list[EventRecord]] = {}
    query = (sa.select(*_EVENT_COLUMNS).where(E.task_id.in_(sorted({k[0] for k in found})), E.step.is_not(None))
             .order_by(E.id))
    for row in conn.execute(query):
        if (row.task_id, row.step) in found:
            events.setdefault((row.task_id, row.step), []).append(_event(row))
    return {key: Wake(wait, tuple(events.get(key, ()))) for key, wait in found.items()}


def task_events_of(conn: sa.Connection, task_id: str) -> list[EventRecord]:
    return [_event(r) for r in conn.execute(sa.select(*_EVENT_COLUMNS).where(E.task_id == task_id).order_by(E.id))]
