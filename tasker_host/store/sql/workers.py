"""The SQL store's worker registrations (the semantics are in :mod:`tasker_host.store.base`,
"Workers"): register, heartbeat, deregister, reap. Each function runs inside the caller's write
transaction.

PostgreSQL locking: a reap locks the workers it looks at with ``SKIP LOCKED`` (a worker whose
heartbeat is being written is alive; a concurrent reaper has the others), then their running
steps in key order (the order ``record`` locks steps in). A heartbeat waiting on a reaper's lock
finds the row gone afterwards and returns False.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy as sa

from tasker_host.models import StepState
from tasker_host.store._common import LOST_OWNER, RELEASE_REASON, gone_cause, lost_error, silence_cause, worker_dead
from tasker_host.store.base import LostWorker, NewWorker, WorkerRecord
from tasker_host.store.sql import work
from tasker_host.store.sql.batch import Many
from tasker_host.store.sql.schema import Json, steps, workers

S, W = steps.c, workers.c
_B = sa.bindparam
_COLUMNS = [W.id, W.hostname, W.pid, W.dead_after, W.started_at, W.heartbeat_at, W.pid_scope, W.pid_started]
_HELD = sa.and_(work.RUNNING, S.task_id == _B("k_task"), S.name == _B("k_name"), S.lease_owner == _B("k_owner"))
_EXPIRE = Many(sa.update(steps).where(_HELD).values(
    lease_owner=_B("lost"), lease_expires_at=_B("expires"), last_error=_B("error", type_=Json)))
_RELEASE = Many(sa.update(steps).where(_HELD).values(
    state=StepState.WAITING_RETRY.value, ready_at=_B("now"), attempts=_B("attempts"), lease_owner=None,
    lease_expires_at=None))


def register(conn: sa.Connection, worker: NewWorker, now: float) -> None:
    conn.execute(sa.delete(workers).where(W.id == worker.id))
    conn.execute(sa.insert(workers).values(
        id=worker.id, hostname=worker.hostname, pid=worker.pid, pid_scope=worker.pid_scope,
        pid_started=worker.pid_started, dead_after=worker.dead_after, started_at=now, heartbeat_at=now))


def heartbeat(conn: sa.Connection, worker_id: str, now: float, lease_seconds: float | None = None) -> bool:
    """The heartbeat; with ``lease_seconds``, also the worker's lease renewal (only while it is
    registered: a reaped worker must not extend the leases its reaper just expired)."""
    alive = conn.execute(sa.update(workers).where(W.id == worker_id).values(heartbeat_at=now)).rowcount == 1
    if alive and lease_seconds is not None:
        work.renew_leases(conn, worker_id, now, lease_seconds)
    return alive


def list_workers(conn: sa.Connection) -> list[WorkerRecord]:
    return [WorkerRecord(*row) for row in conn.execute(sa.select(*_COLUMNS).order_by(W.id))]


def deregister(conn: sa.Connection, worker_id: str, now: float) -> int:
    conn.execute(sa.delete(workers).where(W.id == worker_id))
    return release(conn, worker_id, now)


def release(conn: sa.Connection, owner: str, now: float, keep: Collection[tuple[str, str]] = ()) -> int:
    """The owner's running steps other than ``keep`` go back to waiting, their attempt uncounted."""
    kept = set(keep)
    held = [r for r in _held_steps(conn, [owner]) if (r.task_id, r.name) not in kept]
    _RELEASE(conn, [{"k_task": r.task_id, "k_name": r.name, "k_owner": owner, "now": now,
                     "attempts": max(0, r.attempts - 1)} for r in held])
    reason = RELEASE_REASON.format(owner=owner)
    work.INSERT_TRANSITIONS(conn, [work.transition(r.task_id, r.name, StepState.IN_PROGRESS.value,
                                                   StepState.WAITING_RETRY.value, now, reason) for r in held])
    return len(held)


def reap(conn: sa.Connection, keep: str, now: float, gone: Callable[[WorkerRecord], bool] | None,
         watching_since: float | None) -> list[LostWorker]:
    query = sa.select(*_COLUMNS).where(W.id != keep).order_by(W.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    dead: list[tuple[WorkerRecord, str]] = []
    for worker in (WorkerRecord(*row) for row in conn.execute(query)):
        if worker_dead(worker, now, watching_since):
            dead.append((worker, silence_cause(worker)))
        elif gone is not None and gone(worker):
            dead.append((worker, gone_cause(worker)))
    if not dead:
        return []
    conn.execute(sa.delete(workers).where(W.id.in_([w.id for w, _ in dead])))
    held = _held_steps(conn, [w.id for w, _ in dead])
    by_worker = {w.id: (w, cause) for w, cause in dead}
    updates = []
    for r in held:
        worker, cause = by_worker[r.lease_owner]
        expires = min(r.lease_expires_at or now, worker.heartbeat_at, now)
        updates.append({"k_task": r.task_id, "k_name": r.name, "k_owner": worker.id, "expires": expires,
                        "lost": LOST_OWNER.format(owner=worker.id), "error": lost_error(r.attempts, worker.id, cause)})
    _EXPIRE(conn, updates)
    counts = {w.id: 0 for w, _ in dead}
    for r in held:
        counts[r.lease_owner] += 1
    return [LostWorker(w, cause, counts[w.id]) for w, cause in dead]


def _held_steps(conn: sa.Connection, owners: list[str]) -> list[Any]:
    """The running steps of ``owners``, locked in key order (PostgreSQL)."""
    query = (sa.select(S.task_id, S.name, S.attempts, S.lease_owner, S.lease_expires_at)
             .where(work.RUNNING, S.lease_owner.in_(owners)).order_by(S.task_id, S.name))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return list(conn.execute(query))
