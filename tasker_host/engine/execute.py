"""Running one claimed step: its handler (async on the loop, sync in a worker thread) under the
step's timeout, its results checked by the value rule, and the outcome a result or a failure
leads to (the retry rules decide). No store, no queue: the runner records what this returns."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import anyio
from opentelemetry.trace import Span

from tasker_host.contracts.results import ResultCheck
from tasker_host.engine.clock import Clock
from tasker_host.engine.retry import RetryPolicy, error_doc, judge, retry_delay
from tasker_host.engine.runtime import Lru, TaskRuntime
from tasker_host.engine.step_context import RunningStep
from tasker_host.engine.step_log import StepLogBuffer
from tasker_host.errors import InvalidValueError, PermanentError
from tasker_host.models import StepState
from tasker_host.registry import Registry
from tasker_host.store.base import Claim, StepOutcome
from tasker_host.store.waits import wait_doc, wake_at
from tasker_host.values import require_storable
from tasker_host.waiting import Wait, WakeInfo

Invoke = Callable[..., Awaitable[Any]]


class StepExecutor:
    def __init__(self, registry: Registry, clock: Clock, policy: RetryPolicy, owner: str, invoke: Invoke,
                 send: Invoke | None = None):
        self.registry, self.clock, self.policy, self.owner = registry, clock, policy, owner
        self._invoke, self._send = invoke, send
        self._result_checks: Lru[str, tuple[Any, ResultCheck]] = Lru(256)  # by template full name

    async def execute(self, claim: Claim, rt: TaskRuntime, logs: StepLogBuffer, wake: WakeInfo | None = None,
                      span: Span | None = None) -> Any:
        """The step's results (storable), a :class:`Wait` the handler returned, or the handler's
        exception. ``span``: the attempt's, the parent of the tasks its ``ctx.invoke`` creates."""
        step = rt.steps[claim.step]
        try:
            handler = self.registry.handler_class(rt.info.namespace, step.handler_class)()
        except KeyError:
            raise PermanentError(f"handler {step.handler_class!r} is no longer provided in "
                                 f"namespace {rt.info.namespace!r}") from None
        ctx = RunningStep(rt.info, step.name, step.handler_config, MappingProxyType(rt.results),
                          claim.attempt, self._invoke, logs=logs, wake=wake, _send=self._send, span=span)
        with self.clock.deadline(step.timeout_seconds):
            if inspect.iscoroutinefunction(handler.process):
                output = await handler.process(ctx)
            else:
                output = await anyio.to_thread.run_sync(handler.process, ctx)
            if isinstance(output, Wait):
                return output  # (not shaped: process_results runs on the results of a later run)
            shaped = handler.process_results(ctx, output)
            if inspect.isawaitable(shaped):
                shaped = await shaped
        try:
            require_storable(shaped, "results", "step results")
        except InvalidValueError as exc:
            raise PermanentError(str(exc)) from None
        if rt.result_schema is not None:  # ResultContractViolation: permanent, the task ends in error
            self._result_check(rt.info.full_name, rt.result_schema).check(rt.info.full_name, claim.step, shaped)
        return shaped

    def _result_check(self, full_name: str, schema: Any) -> ResultCheck:
        """One compiled check per template version (compiling costs ~0.4 ms, checking ~20 us).
        Each task carries its own copy of the schema, usually equal to the last one seen for its
        version; a task stored under an older release of that version may differ, and gets its own."""
        cached = self._result_checks.get(full_name)
        if cached is None or (cached[0] is not schema and cached[0] != schema):
            cached = (schema, ResultCheck(schema))
            self._result_checks.put(full_name, cached)
        return cached[1]

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

    def finished(self, claim: Claim, results: Any) -> StepOutcome:
        """The outcome of an attempt that returned: complete, or waiting (a :class:`Wait`)."""
        if not isinstance(results, Wait):
            return self.outcome(claim, StepState.COMPLETE, "completed", results=results)
        now = self.clock.now()
        timeout_at = now + results.timeout_seconds if results.timeout_seconds is not None else None
        doc = wait_doc(results.event, results.schema, timeout_at, results.until, now)
        when = wake_at(doc)
        reason = f"waiting for {results.describe()}" + (f" until {_iso(when)}" if when is not None else "")
        return self.outcome(claim, StepState.WAITING, reason, wait=doc, ready_at=when)

    def outcome(self, claim: Claim, state: StepState, reason: str, **kw: Any) -> StepOutcome:
        return StepOutcome(claim.task_id, claim.step, self.owner, claim.attempt, state, self.clock.now(), reason,
                           **kw)


def _iso(at: float) -> str:
    try:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):  # a wait of 1e300 seconds
        return f"{at:.0f}"
