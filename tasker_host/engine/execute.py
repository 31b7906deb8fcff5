"""Running one claimed step: its handler (async on the loop, sync in a worker thread) under the
step's timeout, its results checked by the value rule, and the outcome a result or a failure
leads to (the retry rules decide). No store, no queue: the runner records what this returns."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import Any

import anyio

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
from tasker_host.values import require_storable

Invoke = Callable[..., Awaitable[Any]]


class StepExecutor:
    def __init__(self, registry: Registry, clock: Clock, policy: RetryPolicy, owner: str, invoke: Invoke):
        self.registry, self.clock, self.policy, self.owner = registry, clock, policy, owner
        self._invoke = invoke
        self._result_checks: Lru[str, tuple[Any, ResultCheck]] = Lru(256)  # by template full name

    async def execute(self, claim: Claim, rt: TaskRuntime, logs: StepLogBuffer) -> Any:
        """The step's results (storable), or the handler's exception."""
        step = rt.steps[claim.step]
        try:
            handler = self.registry.handler_class(rt.info.namespace, step.handler_class)()
        except KeyError:
            raise PermanentError(f"handler {step.handler_class!r} is no longer provided in "
                                 f"namespace {rt.info.namespace!r}") from None
        ctx = RunningStep(rt.info, step.name, step.handler_config, MappingProxyType(rt.results),
                          claim.attempt, self._invoke, logs=logs)
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

    def outcome(self, claim: Claim, state: StepState, reason: str, **kw: Any) -> StepOutcome:
        return StepOutcome(claim.task_id, claim.step, self.owner, claim.attempt, state, self.clock.now(), reason,
                           **kw)
