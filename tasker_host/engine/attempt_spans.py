"""The runner's side of tracing: one short span per step attempt (see :mod:`.tracing`).

A retry links to the attempt before it. The failed attempt's ``traceparent`` is stored in its
error document (``last_error.traceparent``), so the link is made whichever runner ran that
attempt: from memory when it was this runner, else from one read of the task (only for retried
attempts, only while tracing is on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, Span

from tasker_host.engine.runtime import Lru, TaskRuntime
from tasker_host.engine.tracing import Tracing, attempt_ended, traceparent_of
from tasker_host.errors import StoreUnavailableError
from tasker_host.models import Provenance, StepState
from tasker_host.registry import Registry
from tasker_host.store.base import Claim, StepOutcome

ReadTask = Callable[[str], Awaitable[Any]]  # the task record (with steps), or None
PREVIOUS_CACHE_SIZE = 4096  # failed attempts remembered for their retries' links


class AttemptSpans:
    def __init__(self, tracing: Tracing, registry: Registry, read_task: ReadTask):
        self.tracing, self.registry, self._read_task = tracing, registry, read_task
        self._previous: Lru[tuple[str, str], str] = Lru(PREVIOUS_CACHE_SIZE)

    async def start(self, claim: Claim, rt: TaskRuntime) -> Span:
        """The attempt's span. Without an SDK: a non-recording span carrying the task's stored
        context (so ``ctx.invoke`` still passes it on to child tasks and other hosts)."""
        if not self.tracing.enabled:
            sc = self.tracing.span_context_of(rt.traceparent)
            return INVALID_SPAN if sc is None else NonRecordingSpan(sc)
        previous = await self._previous_attempt(claim) if claim.attempt > 1 else None
        return self.tracing.start_attempt(rt.info, rt.traceparent, claim.step, claim.attempt,
                                          self._plugin(rt, claim.step), previous)

    def end(self, span: Span, outcome: StepOutcome, exc: BaseException | None = None) -> StepOutcome:
        """End the span with the outcome; a failed attempt's error document gets its
        ``traceparent`` (so the retry, wherever it runs, links to it)."""
        if (outcome.error is not None and outcome.state in (StepState.WAITING_RETRY, StepState.ERROR)
                and span.is_recording() and (traceparent := traceparent_of(span)) is not None):
            outcome = dataclasses.replace(outcome, error={**outcome.error, "traceparent": traceparent})
            if outcome.state is StepState.WAITING_RETRY:
                self._previous.put((outcome.task_id, outcome.step), traceparent)
        attempt_ended(span, outcome.state.value, outcome.error, exc)
        return outcome

    async def _previous_attempt(self, claim: Claim) -> str | None:
        known = self._previous.get((claim.task_id, claim.step))
        if known is not None:
            self._previous.drop((claim.task_id, claim.step))
            return known
        try:  # the attempt ran elsewhere: its span is in the stored error (a retry is rare: one read)
            task = await self._read_task(claim.task_id)
        except StoreUnavailableError:
            return None  # no link rather than a late step
        step = next((s for s in (task.steps if task is not None else ()) if s.name == claim.step), None)
        error = step.last_error if step is not None else None
        found = error.get("traceparent") if isinstance(error, Mapping) else None
        return found if isinstance(found, str) else None

    def _plugin(self, rt: TaskRuntime, step: str) -> Provenance | None:
        entry = self.registry.handlers.get((rt.info.namespace, rt.steps[step].handler_class))
        return entry.provenance if entry is not None else None
