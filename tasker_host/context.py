"""What a step handler sees: the :class:`StepContext` protocol and its values (plugin SDK)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.waiting import Wait, WakeInfo


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """The task a step belongs to."""

    id: str
    namespace: str
    name: str
    version: str
    context: Mapping[str, Any]
    correlation_id: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """The outcome of ``ctx.invoke``: the child task and, when waited for, its results."""

    task_id: str
    namespace: str
    name: str
    version: str
    status: str
    correlation_id: str
    results: Mapping[str, Any] = field(default_factory=dict)  # step name -> step results

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}@{self.version}"


@runtime_checkable
class StepContext(Protocol):
    """What ``StepHandler.process(ctx)`` and ``process_results(ctx, output)`` receive: annotate
    handlers with it (``def process(self, ctx: StepContext)``). The engine passes its own running
    step; tests pass a :class:`tasker_host.testing.FakeStepContext`. Every member is read-only:

    * ``task``: the :class:`TaskInfo` (namespace, name, resolved version, context, ids);
    * ``step_name`` and ``config`` (the step's ``handler_config`` mapping);
    * ``results``: earlier steps' results by step name;
    * ``attempt``: 1 for the first attempt, 2 for the first retry, ...;
    * ``log``: a :class:`logging.LoggerAdapter` bound to the task and step ids; what a handler
      writes through it (``ctx.log.info("charged %s", amount)``) is also kept with the attempt
      (at most 200 lines / 64 KiB per attempt) and shown by the API, the console and
      ``tasker-host tasks watch``;
    * ``invoke(...)``: call another namespace's workflow (see below);
    * ``wait_for(...)`` / ``sleep_until(...)``: *return* what they build to wait for an event or
      a time, holding no worker meanwhile; ``event(name)`` and ``wake`` when the step runs again;
      ``send(...)`` an event to another task (see ``docs/waiting.md``).
    """

    @property
    def task(self) -> TaskInfo: ...

    @property
    def step_name(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def results(self) -> Mapping[str, Any]: ...

    @property
    def attempt(self) -> int: ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    async def invoke(
        self,
        namespace: str,
        name: str,
        *,
        version: str | None = None,
        context: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> InvocationResult:
        """Start ``namespace.name`` (version exact, a PEP 440 range, or None for the newest
        stable) as a child of this step and, with ``wait=True``, wait for it to finish.

        Delivery is decided by the ``tasker_route_invocation`` hook (in process by default, or
        another host over HTTP). Re-running the step re-attaches to the same child. A child that
        fails for good raises :class:`tasker_host.PermanentError` naming the child task.
        """
        ...

    @property
    def wake(self) -> WakeInfo | None:
        """Why this step runs again after it waited (reason, event, payloads); None if it never waited."""
        ...

    def wait_for(self, name: str, *, schema: Mapping[str, Any] | None = None,
                 timeout: timedelta | float | None = None) -> Wait:
        """Wait for event ``name``: ``return ctx.wait_for(...)`` ends the attempt; the step runs
        again when the event is sent (its payload checked against ``schema``, by default the
        step's ``handler_config.events.<name>.schema``) or once ``timeout`` passed."""
        ...

    def sleep_until(self, when: datetime) -> Wait:
        """Wait until ``when`` (timezone-aware): ``return ctx.sleep_until(...)``; durable."""
        ...

    def event(self, name: str) -> Any:
        """The latest payload of event ``name`` delivered to this step, or None; raises
        :class:`tasker_host.EventTimeoutError` when its wait for ``name`` timed out."""
        ...

    async def send(self, task_id: str, name: str, payload: Any = None, *, idempotency_key: str | None = None,
                   namespace: str | None = None) -> Mapping[str, Any]:
        """Send event ``name`` to task ``task_id`` (authorised like ``invoke``: grant action
        ``signal``); a re-run of this step sends nothing twice. Returns the stored event. A task
        of a namespace another host serves (``TASKER_REMOTE_HOSTS``) is reached through that
        host's API when ``namespace`` names it."""
        ...
