"""The task service: create, inspect, cancel, retry and resolve tasks. Validates every request
fully before writing anything. Synchronous (the store is); async callers use a worker thread."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jsonschema

from tasker_host import lifecycle
from tasker_host.audit import Actor, AuditAction, AuditEntry, AuditFilter, AuditRecord
from tasker_host.engine import signals
from tasker_host.engine.audit_trail import AuditTrail
from tasker_host.engine.clock import Clock
from tasker_host.engine.events import EventBus, EventKind, LifecycleEvent
from tasker_host.engine.snapshot import new_steps, snapshot_of
from tasker_host.engine.tracing import Tracing, trace_id_of, traceparent_of
from tasker_host.engine.transition_log import log_action
from tasker_host.errors import (
    AmbiguousTaskIdError,
    InvalidContextError,
    InvalidStateError,
    TaskNotFoundError,
    VersionSunsetError,
)
from tasker_host.models import TaskTemplate
from tasker_host.registry import Registry
from tasker_host.store.base import (
    ClaimRequest,
    CreateResult,
    NewTask,
    StateCounts,
    Store,
    TaskFilter,
    TaskRecord,
)
from tasker_host.store.version_stats import DIRECT, VersionStats
from tasker_host.store.waits import EventRecord, SendResult, SendStatus
from tasker_host.values import require_storable, storable_text

MAX_CORRELATION_ID = 200  # column width


@dataclass(frozen=True, slots=True)
class Parent:
    """Links a child task (created by ``ctx.invoke``) to its caller."""

    task_id: str
    step: str
    invocation_key: str
    correlation_id: str | None
    namespace: str  # the caller's namespace, recorded on the child (drain status)


class TaskService:
    def __init__(self, registry: Registry, store: Store, clock: Clock, events: EventBus,
                 on_created: Callable[..., None] = lambda task, claims=(): None,
                 claim_request: Callable[[], ClaimRequest | None] = lambda: None, tracing: Tracing | None = None):
        self.registry, self.store, self.clock, self.events = registry, store, clock, events
        self.tracing = tracing or Tracing()
        self._on_created = on_created  # the local runner: wake up, start what was claimed
        self._claim_request = claim_request  # the local runner's offer to claim new work at once
        self._validators: dict[str, Any] = {}
        self.audit = AuditTrail(store, clock)  # who did what: written with each change an actor asks for

    # -- creation ----------------------------------------------------------------------------
    def create_task(self, namespace: str, name: str, version: str | None = None,
                    context: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None,
                    parent: Parent | None = None, correlation_id: str | None = None,
                    actor: Actor | None = None, traceparent: str | None = None) -> CreateResult:
        """Resolve, validate (every violation at once) and create a task; nothing is written when
        the request is invalid. The correlation id is the parent's, else the caller's (e.g. an
        ``X-Correlation-Id`` header), else the context's ``correlation_id``, else the task id.
        With an ``actor``, the creation is recorded in the audit trail (with the task).
        ``traceparent``: the caller's trace context (else the current span's, see ``prepare``)."""
        try:
            new = self.prepare(namespace, name, version, context, idempotency_key=idempotency_key,
                               parent=parent, correlation_id=correlation_id, actor=actor,
                               traceparent=traceparent)
        except VersionSunsetError:
            replayed = self.replay(namespace, idempotency_key)
            if replayed is None:
                raise
            return CreateResult(replayed, created=False)
        return self.submit([new])[0]

    def resolve(self, namespace: str, name: str, version: str | None = None) -> TaskTemplate:
        """The version a new task of ``namespace.name@version`` runs on, today (host clock): see
        :mod:`tasker_host.lifecycle` (deprecated versions, sunsets)."""
        return self.registry.resolve(namespace, name, version, today=lifecycle.day_of(self.clock.now()))

    def replay(self, namespace: str, idempotency_key: str | None) -> TaskRecord | None:
        """The task an earlier request with this ``Idempotency-Key`` created (a replay answers it
        even when its version has reached its sunset since), or None."""
        if idempotency_key is None:
            return None
        return self.store.find_idempotent(namespace, idempotency_key)

    def prepare(self, namespace: str, name: str, version: str | None = None,
                context: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None,
                parent: Parent | None = None, correlation_id: str | None = None,
                actor: Actor | None = None, traceparent: str | None = None) -> NewTask:
        """Resolve and validate a request into the task to write (raises; writes nothing), in a
        creation span whose parent is ``traceparent``, else the current span (the API request's);
        the task keeps that span's context (or, untraced, the caller's) for its steps' spans."""
        template = self.resolve(namespace, name, version)
        task_id = str(uuid.uuid4())
        correlation = str((parent.correlation_id if parent else None) or correlation_id
                          or _correlation_of(context or {}) or task_id)
        with self.tracing.creating(template.namespace, template.name, str(template.version), task_id, correlation,
                                   traceparent) as span:
            context = dict(context or {})
            require_storable(context, "context", "context")
            self.validate_context(template, context)
            new = self._new_task(task_id, template, context, idempotency_key, parent, correlation,
                                 traceparent_of(span) or traceparent)
        audit = self.audit.entry(actor, AuditAction.TASK_CREATE, namespace=new.namespace, target=new.id,
                                 details=_creation_details(new), correlation_id=new.correlation_id)
        return new if audit is None else replace(new, audit=audit)

    def submit(self, tasks: Sequence[NewTask]) -> list[CreateResult]:
        """Write prepared tasks in one transaction (the API batches concurrent requests here)."""
        results = self.store.create_tasks(tasks, self.clock.now(), self._claim_request())
        for result in results:
            if result.created:
                self._emit(EventKind.TASK_CREATED, result.task)
                for warning in result.task.warnings:
                    self._emit(EventKind.TASK_DEPRECATED_VERSION, result.task, {
                        **warning, "caller_namespace": result.task.caller_namespace or DIRECT})
                self._on_created(result.task, result.claims)
        return results

    def _new_task(self, task_id: str, t: TaskTemplate, context: dict[str, Any], idempotency_key: str | None,
                  parent: Parent | None, correlation_id: str | None, traceparent: str | None = None) -> NewTask:
        correlation = ((parent.correlation_id if parent else None) or correlation_id
                       or _correlation_of(context) or task_id)
        return NewTask(
            id=task_id, namespace=t.namespace, name=t.name, version=str(t.version), context=context,
            template=snapshot_of(t), steps=new_steps(t),
            provenance=t.provenance.as_dict() if t.provenance else None,
            correlation_id=str(correlation), idempotency_key=idempotency_key,
            parent_task_id=parent.task_id if parent else None,
            parent_step=parent.step if parent else None,
            invocation_key=parent.invocation_key if parent else None, traceparent=traceparent,
            caller_namespace=parent.namespace if parent else None,
            warnings=self._warnings(t),
        )

    def _warnings(self, t: TaskTemplate) -> tuple[dict[str, Any], ...]:
        if not t.is_deprecated:
            return ()
        today = lifecycle.day_of(self.clock.now())
        return (lifecycle.deprecation_warning(t, self.registry.replacement(t.namespace, t.name, t.replaced_by, today)),)

    def validate_context(self, t: TaskTemplate, context: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidContextError` listing every schema violation."""
        if t.context_schema is None:
            return
        validator = self._validators.get(t.full_name)
        if validator is None:
            schema = dict(t.context_schema)
            validator = jsonschema.validators.validator_for(schema)(schema)
            self._validators[t.full_name] = validator
        errors = sorted(validator.iter_errors(context), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        if errors:
            raise InvalidContextError(t.full_name, [
                {"path": "context" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
                 "message": e.message} for e in errors])

    # -- inspection --------------------------------------------------------------------------
    def get_task(self, task_id: str) -> TaskRecord:
        task = self.store.get_task(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task {task_id!r}")
        return task

    def find_task(self, task_id: str) -> TaskRecord | None:
        """The task, or None when there is none (callers that answer "not found" their own way)."""
        return self.store.get_task(task_id)

    def list_tasks(self, query: TaskFilter) -> list[TaskRecord]:
        return self.store.list_tasks(query)

    def expand_task_id(self, ref: str) -> str:
        """The full id of the task ``ref`` names: its id, or a prefix of exactly one task's id
        (the short ids progress lines print). Raises :class:`TaskNotFoundError` (or, when several
        ids start with ``ref``, :class:`AmbiguousTaskIdError` naming some of them)."""
        if not ref or self.store.get_task(ref, with_steps=False) is not None:
            return ref
        found = [t.id for t in self.store.list_tasks(TaskFilter(id_prefix=ref, limit=6))]
        if len(found) > 1:
            raise AmbiguousTaskIdError(ref, found)
        if not found:
            raise TaskNotFoundError(f"no task {ref!r}")
        return found[0]

    def children(self, task_id: str, limit: int) -> list[TaskRecord]:
        """The tasks that ``task_id``'s steps invoked (at most ``limit``, oldest first)."""
        return self.store.list_tasks(TaskFilter(parent_task_id=task_id, limit=limit))

    def version_stats(self, namespaces: Sequence[str] | None, days: float) -> VersionStats:
        """Drain status of the namespaces' versions, exact (one snapshot), with who started each
        in the last ``days`` days (host clock)."""
        stats: VersionStats = self.store.version_stats(namespaces, self.clock.now() - days * 86_400.0)
        return stats

    def count_by_state(self) -> StateCounts:
        """Tasks and unfinished tasks' steps by namespace and state (status pages, metrics)."""
        return self.store.count_by_state()

    def next_ready_at(self) -> float | None:
        """When the next step is due (None: none is); one cheap query, also a database probe."""
        return self.store.next_ready_at()

    # -- actions -----------------------------------------------------------------------------
    def cancel_task(self, task_id: str, reason: str = "cancelled by request", *,
                    actor: Actor | None = None) -> TaskRecord:
        task, reason = self.get_task(task_id), storable_text(reason)
        audit = self._action_entry(actor, AuditAction.TASK_CANCEL, task, {"reason": reason})
        if not self.store.cancel_task(task_id, self.clock.now(), reason, **_audited(audit)):
            raise InvalidStateError(f"task {task_id} is {task.status.value}; only unfinished tasks can be cancelled")
        self._emit(EventKind.TASK_CANCELLED, task)
        return self.get_task(task_id)

    def retry_task(self, task_id: str, reason: str = "retried by request", *,
                   actor: Actor | None = None) -> TaskRecord:
        task, reason = self.get_task(task_id), storable_text(reason)
        audit = self._action_entry(actor, AuditAction.TASK_RETRY, task, {"reason": reason})
        if not self.store.retry_task(task_id, self.clock.now(), reason, **_audited(audit)):
            raise InvalidStateError(f"task {task_id} is {task.status.value}; only tasks in error can be retried")
        log_action(task, "retried")
        self._on_created(None)
        return self.get_task(task_id)

    def resolve_step(self, task_id: str, step: str, results: Any = None,
                     reason: str = "resolved manually", *, actor: Actor | None = None) -> TaskRecord:
        require_storable(results, "results", "results")
        task, reason = self.get_task(task_id), storable_text(reason)
        if step not in {s.name for s in task.steps}:
            raise TaskNotFoundError(f"task {task_id} has no step {step!r}")
        audit = self._action_entry(actor, AuditAction.STEP_RESOLVE, task, {"step": step, "reason": reason})
        if not self.store.resolve_step(task_id, step, self.clock.now(), results, reason, **_audited(audit)):
            state = next(s.state.value for s in task.steps if s.name == step)
            raise InvalidStateError(f"step {step!r} of task {task_id} is {state}; only failed steps can be resolved")
        log_action(task, "resolved", step)
        self._on_created(None)
        return self.get_task(task_id)

    def _action_entry(self, actor: Actor | None, action: AuditAction, task: TaskRecord,
                      details: dict[str, Any]) -> AuditEntry | None:
        return self.audit.entry(actor, action, namespace=task.namespace, target=task.id, details=details,
                                correlation_id=task.correlation_id)

    # -- the audit trail ----------------------------------------------------------------------
    def record_sign_in(self, actor: Actor) -> None:
        """A console sign-in (nothing else is written for it)."""
        self.audit.record(actor, AuditAction.CONSOLE_SIGN_IN)

    def list_audit(self, query: AuditFilter) -> list[AuditRecord]:
        """Newest first (see :class:`~tasker_host.audit.AuditFilter`)."""
        return self.audit.list(query)

    def send_event(self, task_id: str, name: str, payload: Any = None, *, idempotency_key: str | None = None,
                   sender: str | None = None, actor: Actor | None = None) -> SendResult:
        """Check and send an event to a task (see :mod:`tasker_host.engine.signals`); a step it
        woke runs on this host's runner at once. With an ``actor``, a newly stored event is
        recorded in the audit trail (after it: an event is one row the store writes alone; a
        duplicate, refused or invalid send records nothing)."""
        task = self.get_task(task_id)
        result = signals.send_event(self.store, self.clock, task, name, payload,
                                    idempotency_key=idempotency_key, sender=sender)
        if result.woke is not None:
            self._on_created(None)
        if actor is not None and result.status is SendStatus.SENT:
            details = {"event": name, "woke": result.woke, **({"idempotency_key": idempotency_key}
                                                                 if idempotency_key is not None else {})}
            self.audit.record(actor, AuditAction.EVENT_SEND, namespace=task.namespace, target=task_id,
                              details=details, correlation_id=task.correlation_id)
        return result

    def task_events(self, task_id: str) -> list[EventRecord]:
        return self.store.task_events(task_id)

    def _emit(self, kind: EventKind, task: TaskRecord, detail: Mapping[str, Any] | None = None) -> None:
        self.events.emit(LifecycleEvent(kind, task.id, task.namespace, task.name, task.version,
                                        self.clock.now(), correlation_id=task.correlation_id,
                                        detail=detail or {}, trace_id=trace_id_of(task.traceparent)))


def _creation_details(new: NewTask) -> dict[str, Any]:
    """What a creation's audit row says besides the task id (never the context: it may hold
    personal data the trail must not copy)."""
    details: dict[str, Any] = {"template": new.name, "version": new.version}
    if new.idempotency_key is not None:
        details["idempotency_key"] = new.idempotency_key
    return details


def _audited(entry: AuditEntry | None) -> dict[str, Any]:
    """The store call's ``audit`` argument, when there is an entry (stores that predate the
    audit trail, e.g. test doubles, are called as before)."""
    return {} if entry is None else {"audit": entry}


def _correlation_of(context: Mapping[str, Any]) -> str | None:
    """The context's ``correlation_id`` when it can be one: a string or number that fits the column."""
    value = context.get("correlation_id")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_CORRELATION_ID else None
