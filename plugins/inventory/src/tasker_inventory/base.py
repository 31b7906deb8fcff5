"""The four-phase step handler pattern, as the Inventory team's handlers use it.

1. ``extract_inputs(ctx)``: read and validate the task context and earlier results; anything
   missing is a :class:`~tasker_host.PermanentError` naming the fields.
2. ``call_service(ctx, inputs, fault)``: call a simulated service
   (:mod:`tasker_inventory.services`).
   A :class:`~tasker_inventory.faults.ServiceError` is classified by :func:`classify`.
3. ``check_response(ctx, inputs, response)``: the answer's ``status`` is one we accept, one that
   retrying cannot fix (permanent) or one we do not know (retryable).
4. ``process_results(ctx, output)`` calls ``shape``: a small JSON-serialisable dict; a shaping
   failure is permanent (the service call must not be repeated because of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tasker_host import PermanentError, RetryableError, StepHandler, TaskerError

from tasker_inventory.faults import Fault, ServiceError

RETRYABLE_MARKERS = ("connection failed", "timeout", "unavailable")
PERMANENT_MARKERS = ("authentication", "authorization", "not found", "declined", "closed")
REFUSED_STATUSES = frozenset({"declined"})  # permanent whatever the handler


class FourPhaseHandler(StepHandler):
    """Base class of the Inventory team's step handlers (see the module docstring)."""

    ok_statuses: frozenset[str] = frozenset({"ok"})
    permanent_statuses: frozenset[str] = frozenset()

    async def process(self, ctx: Any) -> dict[str, Any]:
        inputs = self.extract_inputs(ctx)
        fault = Fault.for_step(ctx)
        if fault.outcome != "ok":
            ctx.log.info("simulating %r on attempt %d of %s",
                         fault.outcome, ctx.attempt, ctx.step_name)
        try:
            response = await self.call_service(ctx, inputs, fault)
        except ServiceError as exc:
            raise classify(exc) from exc
        self.check_response(ctx, inputs, response)
        return response

    def process_results(self, ctx: Any, output: Any) -> dict[str, Any]:
        try:
            return self.shape(ctx, output)
        except TaskerError:
            raise
        except Exception as exc:
            raise PermanentError(f"failed to process {ctx.step_name} results: {exc!r}") from exc

    def extract_inputs(self, ctx: Any) -> dict[str, Any]:
        raise NotImplementedError

    async def call_service(self, ctx: Any, inputs: dict[str, Any], fault: Fault) -> dict[str, Any]:
        raise NotImplementedError

    def shape(self, ctx: Any, output: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def check_response(self, ctx: Any, inputs: dict[str, Any], response: Mapping[str, Any]) -> None:
        status = response.get("status")
        if status in self.ok_statuses:
            return
        if status in self.permanent_statuses or status in REFUSED_STATUSES:
            raise PermanentError(f"{ctx.step_name}: service answered {status!r}, not retrying")
        raise RetryableError(f"{ctx.step_name}: unknown service status {status!r}, will retry")


def classify(exc: ServiceError) -> PermanentError | RetryableError:
    """Connection failures, timeouts and unavailability retry; auth, not-found and declines do
    not; anything else is treated as a temporary problem."""
    text = str(exc).lower()
    if any(marker in text for marker in RETRYABLE_MARKERS):
        return RetryableError(f"{exc}; will retry")
    if any(marker in text for marker in PERMANENT_MARKERS):
        return PermanentError(str(exc))
    return RetryableError(f"service error: {exc}")


def require(source: Mapping[str, Any], fields: Iterable[str], what: str) -> dict[str, Any]:
    """The named fields of ``source``; a missing or blank one is a permanent error."""
    fields = tuple(fields)
    missing = [f for f in fields if source.get(f) is None or source.get(f) == ""]
    if missing:
        raise PermanentError(f"Missing required fields for {what}: {', '.join(missing)}")
    return {f: source[f] for f in fields}


def step_results(ctx: Any, step: str) -> Mapping[str, Any]:
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
