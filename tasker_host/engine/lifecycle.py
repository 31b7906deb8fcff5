"""The lifecycle events a runner emits, built from what it knows of a task (its
:class:`~tasker_host.engine.runtime.TaskRuntime`): a step started, a committed step outcome, a
task whose status a commit changed."""

from __future__ import annotations

from tasker_host.engine.events import EventKind, LifecycleEvent
from tasker_host.engine.runtime import TaskRuntime
from tasker_host.engine.tracing import trace_id_of
from tasker_host.models import StepState, TaskState
from tasker_host.store.base import Claim, StepOutcome, TaskChange

TASK_EVENTS = {TaskState.IN_PROGRESS: EventKind.TASK_STARTED, TaskState.COMPLETE: EventKind.TASK_COMPLETED,
               TaskState.ERROR: EventKind.TASK_FAILED, TaskState.CANCELLED: EventKind.TASK_CANCELLED}
STEP_EVENTS = {StepState.COMPLETE: EventKind.STEP_COMPLETED, StepState.ERROR: EventKind.STEP_FAILED,
               StepState.WAITING_RETRY: EventKind.STEP_RETRYING, StepState.WAITING: EventKind.STEP_WAITING}


def started(kind: EventKind, rt: TaskRuntime, claim: Claim, at: float) -> LifecycleEvent:
    """``TASK_STARTED`` (no step) or ``STEP_STARTED`` for a claimed step about to run."""
    step = None if kind is EventKind.TASK_STARTED else claim.step
    info = rt.info
    return LifecycleEvent(kind, claim.task_id, info.namespace, info.name, info.version, at, step, claim.attempt,
                          info.correlation_id, trace_id=trace_id_of(rt.traceparent))


def step_ended(outcome: StepOutcome, rt: TaskRuntime) -> LifecycleEvent | None:
    """The event of a committed outcome (none for a cancelled step)."""
    kind = STEP_EVENTS.get(outcome.state)
    if kind is None:
        return None
    info = rt.info
    detail = {"error": outcome.error, "retry_at": outcome.ready_at, "reason": outcome.reason}
    return LifecycleEvent(kind, outcome.task_id, info.namespace, info.name, info.version, outcome.at,
                          outcome.step, outcome.attempt, info.correlation_id, detail,
                          trace_id=trace_id_of(rt.traceparent))


def task_changed(change: TaskChange, rt: TaskRuntime, at: float) -> LifecycleEvent | None:
    kind = TASK_EVENTS.get(change.after)
    if kind is None:
        return None
    info = rt.info
    return LifecycleEvent(kind, change.task_id, info.namespace, info.name, info.version, at,
                          correlation_id=info.correlation_id, trace_id=trace_id_of(rt.traceparent))
