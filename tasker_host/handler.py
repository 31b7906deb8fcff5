"""The base class of step handlers (plugin SDK)."""

from __future__ import annotations

from typing import Any

from tasker_host.context import StepContext


class StepHandler:
    """One step's business logic.

    Subclasses implement :meth:`process`, either as ``async def`` (run on the engine's event loop)
    or as a plain ``def`` (run in a worker thread); ``ctx`` is a :class:`tasker_host.StepContext`.
    Raise :class:`tasker_host.PermanentError` for a failure that retrying cannot fix and
    :class:`tasker_host.RetryableError` for one that it may (service clients raise their typed
    subclasses :class:`tasker_host.ServiceRejected` and :class:`tasker_host.ServiceUnavailable`);
    any other exception counts as retryable.

    :meth:`process_results` optionally shapes what :meth:`process` returned into the step's stored
    results (the fourth phase of the four-phase pattern); its default stores the output unchanged.
    A handler instance is created for every attempt, so instance attributes never leak between runs.
    """

    def process(self, ctx: StepContext) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must implement process(ctx)")

    def process_results(self, ctx: StepContext, output: Any) -> Any:
        return output
