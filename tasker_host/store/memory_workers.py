"""The worker registrations of :class:`~tasker_host.store.memory.MemoryStore` (the semantics are
in :mod:`tasker_host.store.base`, "Workers").

A mixin: it works on the store's own lock, steps, lease heap and indexes, so :mod:`memory` stays
about tasks and steps.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Collection
from dataclasses import replace

from tasker_host.models import StepState
from tasker_host.store._common import LOST_OWNER, RELEASE_REASON, gone_cause, lost_error, silence_cause, worker_dead
from tasker_host.store.base import LostWorker, NewWorker, StepRecord, TaskRecord, Transition, WorkerRecord


class MemoryWorkers:
    """Worker methods of the memory store (on MemoryStore's attributes, declared here)."""

    _lock: threading.Lock
    _seq: itertools.count[int]
    _workers: dict[str, WorkerRecord]
    _tasks: dict[str, TaskRecord]
    _steps: dict[tuple[str, str], StepRecord]
    _owned: dict[str, set[tuple[str, str]]]
    _leases: list[tuple[float, int, tuple[str, str]]]
    _transitions: dict[str, list[Transition]]
    _stop_running: Callable[[TaskRecord, StepRecord], None]
    _push_ready: Callable[[StepRecord, str], None]
    _renew: Callable[[str, float], int]

    def register(self, worker: NewWorker, now: float) -> None:
        with self._lock:
            self._workers[worker.id] = WorkerRecord(
                worker.id, worker.hostname, worker.pid, worker.dead_after, now, now, worker.pid_scope,
                worker.pid_started)

    def heartbeat(self, worker_id: str, now: float, lease_seconds: float | None = None) -> bool:
        with self._lock:
            if worker_id not in self._workers:
                return False
            self._workers[worker_id] = replace(self._workers[worker_id], heartbeat_at=now)
            if lease_seconds is not None:
                self._renew(worker_id, now + lease_seconds)
            return True

    def workers(self) -> list[WorkerRecord]:
        with self._lock:
            return sorted(self._workers.values(), key=lambda w: w.id)

    def deregister(self, worker_id: str, now: float) -> int:
        with self._lock:
            self._workers.pop(worker_id, None)
            return self._release(worker_id, now, set())

    def release(self, owner: str, now: float, keep: Collection[tuple[str, str]] = ()) -> int:
        with self._lock:
            return self._release(owner, now, set(keep))

    def _release(self, owner: str, now: float, keep: set[tuple[str, str]]) -> int:
        released = 0
        for key in sorted(self._owned.get(owner, set()) - keep):
            step, task = self._steps[key], self._tasks[key[0]]
            self._stop_running(task, step)
            self._transitions[task.id].append(Transition(
                task.id, step.name, StepState.IN_PROGRESS.value, StepState.WAITING_RETRY.value, now,
                RELEASE_REASON.format(owner=owner)))
            step.state, step.ready_at, step.attempts = StepState.WAITING_RETRY, now, max(0, step.attempts - 1)
            self._push_ready(step, task.namespace)
            released += 1
        return released

    def reap_workers(self, keep: str, now: float, gone: Callable[[WorkerRecord], bool] | None = None,
                     watching_since: float | None = None) -> list[LostWorker]:
        with self._lock:
            table = self._workers
            lost = []
            for worker in sorted(table.values(), key=lambda w: w.id):
                if worker.id == keep:
                    continue
                if worker_dead(worker, now, watching_since):
                    cause = silence_cause(worker)
                elif gone is not None and gone(worker):
                    cause = gone_cause(worker)
                else:
                    continue
                del table[worker.id]
                lost.append(LostWorker(worker, cause, self._expire_leases(worker, cause, now)))
            return lost

    def _expire_leases(self, worker: WorkerRecord, cause: str, now: float) -> int:
        expires, lost = min(worker.heartbeat_at, now), LOST_OWNER.format(owner=worker.id)
        keys = sorted(self._owned.pop(worker.id, ()))
        for key in keys:
            step = self._steps[key]
            step.lease_owner = lost
            step.lease_expires_at = min(step.lease_expires_at or expires, expires)
            step.last_error = lost_error(step.attempts, worker.id, cause)
            heapq.heappush(self._leases, (step.lease_expires_at, next(self._seq), key))
        self._owned.setdefault(lost, set()).update(keys)
        return len(keys)
