"""The concrete ``ctx`` a handler receives (see :class:`tasker_host.context.StepContext`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from opentelemetry.trace import Span

from tasker_host import waiting
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.engine.step_log import StepLog, StepLogBuffer
from tasker_host.engine.tracing import trace_id_of, traceparent_of
from tasker_host.errors import PermanentError

InvokeFn = Callable[["RunningStep", str, str, str | None, Mapping[str, Any] | None, bool, str],
                    Awaitable[InvocationResult]]
SendFn = Callable[["RunningStep", str, str, Any, str, str | None], Awaitable[Mapping[str, Any]]]


@dataclass
class RunningStep:
    task: TaskInfo
    step_name: str
    config: Mapping[str, Any]
    results: Mapping[str, Any]
    attempt: int
    _invoke: InvokeFn = field(repr=False)
    _calls: int = field(default=0, repr=False)
    logs: StepLogBuffer | None = field(default=None, repr=False)  # what ctx.log keeps of this attempt
    wake: waiting.WakeInfo | None = None  # why a step that waited runs again (None: it did not wait)
    _send: SendFn | None = field(default=None, repr=False)
    _sends: int = field(default=0, repr=False)
    span: Span | None = field(default=None, repr=False)  # this attempt's span: ctx.invoke's parent

    @property
    def traceparent(self) -> str | None:
        """The attempt's span as a W3C ``traceparent`` (made when asked: most attempts never do)."""
        return None if self.span is None else traceparent_of(self.span)

    @cached_property
    def log(self) -> StepLog:
        traceparent = self.traceparent
        return StepLog({
            "task_id": self.task.id, "step": self.step_name, "namespace": self.task.namespace,
            "correlation_id": self.task.correlation_id, "template": f"{self.task.name}@{self.task.version}",
            "attempt": self.attempt, "trace_id": trace_id_of(traceparent),
            "span_id": traceparent[36:52] if traceparent else None,
        }, self.logs)

    async def invoke(self, namespace: str, name: str, *, version: str | None = None,
                     context: Mapping[str, Any] | None = None, wait: bool = True) -> InvocationResult:
        # The n-th call of this step always has the same key, so a re-run re-attaches to its child.
        self._calls += 1
        key = f"{self.step_name}#{self._calls}"
        return await self._invoke(self, namespace, name, version, context, wait, key)

    # -- waiting (see tasker_host.waiting) ---------------------------------------------------
    def wait_for(self, name: str, *, schema: Mapping[str, Any] | None = None,
                 timeout: timedelta | float | None = None) -> waiting.Wait:
        return waiting.wait_for(name, schema, timeout, self.config)

    def sleep_until(self, when: datetime) -> waiting.Wait:
        return waiting.sleep_until(when)

    def event(self, name: str) -> Any:
        return waiting.event_payload(self.wake, name)

    async def send(self, task_id: str, name: str, payload: Any = None, *, idempotency_key: str | None = None,
                   namespace: str | None = None) -> Mapping[str, Any]:
        if self._send is None:
            raise PermanentError("sending events is not configured on this host")
        # The n-th send of this step has the same key, so a re-run does not send it twice.
        self._sends += 1
        key = idempotency_key or f"{self.task.id}:{self.step_name}#{self._sends}"
        return await self._send(self, task_id, name, payload, key, namespace)
