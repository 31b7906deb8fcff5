"""Lifecycle events: emitted after a change is committed, delivered to plugin observers
(``tasker_on_event``) and in-process listeners (e.g. the CLI's progress view), each isolated."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

log = logging.getLogger("tasker_host.events")


class EventKind(enum.StrEnum):
    TASK_CREATED = "task.created"
    TASK_STARTED = "task.started"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_CANCELLED = "task.cancelled"
    TASK_DEPRECATED_VERSION = "task.deprecated_version"  # created on a deprecated version (lifecycle)
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_RETRYING = "step.retrying"
    STEP_WAITING = "step.waiting"  # waits for an event or a timer (holds no worker)


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """``detail`` (step outcomes) holds what was stored: ``error`` (``engine.retry.error_doc``,
    made storable and bounded), ``reason`` (built from it) and a finite ``retry_at``; an observer
    may write it anywhere JSON goes."""

    kind: EventKind
    task_id: str
    namespace: str
    name: str
    version: str
    at: float
    step: str | None = None
    attempt: int | None = None
    correlation_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    trace_id: str | None = None  # the OpenTelemetry trace the task belongs to (32 hex digits)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}@{self.version}"


Listener = Callable[[LifecycleEvent], None]


class EventBus:
    def __init__(self, manager: pluggy.PluginManager | None = None):
        self._manager = manager
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: LifecycleEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed on %s", listener, event.kind.value)
        if self._manager is None:
            return
        for impl in self._manager.hook.tasker_on_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception:
                log.exception("observer of plugin %s failed on %s for task %s",
                              impl.plugin_name, event.kind.value, event.task_id)
