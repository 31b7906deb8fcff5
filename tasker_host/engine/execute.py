"""Running one claimed step: its handler (async on the loop, sync in a worker thread) under the
step's timeout, its results checked by the value rule, and the outcome a result or a failure
leads to (the retry rules decide). No store, no queue: the runner records what this returns."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import Any

import anyio
from opentelemetry.trace import Span

from tasker_host.engine.clock import Clock
from tasker_host.engine.retry import RetryPolicy, error_doc, judge, retry_delay
from tasker_host.engine.runtime import TaskRuntime
from tasker_host.engine.step_context import RunningStep
from tasker_host.engine.step_log import StepLogBuffer
from tasker_host.errors import InvalidValueError, PermanentError
from tasker_host.models import StepState
from tasker_host.registry import Registry
from tasker_host.store.base import Claim, StepOutcome
from tasker_host.values import require_storable

Invoke = Callable[..., Awaitable[Any]]


class StepExecutor:
    def __init__(self, registry: Registry, clock: Clock, policy: RetryPolicy, owner: str, invoke: Invoke):
        self.registry, self.clock, self.policy, self.owner = registry, clock, policy, owner
        self._invoke = invoke

    async def execute(self, claim: Claim, rt: TaskRuntime, logs: StepLogBuffer, span: Span | None = None) -> Any:
        """The step's results (storable), or the handler's exception. ``span``: the attempt's,
        the parent of the tasks its ``ctx.invoke`` creates."""
        step = rt.steps[claim.step]
        try:
            handler = self.registry.handler_class(rt.info.namespace, step.handler_class)()
        except KeyError:
            raise PermanentError(f"handler {step.handler_class!r} is no longer provided in "
                                 f"namespace {rt.info.namespace!r}") from None
        ctx = RunningStep(rt.info, step.name, step.handler_config, MappingProxyType(rt.results),
                          claim.attempt, self._invoke, logs=logs, span=span)
        with self.clock.deadline(step.timeout_seconds):
            if inspect.iscoroutinefunction(handler.process):
                output = await handler.process(ctx)
            else:
                output = await anyio.to_thread.run_sync(handler.process, ctx)
            shaped = handler.process_results(ctx, output)
            if inspect.isawaitable(shaped):
                shaped = await shaped
        try:
            require_storable(shaped, "results", "step results")
        except InvalidValueError as exc:
            raise PermanentError(str(exc)) from None
        return shaped

    def failure(self, claim: Claim, rt: TaskRuntime, exc: Exception) -> StepOutcome:
        """The outcome of a failed attempt: retry at T, or error (the retry rules decide)."""
        step = rt.steps[claim.step]
        verdict = judge(exc, attempt=claim.attempt, retryable=step.retryable, retry_limit=step.retry_limit,
                        policy=self.policy, base_delay=retry_delay(step.handler_config))
        now = self.clock.now()
        ready_at = now + verdict.delay if verdict.delay is not None else None
        error = error_doc(exc)  # storable and bounded, whatever the exception holds
        return StepOutcome(claim.task_id, claim.step, self.owner, claim.attempt, verdict.state, now,
                           f"{verdict.reason}: {error['type']}: {error['message']}", error=error,
                           ready_at=ready_at)

    def outcome(self, claim: Claim, state: StepState, reason: str, **kw: Any) -> StepOutcome:
        return StepOutcome(claim.task_id, claim.step, self.owner, claim.attempt, state, self.clock.now(), reason,
                           **kw)
