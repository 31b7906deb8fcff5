"""The four-phase step handler (plugin SDK) and its input helpers.

A :class:`FourPhaseHandler` subclass implements three small methods and states which answers it
accepts; :meth:`FourPhaseHandler.process` and :meth:`FourPhaseHandler.process_results` run them:

1. ``extract_inputs(ctx)``: read and validate the task context and earlier results; anything
   missing is a :class:`~tasker_host.PermanentError` naming the fields (:func:`require`,
   :func:`step_results`, :func:`amount`).
2. ``call_service(ctx, inputs)``: call the service. The handler gets its client from somewhere a
   test can replace (a method or attribute of the team's base class, e.g. ``self.services(ctx)``;
   see ``docs/plugins.md``). Clients raise typed errors: :class:`~tasker_host.ServiceUnavailable`
   is retried, :class:`~tasker_host.ServiceRejected` is permanent, a bare
   :class:`~tasker_host.ServiceError` is retried; they pass through unchanged.
3. ``check_response(ctx, inputs, response)``: the answer's ``status`` is one we accept
   (``ok_statuses``), one that retrying cannot fix (``permanent_statuses`` and
   ``refused_statuses``: permanent) or one we do not know (retryable). Override it to add checks,
   calling ``super()`` first.
4. ``shape(ctx, output)`` (run by ``process_results``): a small JSON-serialisable dict; a shaping
   failure is permanent (the service call must not be repeated because of it).

A team usually puts what is common to its handlers (statuses refused everywhere, where its
service clients come from) on one base class of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tasker_host.context import StepContext
from tasker_host.errors import PermanentError, RetryableError, TaskerError
from tasker_host.handler import StepHandler

__all__ = ["FourPhaseHandler", "amount", "require", "step_results"]


class FourPhaseHandler(StepHandler):
    """Base class of four-phase step handlers (see the module docstring).

    Class attributes:

    * ``ok_statuses``: answer statuses that succeed (default ``{"ok"}``);
    * ``permanent_statuses``: statuses this handler fails on for good;
    * ``refused_statuses``: statuses every handler of the class fails on for good (default
      ``{"declined"}``).
    """

    ok_statuses: frozenset[str] = frozenset({"ok"})
    permanent_statuses: frozenset[str] = frozenset()
    refused_statuses: frozenset[str] = frozenset({"declined"})

    async def process(self, ctx: StepContext) -> dict[str, Any]:
        inputs = self.extract_inputs(ctx)
        response = await self.call_service(ctx, inputs)
        self.check_response(ctx, inputs, response)
        return response

    def process_results(self, ctx: StepContext, output: Any) -> dict[str, Any]:
        try:
            return self.shape(ctx, output)
        except TaskerError:
            raise
        except Exception as exc:
            raise PermanentError(f"failed to process {ctx.step_name} results: {exc!r}") from exc

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__qualname__} must implement extract_inputs(ctx)")

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement call_service(ctx, inputs)")

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__qualname__} must implement shape(ctx, output)")

    def check_response(self, ctx: StepContext, inputs: dict[str, Any],
                       response: Mapping[str, Any]) -> None:
        status = response.get("status")
        if status in self.ok_statuses:
            return
        if status in self.permanent_statuses or status in self.refused_statuses:
            raise PermanentError(f"{ctx.step_name}: service answered {status!r}, not retrying")
        raise RetryableError(f"{ctx.step_name}: unknown service status {status!r}")

    async def invoke_workflow(self, ctx: StepContext, namespace: str, workflow: str, *,
                              version: str | None, context: Mapping[str, Any],
                              what: str = "the work") -> dict[str, Any]:
        """Delegate to another namespace's workflow: ``ctx.invoke(..., wait=True)`` as a service call.

        A :class:`~tasker_host.PermanentError` or :class:`~tasker_host.RetryableError` from the
        call propagates; any other :class:`~tasker_host.TaskerError` (e.g. no version matches) is
        permanent: ``cannot delegate <what>: ...``. Otherwise the child's ``status``, ``task_id``,
        ``full_name``, ``version``, ``correlation_id`` and ``results`` (a dict; check the status
        with :meth:`check_response` before trusting them).
        """
        try:
            child = await ctx.invoke(namespace, workflow, version=version, context=context, wait=True)
        except (PermanentError, RetryableError):
            raise
        except TaskerError as exc:  # e.g. no version matches: retrying will not help
            raise PermanentError(f"cannot delegate {what}: {exc}") from exc
        return {"status": child.status, "task_id": child.task_id, "full_name": child.full_name,
                "version": child.version, "correlation_id": child.correlation_id,
                "results": dict(child.results)}


def require(source: Mapping[str, Any], fields: Iterable[str], what: str) -> dict[str, Any]:
    """The named fields of ``source``; a missing or blank one is a permanent error."""
    fields = tuple(fields)
    missing = [f for f in fields if source.get(f) is None or source.get(f) == ""]
    if missing:
        raise PermanentError(f"Missing required fields for {what}: {', '.join(missing)}")
    return {f: source[f] for f in fields}


def step_results(ctx: StepContext, step: str) -> Mapping[str, Any]:
    """The results of an earlier step, which this step depends on."""
    results = ctx.results.get(step)
    if not isinstance(results, Mapping):
        raise PermanentError(f"{ctx.step_name} needs the results of step {step!r}, which are missing")
    return results


def amount(value: Any, field: str) -> int | float:
    """A non-negative amount in cents."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PermanentError(f"{field} must be a non-negative number of cents, got {value!r}")
    return value
