"""An in-memory :class:`~tasker_host.store.base.Store`: tests, and the engine's no-persistence
lower bound in benchmarks.

Every call is O(1) or O(batch) (plus O(log n) heap work): runnable steps sit in one heap per
namespace ordered by ``ready_at``; running steps in a heap ordered by lease expiry. Heap entries
are invalidated lazily (each step remembers the sequence number of its current entry) and dropped
when they reach the top. A task that stops being live (``error``) drops its entries as they
surface; :meth:`retry_task` / :meth:`resolve_step` push them again.

One lock guards every method, so worker threads may call it concurrently. JSON values (context,
results, errors) are stored by reference: treat what you pass in and get back as immutable.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tasker_host.audit import AuditEntry, AuditRecord
from tasker_host.models import StepState, TaskState
from tasker_host.store._common import (
    CANCELLABLE_STEP,
    CLAIM_REASON,
    FINAL_TASK,
    LIVE_TASK,
    RECLAIM_REASON,
    WAITING_STEP,
    check_outcomes,
    error_reason,
    merge_changes,
    task_error,
)
from tasker_host.store.base import (
    Claim,
    ClaimRequest,
    CreateResult,
    NewTask,
    StepOutcome,
    StepRecord,
    StepResultBatch,
    TaskChange,
    TaskRecord,
    Transition,
    WorkerRecord,
)
from tasker_host.store.memory_audit import MemoryAudit
from tasker_host.store.memory_metric_facts import MemoryMetricFacts
from tasker_host.store.memory_reads import MemoryReads
from tasker_host.store.memory_step_logs import MemoryStepLogs
from tasker_host.store.memory_waits import MemoryWaits
from tasker_host.store.memory_workers import MemoryWorkers
from tasker_host.store.step_logs import StepLogEntry

Key = tuple[str, str]  # (task_id, step name)
Entry = tuple[float, int, Key]  # (ready_at or lease expiry, sequence, key)


class MemoryStore(MemoryReads, MemoryWorkers, MemoryStepLogs, MemoryMetricFacts, MemoryAudit, MemoryWaits):
    """Dictionaries and heaps behind one lock (see the module docstring); the reads are in
    :mod:`~tasker_host.store.memory_reads`, the worker registrations in
    :mod:`~tasker_host.store.memory_workers`."""

    inline = True  # calls are cheap: the runner makes them on its event loop

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._tasks: dict[str, TaskRecord] = {}  # TaskRecord.steps holds the live StepRecords
        self._steps: dict[Key, StepRecord] = {}
        self._remaining: dict[str, int] = {}
        self._by_idempotency: dict[tuple[str, str], str] = {}
        self._by_invocation: dict[tuple[str, str], str] = {}
        self._transitions: dict[str, list[Transition]] = {}
        self._ready: dict[str, list[Entry]] = {}  # namespace -> heap of waiting steps
        self._ready_token: dict[Key, int] = {}  # key -> sequence of its current ready entry
        self._leases: list[Entry] = []  # heap of running steps by lease expiry
        self._running: dict[str, int] = {}  # namespace -> in-progress steps
        self._owned: dict[str, set[Key]] = {}  # lease owner -> in-progress steps
        self._workers: dict[str, WorkerRecord] = {}  # worker id -> registration
        self._step_logs: dict[str, list[StepLogEntry]] = {}  # task id -> log lines (memory_step_logs)
        self._audit: list[AuditRecord] = []  # the audit trail (memory_audit)
        self._init_waits()  # events sent to tasks (memory_waits)

    # -- creation --------------------------------------------------------------------------
    def create_task(self, task: NewTask, now: float, claim: ClaimRequest | None = None) -> CreateResult:
        result = self._create(task, now)
        if claim is None or not result.created or claim.limit <= 0:
            return result
        claims = self.claim(claim.owner, claim.limit, now, claim.lease_seconds)
        return CreateResult(result.task, True, tuple(claims))

    def create_tasks(self, tasks: Sequence[NewTask], now: float,
                     claim: ClaimRequest | None = None) -> list[CreateResult]:
        results = [self._create(task, now) for task in tasks]
        if claim is not None and claim.limit > 0 and any(r.created for r in results):
            claims = tuple(self.claim(claim.owner, claim.limit, now, claim.lease_seconds))
            first = next(i for i, r in enumerate(results) if r.created)
            results[first] = CreateResult(results[first].task, True, claims)
        return results

    def _create(self, task: NewTask, now: float) -> CreateResult:
        with self._lock:
            existing = None
            if task.idempotency_key is not None:
                existing = self._by_idempotency.get((task.namespace, task.idempotency_key))
            if existing is None and task.parent_task_id is not None and task.invocation_key is not None:
                existing = self._by_invocation.get((task.parent_task_id, task.invocation_key))
            if existing is not None:
                return CreateResult(self._copy(self._tasks[existing], True), created=False)
            if task.id in self._tasks:
                raise ValueError(f"task {task.id} already exists")
            steps = [
                StepRecord(task_id=task.id, name=s.name, state=StepState.PENDING, attempts=0,
                           retry_limit=s.retry_limit, retryable=s.retryable, depends_on=tuple(s.depends_on),
                           dependents=tuple(s.dependents), pending_deps=len(s.depends_on), ready_at=now)
                for s in task.steps
            ]
            record = TaskRecord(
                id=task.id, namespace=task.namespace, name=task.name, version=task.version,
                status=TaskState.PENDING, context=task.context, template=task.template, created_at=now,
                updated_at=now, provenance=task.provenance, correlation_id=task.correlation_id,
                idempotency_key=task.idempotency_key, parent_task_id=task.parent_task_id,
                parent_step=task.parent_step, invocation_key=task.invocation_key, steps=steps,
                caller_namespace=task.caller_namespace, warnings=tuple(task.warnings),
                traceparent=task.traceparent)
            self._tasks[task.id] = record
            self._remaining[task.id] = len(steps)
            if task.idempotency_key is not None:
                self._by_idempotency[(task.namespace, task.idempotency_key)] = task.id
            if task.parent_task_id is not None and task.invocation_key is not None:
                self._by_invocation[(task.parent_task_id, task.invocation_key)] = task.id
            log = self._transitions[task.id] = [Transition(task.id, None, None, TaskState.PENDING.value, now)]
            for s in steps:
                self._steps[(task.id, s.name)] = s
                log.append(Transition(task.id, s.name, None, StepState.PENDING.value, now))
                if s.pending_deps == 0:
                    self._push_ready(s, task.namespace)
            self._keep_audit(task.audit)
            return CreateResult(self._copy(record, True), created=True)

    # -- claiming --------------------------------------------------------------------------
    def claim(self, owner: str, limit: int, now: float, lease_seconds: float,
              namespace_limits: Mapping[str, int] | None = None) -> list[Claim]:
        with self._lock:
            claims: list[Claim] = []
            # steps whose worker died first: they are overdue, and already count as running
            leases = self._leases
            while leases and len(claims) < limit and leases[0][0] < now:
                expires, _, key = heapq.heappop(leases)
                step = self._steps[key]
                if step.state is not StepState.IN_PROGRESS or step.lease_expires_at != expires:
                    continue
                task = self._tasks[key[0]]
                if task.status not in LIVE_TASK:
                    continue  # pushed again if the task becomes live again
                previous = step.lease_owner
                self._owned.get(previous or "", set()).discard(key)
                reason = RECLAIM_REASON.format(previous=previous, owner=owner)
                claims.append(self._take(task, step, owner, now, lease_seconds, reason))
            if len(claims) < limit:
                self._claim_ready(claims, owner, limit, now, lease_seconds, namespace_limits)
            return claims

    def _claim_ready(self, claims: list[Claim], owner: str, limit: int, now: float, lease_seconds: float,
                     namespace_limits: Mapping[str, int] | None) -> None:
        """Namespaces take turns (each one's oldest ready step, then each one's next ...), as the
        SQL store's fair claims do."""
        allowance: dict[str, float] = {}
        heads: list[tuple[int, float, int, str]] = []  # (turn, ready_at, seq) of each namespace's oldest
        for namespace, heap in self._ready.items():
            cap = namespace_limits.get(namespace) if namespace_limits else None
            allowance[namespace] = float("inf") if cap is None else cap - self._running.get(namespace, 0)
            if allowance[namespace] > 0 and self._clean(heap) and heap[0][0] <= now:
                heads.append((0, heap[0][0], heap[0][1], namespace))
        heapq.heapify(heads)
        claim_reason = CLAIM_REASON.format(owner=owner)
        while heads and len(claims) < limit:
            turn, _, _, namespace = heapq.heappop(heads)
            heap = self._ready[namespace]
            _, _, key = heapq.heappop(heap)  # valid: _clean ran since it was pushed on heads
            del self._ready_token[key]
            step = self._steps[key]
            claims.append(self._take(self._tasks[key[0]], step, owner, now, lease_seconds, claim_reason))
            allowance[namespace] -= 1
            if allowance[namespace] > 0 and self._clean(heap) and heap[0][0] <= now:
                heapq.heappush(heads, (turn + 1, heap[0][0], heap[0][1], namespace))

    def _take(self, task: TaskRecord, step: StepRecord, owner: str, now: float, lease_seconds: float,
              reason: str) -> Claim:
        before = step.state
        if before is not StepState.IN_PROGRESS:
            self._running[task.namespace] = self._running.get(task.namespace, 0) + 1
        step.state = StepState.IN_PROGRESS
        step.attempts += 1
        step.lease_owner = owner
        step.lease_expires_at = now + lease_seconds
        step.started_at = now
        self._owned.setdefault(owner, set()).add((task.id, step.name))
        heapq.heappush(self._leases, (step.lease_expires_at, next(self._seq), (task.id, step.name)))
        log = self._transitions[task.id]
        log.append(Transition(task.id, step.name, before.value, StepState.IN_PROGRESS.value, now, reason))
        if task.status is TaskState.PENDING:
            task.status, task.updated_at = TaskState.IN_PROGRESS, now
            log.append(Transition(task.id, None, TaskState.PENDING.value, TaskState.IN_PROGRESS.value, now,
                                  f"step {step.name} claimed"))
        return Claim(task.id, step.name, step.attempts, task.namespace, task.name, task.version, before.value)

    def renew_leases(self, owner: str, now: float, lease_seconds: float) -> int:
        with self._lock:
            return self._renew(owner, now + lease_seconds)

    def _renew(self, owner: str, expires: float) -> int:
        keys = self._owned.get(owner, ())
        for key in keys:
            self._steps[key].lease_expires_at = expires
            heapq.heappush(self._leases, (expires, next(self._seq), key))
        return len(keys)

    # -- outcomes --------------------------------------------------------------------------
    def record_and_claim(self, outcomes: Sequence[StepOutcome], owner: str, limit: int, now: float,
                         lease_seconds: float, namespace_limits: Mapping[str, int] | None = None,
                         ) -> tuple[StepResultBatch, list[Claim]]:
        batch = self.record(outcomes) if outcomes else StepResultBatch()
        claims = self.claim(owner, limit, now, lease_seconds, namespace_limits) if limit > 0 else []
        return batch, claims

    def record(self, outcomes: Sequence[StepOutcome]) -> StepResultBatch:
        check_outcomes(outcomes)
        with self._lock:
            changes: list[TaskChange] = []
            rejected: list[StepOutcome] = []
            for o in outcomes:
                step = self._steps.get((o.task_id, o.step))
                if (step is None or step.state is not StepState.IN_PROGRESS or step.lease_owner != o.owner
                        or step.attempts != o.attempt):
                    rejected.append(o)
                    continue
                task = self._tasks[o.task_id]
                state = StepState(o.state)
                self._stop_running(task, step)
                self._transitions[task.id].append(
                    Transition(task.id, step.name, StepState.IN_PROGRESS.value, state.value, o.at, o.reason))
                step.state = state
                self._keep_logs(o)
                if state is StepState.COMPLETE:
                    step.results, step.completed_at = o.results, o.at
                    self._done(task, step, o.at, changes, "all steps complete")
                elif state is StepState.WAITING_RETRY:
                    step.last_error = o.error
                    step.ready_at = o.ready_at if o.ready_at is not None else o.at
                    if step.pending_deps == 0:
                        self._push_ready(step, task.namespace)
                elif state is StepState.WAITING:
                    self._wait_step(task, step, o)
                elif state is StepState.ERROR:
                    step.last_error = o.error
                    if task.status in LIVE_TASK:
                        task.error = task_error(o)
                        task.completed_at = o.at
                        self._set_status(task, TaskState.ERROR, o.at, error_reason(o), changes)
            return StepResultBatch(merge_changes(changes), tuple(rejected))

    def _done(self, task: TaskRecord, step: StepRecord, now: float, changes: list[TaskChange],
              reason: str) -> None:
        """``step`` just became complete / resolved: unblock dependents, maybe complete the task."""
        for name in step.dependents:
            dependent = self._steps[(task.id, name)]
            dependent.pending_deps -= 1
            if dependent.pending_deps == 0 and dependent.state in WAITING_STEP:
                self._push_ready(dependent, task.namespace)
        self._remaining[task.id] -= 1
        if self._remaining[task.id] == 0 and task.status not in FINAL_TASK:
            task.completed_at, task.error = now, None
            self._set_status(task, TaskState.COMPLETE, now, reason, changes)

    def _set_status(self, task: TaskRecord, status: TaskState, now: float, reason: str,
                    changes: list[TaskChange]) -> None:
        changes.append(TaskChange(task.id, task.status, status))
        self._transitions[task.id].append(Transition(task.id, None, task.status.value, status.value, now, reason))
        task.status, task.updated_at = status, now

    def _stop_running(self, task: TaskRecord, step: StepRecord) -> None:
        """``step`` leaves ``in_progress``: drop its lease and its place in the running counts."""
        if step.state is StepState.IN_PROGRESS:
            self._running[task.namespace] -= 1
            self._owned.get(step.lease_owner or "", set()).discard((task.id, step.name))
        step.lease_owner = step.lease_expires_at = None

    # -- operator actions ------------------------------------------------------------------
    def cancel_task(self, task_id: str, now: float, reason: str = "", *, audit: AuditEntry | None = None) -> bool:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status in FINAL_TASK:
                return False
            log = self._transitions[task_id]
            for step in task.steps:
                if step.state in CANCELLABLE_STEP:
                    log.append(Transition(task_id, step.name, step.state.value, StepState.CANCELLED.value, now,
                                          reason))
                    self._stop_running(task, step)
                    step.state = StepState.CANCELLED
            task.completed_at = now
            self._set_status(task, TaskState.CANCELLED, now, reason, [])
            self._keep_audit(audit)
            return True

    def retry_task(self, task_id: str, now: float, reason: str = "", *, audit: AuditEntry | None = None) -> bool:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status is not TaskState.ERROR:
                return False
            log = self._transitions[task_id]
            for step in task.steps:
                if step.state is StepState.ERROR:
                    log.append(Transition(task_id, step.name, step.state.value, StepState.PENDING.value, now,
                                          reason))
                    step.state, step.attempts, step.ready_at = StepState.PENDING, 0, now
                    step.lease_owner = step.lease_expires_at = None
            task.error = task.completed_at = None
            self._set_status(task, TaskState.IN_PROGRESS, now, reason, [])
            self._revive(task)
            self._keep_audit(audit)
            return True

    def resolve_step(self, task_id: str, step: str, now: float, results: Any = None, reason: str = "", *,
                     audit: AuditEntry | None = None) -> bool:
        with self._lock:
            task = self._tasks.get(task_id)
            record = self._steps.get((task_id, step))
            if task is None or record is None or task.status in FINAL_TASK:
                return False
            if not (record.state is StepState.ERROR
                    or (record.state in WAITING_STEP and task.status is TaskState.ERROR)):
                return False
            self._transitions[task_id].append(
                Transition(task_id, step, record.state.value, StepState.RESOLVED_MANUALLY.value, now, reason))
            record.state, record.results, record.completed_at = StepState.RESOLVED_MANUALLY, results, now
            record.lease_owner = record.lease_expires_at = None
            self._done(task, record, now, [], reason)
            if task.status is TaskState.ERROR and not any(s.state is StepState.ERROR for s in task.steps):
                task.error = task.completed_at = None
                self._set_status(task, TaskState.IN_PROGRESS, now, reason, [])
                self._revive(task)
            self._keep_audit(audit)
            return True

    def _revive(self, task: TaskRecord) -> None:
        """The task is live again: re-index its steps (their entries were dropped meanwhile)."""
        for step in task.steps:
            if step.state in WAITING_STEP and step.pending_deps == 0:
                self._push_ready(step, task.namespace)
            elif step.state is StepState.IN_PROGRESS and step.lease_expires_at is not None:
                heapq.heappush(self._leases, (step.lease_expires_at, next(self._seq), (task.id, step.name)))

    # -- wake-ups ------------------------------------------------------------------------
    def next_ready_at(self) -> float | None:
        with self._lock:
            tops = [heap[0][0] for heap in self._ready.values() if self._clean(heap)]
            return min(tops, default=None)

    def listen(self, on_work: Callable[[], None]) -> None:
        return None  # one process: the runner's own nudges reach it

    def close(self) -> None:
        pass

    # -- internals -------------------------------------------------------------------------
    def _push_ready(self, step: StepRecord, namespace: str) -> None:
        if step.ready_at is None:
            return  # waiting without a timer: an event makes it ready
        seq = next(self._seq)
        key = (step.task_id, step.name)
        self._ready_token[key] = seq
        heapq.heappush(self._ready.setdefault(namespace, []), (step.ready_at, seq, key))

    def _clean(self, heap: list[Entry]) -> bool:
        """Drop stale entries from the top of ``heap``; True when a valid entry is on top."""
        while heap:
            _, seq, key = heap[0]
            step = self._steps[key]
            if (self._ready_token.get(key) == seq and step.state in WAITING_STEP and step.pending_deps == 0
                    and self._tasks[key[0]].status in LIVE_TASK):
                return True
            heapq.heappop(heap)
            if self._ready_token.get(key) == seq:
                del self._ready_token[key]
        return False
