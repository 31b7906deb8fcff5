"""The concrete ``ctx`` a handler receives (see :class:`tasker_host.context.StepContext`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from opentelemetry.trace import Span

from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.engine.step_log import StepLog, StepLogBuffer
from tasker_host.engine.tracing import trace_id_of, traceparent_of

InvokeFn = Callable[["RunningStep", str, str, str | None, Mapping[str, Any] | None, bool, str],
                    Awaitable[InvocationResult]]


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
