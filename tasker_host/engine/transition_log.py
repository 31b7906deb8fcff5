"""Task and step transitions as log lines (docs/observability.md, "Logs").

A listener on the host's :class:`~tasker_host.engine.events.EventBus`: every lifecycle event is
one line on the ``tasker_host.transitions`` logger, at INFO, or at WARNING for a failed or
retrying step and a failed task (with the error). Each line's structured ``fields`` (printed by
the ``--log-format text|json`` formatters) are :func:`fields_of`. Only what the event holds is
logged: ids, names, the error's type and message; never a task's context or a step's results.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tasker_host.engine.events import EventBus, EventKind, LifecycleEvent

LOGGER = "tasker_host.transitions"
WARNING_KINDS = frozenset({EventKind.STEP_FAILED, EventKind.STEP_RETRYING, EventKind.TASK_FAILED,
                           EventKind.TASK_DEPRECATED_VERSION})  # a team still starts a retiring version


def fields_of(event: LifecycleEvent) -> dict[str, Any]:
    """The line's fields: event, task id, namespace, template@version, step, attempt,
    correlation id and trace id (absent when unknown), plus the error of a failure."""
    fields: dict[str, Any] = {
        "event": event.kind.value, "task_id": event.task_id, "namespace": event.namespace,
        "template": f"{event.name}@{event.version}", "step": event.step,
        "attempt": event.attempt if event.step is not None else None,
        "correlation_id": event.correlation_id, "trace_id": event.trace_id}
    error = event.detail.get("error")
    if isinstance(error, dict):
        fields["error_class"] = error.get("kind")
        fields["error"] = f"{error.get('type')}: {error.get('message')}"
    retry_at = event.detail.get("retry_at")  # a waiting step's: when its timer or timeout fires
    if isinstance(retry_at, (int, float)):
        name = "wake_at" if event.kind is EventKind.STEP_WAITING else "retry_at"
        fields[name] = datetime.fromtimestamp(retry_at, tz=UTC).isoformat(timespec="milliseconds")
    return {k: v for k, v in fields.items() if v is not None}


def message_of(event: LifecycleEvent) -> str:
    """A line a person reads: ``step charge of payments.process_refund@2.1.3 failed (attempt 2):
    RetryableError: gateway timeout; retrying`` / ``task 1a2b3c4d payments.process_refund@2.1.3
    completed``."""
    what = event.kind.value.split(".", 1)[1]
    if event.step is None:
        return f"task {event.task_id[:8]} {event.full_name} {what}"
    text = f"step {event.step} of {event.full_name} {what} (task {event.task_id[:8]}, attempt {event.attempt})"
    error = event.detail.get("error")
    if isinstance(error, dict):
        text += f": {error.get('type')}: {error.get('message')}"
    return text


def log_action(task: Any, action: str, step: str | None = None, logger: logging.Logger | None = None) -> None:
    """A transition made by request, not by the engine (``retried``, ``resolved``): one INFO
    line with the same fields as the engine's (``task`` is the task record)."""
    trace = task.traceparent[3:35] if getattr(task, "traceparent", None) else None
    fields = {"event": f"{'step' if step else 'task'}.{action}", "task_id": task.id, "namespace": task.namespace,
              "template": f"{task.name}@{task.version}", "step": step, "correlation_id": task.correlation_id,
              "trace_id": trace}
    what = f"step {step} of {task.full_name}" if step else f"task {task.id[:8]} {task.full_name}"
    (logger or logging.getLogger(LOGGER)).info("%s %s by request", what, action,
                                               extra={"fields": {k: v for k, v in fields.items() if v is not None}})


class TransitionLog:
    """Logs every event of a bus; counts them (``worker --until-idle`` prints the tally)."""

    def __init__(self, logger: logging.Logger | None = None):
        self.log = logger or logging.getLogger(LOGGER)
        self.counts: Counter[EventKind] = Counter()

    def attach(self, events: EventBus) -> Callable[[], None]:
        """Subscribe; returns the unsubscribe function."""
        return events.subscribe(self)

    def __call__(self, event: LifecycleEvent) -> None:
        self.counts[event.kind] += 1
        level = logging.WARNING if event.kind in WARNING_KINDS else logging.INFO
        if self.log.isEnabledFor(level):
            self.log.log(level, "%s", message_of(event), extra={"fields": fields_of(event)})

    def tally(self) -> str:
        """``12 steps completed, 1 step retried, 3 tasks completed`` (what happened, in order)."""
        parts = []
        for kind in EventKind:  # in the order of a task's life
            if not (n := self.counts[kind]):
                continue
            noun, verb = kind.value.split(".", 1)
            parts.append(f"{n} {noun}{'' if n == 1 else 's'} {verb}")
        return ", ".join(parts) or "nothing ran"
