"""The narrow interface between the engine and persistence, and the values that cross it.

Two implementations pass the same contract tests (``tests/store_contract.py``):
:class:`tasker_host.store.memory.MemoryStore` (tests, the no-persistence lower bound) and
:class:`tasker_host.store.sql.SqlStore` (SQLite embedded default, PostgreSQL to scale out).

Time is always passed in by the caller as ``now`` (seconds since the epoch, a float) so the
engine's clock — real or fake — is the only clock. Every state change appends a
:class:`Transition`. Methods that take lists apply them in ONE transaction (batching is what makes
the engine fast); a method returns only after its transaction committed.

Semantics every implementation must follow
-----------------------------------------
* ``create_task``: inserts the task (status ``pending``) and all its steps (state ``pending``,
  ``attempts`` 0, ``ready_at`` = now, ``pending_deps`` = number of dependencies), plus one
  transition per row (from ``None``). With an ``idempotency_key`` already used in the same
  namespace, nothing is written and the existing task is returned with ``created=False``. With an
  ``invocation_key`` (a child task) already used under the same parent task, likewise. With a
  ``ClaimRequest`` and a task actually created, ``claim`` runs in the same transaction and its
  claims are returned in ``CreateResult.claims``.
* ``create_tasks``: ``create_task`` for many tasks in ONE transaction (the API's group commit);
  results in order; a claim request's claims are reported on the first created task.
* ``claim``: atomically takes up to ``limit`` runnable steps for ``owner``. Runnable: task status
  ``pending``/``in_progress``; step state ``pending`` or ``waiting_retry`` with ``pending_deps == 0``
  and ``ready_at <= now``; OR state ``in_progress`` whose lease expired (``lease_expires_at <
  now``: its worker died). Each claimed step gets state ``in_progress``, ``attempts += 1``,
  ``lease_owner = owner``, ``lease_expires_at = now + lease_seconds``, ``started_at = now``; its task
  moves ``pending`` → ``in_progress``. Steps whose lease expired come first (most overdue first),
  then waiting steps, oldest ``ready_at`` first; a reclaim is recorded as an ``in_progress`` →
  ``in_progress`` transition. When ``namespace_limits`` is given, at most that many in-progress
  steps per listed namespace (counting ones already running; reclaiming an expired step does not
  add one, so it is not held back by the cap). On PostgreSQL, rows are locked with ``FOR UPDATE
  SKIP LOCKED`` so concurrent claimers never take the same step.
* ``record_and_claim``: ``record`` then ``claim`` in ONE transaction (the runner's hot path: one
  round trip per batch of finished steps also takes the steps they made ready). ``limit`` 0 claims
  nothing.
* ``renew_leases``: extends ``lease_expires_at`` of the owner's in-progress steps.
* ``record``: applies outcomes of steps. An outcome is applied only if the step is still
  ``in_progress`` with ``lease_owner == outcome.owner`` and ``attempts == outcome.attempt``;
  otherwise it is ignored and reported in ``StepResultBatch.rejected`` (a worker that lost its lease
  never records over another's). Applying:
  - ``complete``: state, ``results``, ``completed_at``; each dependent's ``pending_deps -= 1``; the
    task's remaining-step count drops; when no steps remain the task becomes ``complete``.
  - ``waiting_retry``: state, ``last_error``, ``ready_at`` (when the backoff ends; ``at`` if None).
  - ``error``: state, ``last_error``; the task becomes ``error`` with ``error`` = the step's error
    (plus ``"step": <name>``) if it is ``pending``/``in_progress`` (a second failure keeps the first
    cause).
  - ``cancelled`` (a running step interrupted by cancellation): state only.
  - ``waiting`` (the handler waits for an event or a timer): state, ``wait``, ``ready_at`` = the
    timer (None: none), ``attempts - 1``; an event already sent for it is delivered at once. See
    :mod:`tasker_host.store.waits` (``send_event``, ``wakes``, ``task_events`` too).
  Every applied outcome clears the step's lease and stores its ``logs`` (``step_logs`` returns
  them, oldest first); a rejected outcome's logs are dropped with it. Returns the tasks whose status changed as
  ``TaskChange`` values (one per task). A step named twice in one batch: the second is rejected.
* Final task states are ``complete``, ``cancelled`` and ``resolved_manually``. ``error`` is not
  final: it can be retried, resolved or cancelled. A task's ``completed_at`` is set when it becomes
  ``complete``, ``error`` or ``cancelled`` (cleared when it runs again); ``updated_at`` whenever
  its row changes (status, error, remaining-step count).
* ``cancel_task``: task → ``cancelled`` (unless already final: returns False; a task in ``error``
  can be cancelled); every step not final (pending, waiting_retry, in_progress) → ``cancelled``
  (steps in ``error`` keep their state).
* ``retry_task``: only for a task in ``error``: its ``error`` steps go back to ``pending`` with
  ``attempts`` 0, ``ready_at`` = now, cleared lease; task → ``in_progress``; error cleared.
* ``resolve_step``: for a step in ``error`` (or ``pending``/``waiting_retry``, when its task is in
  ``error``) of a task that is not final: step → ``resolved_manually`` with optional ``results``
  (what dependents will read);
  dependents' ``pending_deps`` drop and the remaining-step count drops as for ``complete``. The task
  then becomes ``complete`` if no steps remain, else ``in_progress`` if it was ``error`` and no other
  step is in ``error``. Returns False (and writes nothing) when the step is not resolvable.
* Audit trail: ``cancel_task`` / ``retry_task`` / ``resolve_step`` append their ``audit`` entry,
  and ``create_task(s)`` each created task's ``NewTask.audit``, in the transaction of the change and
  only when the change happened. ``append_audit`` appends entries by themselves (one transaction).
  ``list_audit``: newest first (by id, which grows with each append), filtered as
  :class:`~tasker_host.audit.AuditFilter` says. Nothing updates or deletes a row.
* ``next_ready_at``: the earliest ``ready_at`` among waiting steps (``pending``/``waiting_retry``
  with ``pending_deps == 0``) of live tasks, possibly in the past (or None) — the engine sleeps
  until then when nothing is runnable. Expired leases are not included.
* ``list_tasks``: ordered by (``created_at``, ``id``), descending with ``newest_first``;
  ``created_after`` is inclusive, ``created_before`` exclusive; ``after_id`` is a cursor (the
  tasks after it in that order; an unknown one gives an empty page); ``context_text`` matches a
  substring of the context as compact JSON (``{"k": "v"}`` text, keys as stored).

Workers (the runners' registrations: how a dead runner's steps are taken over long before its
leases run out)
-----------------------------------------------------------------------------------------------
* ``register``: inserts the worker (``started_at`` = ``heartbeat_at`` = now), replacing a row with
  the same id.
* ``heartbeat``: ``heartbeat_at`` = now, and with ``lease_seconds`` the worker's leases renewed
  (as ``renew_leases``) in the same transaction. Returns False, writing nothing, when the row is
  gone: the worker was presumed dead and reaped, and must stop recording under that id (and must
  not extend the leases its reaper expired).
* ``deregister`` (a clean stop): removes the row; the worker's steps still ``in_progress`` go back
  to ``waiting_retry``, ready now, lease cleared and ``attempts - 1`` (an attempt its own runner
  interrupted does not count against the retry limit), one transition each. Returns how many.
* ``release(owner, now, keep)``: the same release for the owner's ``in_progress`` steps other than
  ``keep`` (``(task_id, step)`` keys), without deregistering: a runner that may have missed the
  answer to a claim (its connection died around the commit) gives back what it is not running.
* ``reap_workers``: in ONE transaction, removes every worker but ``keep`` that is dead: silent for
  longer than its ``dead_after`` (``max(heartbeat_at, watching_since) + dead_after < now``: a
  reaper that was itself cut off from the database until ``watching_since`` gives every worker
  ``dead_after`` to beat again) or ``gone(worker)`` (its process is known to have ended). Their
  ``in_progress`` steps' leases expire at once (``lease_expires_at`` = the earliest of the current
  one, the worker's last heartbeat and now: any claim after that takes them, and the lost attempt
  counts), ``lease_owner`` becomes ``"ID (lost)"`` (should the worker still live, it can neither
  renew nor record them) and ``last_error`` = ``{"type": "WorkerLost", "kind": "lost",
  "message": "attempt N lost with worker ID (cause)"}``. Returns the removed workers by id, each
  with its cause and how many steps it held. Two reapers never remove the same worker; a heartbeat
  racing with a reap either keeps the worker or returns False.
* ``workers``: every registered worker, by id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from tasker_host.audit import AuditEntry, AuditFilter, AuditRecord
from tasker_host.store.records import (  # the store's values, re-exported: callers import them from here
    UNFINISHED,
    Claim,
    ClaimRequest,
    CreateResult,
    LostWorker,
    NewStep,
    NewTask,
    NewWorker,
    RunInputs,
    StateCounts,
    StepOutcome,
    StepRecord,
    StepResultBatch,
    TaskChange,
    TaskFilter,
    TaskRecord,
    Transition,
    WorkerRecord,
)
from tasker_host.store.step_logs import StepLogEntry
from tasker_host.store.waits import EventRecord, NewEvent, SendResult, Wake

__all__ = [
    "Claim", "ClaimRequest", "CreateResult", "Listener", "LostWorker", "NewStep", "NewTask",
    "NewWorker", "RunInputs", "StateCounts", "StepOutcome", "StepRecord", "StepResultBatch",
    "Store", "TaskChange", "TaskFilter", "TaskRecord", "Transition", "UNFINISHED", "WorkerRecord",
]


class Listener(Protocol):
    def close(self) -> None: ...


class Store(Protocol):
    """What the engine and the service need from persistence (see the module docstring)."""

    def create_task(self, task: NewTask, now: float, claim: ClaimRequest | None = None) -> CreateResult: ...

    def create_tasks(self, tasks: Sequence[NewTask], now: float,
                     claim: ClaimRequest | None = None) -> list[CreateResult]: ...  # one transaction

    def claim(self, owner: str, limit: int, now: float, lease_seconds: float,
              namespace_limits: Mapping[str, int] | None = None) -> list[Claim]: ...

    def record_and_claim(self, outcomes: Sequence[StepOutcome], owner: str, limit: int, now: float,
                         lease_seconds: float, namespace_limits: Mapping[str, int] | None = None,
                         ) -> tuple[StepResultBatch, list[Claim]]: ...  # one transaction

    def renew_leases(self, owner: str, now: float, lease_seconds: float) -> int: ...

    def record(self, outcomes: Sequence[StepOutcome]) -> StepResultBatch: ...

    def get_task(self, task_id: str, *, with_steps: bool = True) -> TaskRecord | None: ...

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, TaskRecord]: ...  # with steps

    def run_inputs(self, task_ids: Sequence[str]) -> dict[str, RunInputs]: ...  # existing tasks only

    def step_results(self, task_id: str) -> dict[str, Any]: ...  # completed/resolved steps only

    def list_tasks(self, query: TaskFilter) -> list[TaskRecord]: ...  # without steps

    def find_child(self, parent_task_id: str, invocation_key: str) -> TaskRecord | None: ...

    def cancel_task(self, task_id: str, now: float, reason: str = "", *,
                    audit: AuditEntry | None = None) -> bool: ...

    def retry_task(self, task_id: str, now: float, reason: str = "", *, audit: AuditEntry | None = None) -> bool: ...

    def resolve_step(self, task_id: str, step: str, now: float, results: Any = None,
                     reason: str = "", *, audit: AuditEntry | None = None) -> bool: ...

    def append_audit(self, entries: Sequence[AuditEntry]) -> None: ...  # one transaction

    def list_audit(self, query: AuditFilter) -> list[AuditRecord]: ...  # newest first

    def transitions(self, task_id: str) -> list[Transition]: ...

    def step_logs(self, task_id: str, step: str | None = None) -> list[StepLogEntry]: ...  # in write order

    def next_ready_at(self) -> float | None: ...

    def count_by_state(self) -> StateCounts: ...  # for /metrics and /health/status

    def version_stats(self, namespaces: Sequence[str] | None = None, since: float | None = None) -> Any: ...
    # a store.version_stats.VersionStats of the namespaces' tasks (None: all), read in ONE
    # consistent snapshot: the console, `tasker-host versions`; with ``since``, also who started
    # each version since then (``started_by``)

    def find_idempotent(self, namespace: str, idempotency_key: str) -> TaskRecord | None: ...
    # the task created with that Idempotency-Key in that namespace (a replay's answer), with its steps

    def unfinished_using(self, distribution: str, namespaces: Sequence[str]) -> list[TaskRecord]: ...
    # unfinished tasks (pending, in progress, error) whose template came from ``distribution``
    # (provenance) or that live in one of ``namespaces``; without steps, oldest first (drain-check)

    def metric_facts(self, cursor: Any, now: float, limit: int = 100_000) -> tuple[list[Any], Any]: ...
    # store.metric_facts.Fact values written after ``cursor`` (None: none, a cursor at the end), and the next cursor

    def register(self, worker: NewWorker, now: float) -> None: ...

    def heartbeat(self, worker_id: str, now: float,
                  lease_seconds: float | None = None) -> bool: ...  # False: reaped meanwhile

    def deregister(self, worker_id: str, now: float) -> int: ...  # steps released

    def release(self, owner: str, now: float, keep: Collection[tuple[str, str]] = ()) -> int: ...

    def reap_workers(self, keep: str, now: float, gone: Callable[[WorkerRecord], bool] | None = None,
                     watching_since: float | None = None) -> list[LostWorker]: ...  # one transaction

    def workers(self) -> list[WorkerRecord]: ...

    def send_event(self, event: NewEvent, now: float) -> SendResult: ...  # see store.waits

    def wakes(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Wake]: ...
    # (task id, step) -> its last wait and the events delivered to it, for steps that waited

    def task_events(self, task_id: str) -> list[EventRecord]: ...  # oldest first

    def listen(self, on_work: Callable[[], None]) -> Listener | None:
        """Call ``on_work`` (from any thread) when another process leaves steps ready; None when
        the store has no such wake-ups (one process: the runner's own nudges suffice)."""
        ...

    def close(self) -> None: ...
