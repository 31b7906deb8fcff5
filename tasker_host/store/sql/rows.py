"""Rows of a new task (task, steps, transitions), the keys that make a creation idempotent, and
records read back from rows."""

from __future__ import annotations

from typing import Any

from tasker_host.models import StepState, TaskState
from tasker_host.store.base import NewTask, StepRecord, TaskRecord
from tasker_host.store.sql import work


def keys_of(task: NewTask) -> list[tuple[Any, ...]]:
    keys: list[tuple[Any, ...]] = []
    if task.idempotency_key is not None:
        keys.append(("idempotency", task.namespace, task.idempotency_key))
    if task.parent_task_id is not None and task.invocation_key is not None:
        keys.append(("invocation", task.parent_task_id, task.invocation_key))
    return keys


def new_rows(task: NewTask, now: float) -> tuple[TaskRecord, dict[str, Any], list[dict[str, Any]], list[Any]]:
    record = TaskRecord(
        id=task.id, namespace=task.namespace, name=task.name, version=task.version,
        status=TaskState.PENDING, context=task.context, template=task.template, created_at=now,
        updated_at=now, provenance=task.provenance, correlation_id=task.correlation_id,
        idempotency_key=task.idempotency_key, parent_task_id=task.parent_task_id,
        parent_step=task.parent_step, invocation_key=task.invocation_key, traceparent=task.traceparent,
        caller_namespace=task.caller_namespace, warnings=tuple(task.warnings),
        steps=[StepRecord(task_id=task.id, name=s.name, state=StepState.PENDING, attempts=0,
                          retry_limit=s.retry_limit, retryable=s.retryable, depends_on=tuple(s.depends_on),
                          dependents=tuple(s.dependents), pending_deps=len(s.depends_on), ready_at=now)
               for s in task.steps])
    task_row = {
        "id": task.id, "namespace": task.namespace, "name": task.name, "version": task.version,
        "status": TaskState.PENDING.value, "context": dict(task.context), "template": dict(task.template),
        "provenance": dict(task.provenance) if task.provenance is not None else None,
        "correlation_id": task.correlation_id, "idempotency_key": task.idempotency_key,
        "parent_task_id": task.parent_task_id, "parent_step": task.parent_step,
        "invocation_key": task.invocation_key, "error": None, "steps_remaining": len(task.steps),
        "created_at": now, "updated_at": now, "completed_at": None, "traceparent": task.traceparent,
        "caller_namespace": task.caller_namespace, "warnings": [dict(w) for w in task.warnings] or None}
    step_rows = [
        {"task_id": task.id, "name": s.name, "namespace": task.namespace, "position": i,
         "state": StepState.PENDING.value,
         "attempts": 0, "retry_limit": s.retry_limit, "retryable": s.retryable,
         "depends_on": list(s.depends_on), "dependents": list(s.dependents),
         "pending_deps": len(s.depends_on), "ready_at": now, "results": None, "last_error": None,
         "started_at": None, "completed_at": None, "lease_owner": None, "lease_expires_at": None, "wait": None}
        for i, s in enumerate(task.steps)]
    log = ([work.transition(task.id, None, None, TaskState.PENDING.value, now)]
           + [work.transition(task.id, s.name, None, StepState.PENDING.value, now) for s in task.steps])
    return record, task_row, step_rows, log


def task_record(r: Any) -> TaskRecord:
    return TaskRecord(
        id=r.id, namespace=r.namespace, name=r.name, version=r.version, status=TaskState(r.status),
        context=r.context, template=r.template, created_at=r.created_at, updated_at=r.updated_at,
        provenance=r.provenance, correlation_id=r.correlation_id, idempotency_key=r.idempotency_key,
        parent_task_id=r.parent_task_id, parent_step=r.parent_step, invocation_key=r.invocation_key,
        error=r.error, completed_at=r.completed_at, caller_namespace=r.caller_namespace,
        warnings=tuple(r.warnings or ()), traceparent=r.traceparent)


def step_record(r: Any) -> StepRecord:
    return StepRecord(
        task_id=r.task_id, name=r.name, state=StepState(r.state), attempts=r.attempts, retry_limit=r.retry_limit,
        retryable=r.retryable, depends_on=tuple(r.depends_on), dependents=tuple(r.dependents),
        pending_deps=r.pending_deps, ready_at=r.ready_at, results=r.results, last_error=r.last_error,
        started_at=r.started_at, completed_at=r.completed_at, lease_owner=r.lease_owner,
        lease_expires_at=r.lease_expires_at, wait=r.wait)
