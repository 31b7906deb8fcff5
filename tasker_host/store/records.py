"""The values the :class:`~tasker_host.store.base.Store` takes and returns (see the contract in
:mod:`tasker_host.store.base`, which re-exports them): new tasks and steps, records, claims,
outcomes, workers, filters and counts. Plain frozen (or slotted) dataclasses, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasker_host.audit import AuditEntry
from tasker_host.models import StepState, TaskState
from tasker_host.store.step_logs import LogLine


@dataclass(frozen=True, slots=True)
class NewStep:
    name: str
    depends_on: tuple[str, ...] = ()
    dependents: tuple[str, ...] = ()
    retry_limit: int = 3
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class NewTask:
    id: str
    namespace: str
    name: str
    version: str
    context: Mapping[str, Any]
    template: Mapping[str, Any]  # snapshot of the template document the task runs on
    steps: tuple[NewStep, ...]
    provenance: Mapping[str, Any] | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    parent_task_id: str | None = None
    parent_step: str | None = None
    invocation_key: str | None = None  # unique per parent task: re-attach instead of duplicating
    caller_namespace: str | None = None  # the parent task's namespace (ctx.invoke); None: started directly
    warnings: tuple[Mapping[str, Any], ...] = ()  # e.g. it runs on a deprecated version (lifecycle)
    audit: AuditEntry | None = None  # appended to the audit trail with the task (only if created)
    traceparent: str | None = None  # W3C trace context the task's step spans join (tracing.py)


@dataclass(slots=True)
class StepRecord:
    task_id: str
    name: str
    state: StepState
    attempts: int
    retry_limit: int
    retryable: bool
    depends_on: tuple[str, ...]
    dependents: tuple[str, ...]
    pending_deps: int
    ready_at: float | None = None
    results: Any = None
    last_error: Mapping[str, Any] | None = None
    started_at: float | None = None
    completed_at: float | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    wait: Mapping[str, Any] | None = None  # the step's last wait (see tasker_host.store.waits)


@dataclass(slots=True)
class TaskRecord:
    id: str
    namespace: str
    name: str
    version: str
    status: TaskState
    context: Mapping[str, Any]
    template: Mapping[str, Any]
    created_at: float
    updated_at: float
    provenance: Mapping[str, Any] | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    parent_task_id: str | None = None
    parent_step: str | None = None
    invocation_key: str | None = None
    error: Mapping[str, Any] | None = None
    completed_at: float | None = None
    caller_namespace: str | None = None
    warnings: tuple[Mapping[str, Any], ...] = ()
    steps: list[StepRecord] = field(default_factory=list)  # in template order
    traceparent: str | None = None  # W3C trace context the task's step spans join

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What a runner needs to run a task's steps, and no more: who the task is, its frozen
    template as JSON text (equal texts are equal templates, so a runner parses each text once)
    and the results of its done (complete / resolved) steps."""
    id: str
    namespace: str
    name: str
    version: str
    context: Mapping[str, Any]
    correlation_id: str | None
    template_json: str
    results: Mapping[str, Any]
    traceparent: str | None = None  # W3C trace context the task's step spans join


@dataclass(frozen=True, slots=True)
class CreateResult:
    task: TaskRecord  # as created (before any claim below)
    created: bool  # False: an idempotency / invocation key matched an existing task
    claims: tuple[Claim, ...] = ()  # steps claimed in the same transaction (see ClaimRequest)


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Asks ``create_task`` to also claim ready steps for ``owner`` in the same transaction: the
    runner in the creating process starts a new task's first steps without another round trip."""

    owner: str
    limit: int
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class Claim:
    """A step taken by a worker: enough to run it without another query."""

    task_id: str
    step: str
    attempt: int
    namespace: str
    name: str
    version: str
    #: the step's state before the claim: not "pending" = it may have waited (see resumed)
    previous: str = field(default="pending", compare=False)

    @property
    def resumed(self) -> bool:
        """Claimed from a wait, a retry or an expired lease: it may have waited before, so the
        runner reads its :class:`~tasker_host.store.waits.Wake` (events delivered to it)."""
        return self.previous != "pending"


@dataclass(frozen=True, slots=True)
class StepOutcome:
    task_id: str
    step: str
    owner: str
    attempt: int
    state: StepState  # COMPLETE, WAITING_RETRY, ERROR or CANCELLED
    at: float
    reason: str = ""
    results: Any = None
    error: Mapping[str, Any] | None = None
    ready_at: float | None = None  # WAITING_RETRY: when the backoff ends
    logs: tuple[LogLine, ...] = ()  # what the attempt wrote through ctx.log (stored if applied)
    wait: Mapping[str, Any] | None = None  # WAITING: the wait document (see tasker_host.store.waits)


@dataclass(frozen=True, slots=True)
class NewWorker:
    """A runner registering itself; ``pid_scope`` / ``pid_started`` tell which process ``pid`` is,
    where the platform says (see :mod:`tasker_host.engine.liveness`)."""

    id: str  # the runner's lease owner
    hostname: str
    pid: int
    dead_after: float  # seconds without a heartbeat after which it is presumed dead
    pid_scope: str | None = None  # pids compare only within one scope (Linux: boot and pid namespace)
    pid_started: int | None = None  # when the process started (Linux: clock ticks since boot)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    hostname: str
    pid: int
    dead_after: float
    started_at: float
    heartbeat_at: float
    pid_scope: str | None = None
    pid_started: int | None = None


@dataclass(frozen=True, slots=True)
class LostWorker:
    """A worker ``reap_workers`` removed: why, and how many in-progress steps it left."""

    worker: WorkerRecord
    cause: str
    steps: int


@dataclass(frozen=True, slots=True)
class TaskChange:
    task_id: str
    before: TaskState
    after: TaskState


@dataclass(frozen=True, slots=True)
class StepResultBatch:
    changes: tuple[TaskChange, ...] = ()
    rejected: tuple[StepOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    task_id: str
    step: str | None  # None: a task transition
    from_state: str | None
    to_state: str
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    namespaces: Sequence[str] | None = None  # None: all
    name: str | None = None
    version: str | None = None
    status: TaskState | None = None
    created_after: float | None = None
    created_before: float | None = None
    parent_task_id: str | None = None
    after_id: str | None = None  # cursor: the tasks after this one in the listing's order
    limit: int = 50
    newest_first: bool = False  # order by (created_at, id) descending (the console's listing)
    correlation_id: str | None = None
    context_text: str | None = None  # a substring of the context's JSON text (case-sensitive)
    id_prefix: str | None = None  # ids starting with this text (the CLI's short ids)


@dataclass(frozen=True)
class StateCounts:
    """Tasks by (namespace, status); steps by (namespace, state) of unfinished tasks only (the
    work in the system: the count stays cheap as history grows)."""

    tasks: Counter[tuple[str, str]] = field(default_factory=Counter)
    steps: Counter[tuple[str, str]] = field(default_factory=Counter)

    def tasks_by_state(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_, state), n in self.tasks.items():
            totals[state] += n
        return dict(sorted(totals.items()))


UNFINISHED = (TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.ERROR)
