"""The four-phase step handler of the plugin SDK (tasker_host.four_phase)."""

from __future__ import annotations

from typing import Any

import pytest

import tasker_host
from tasker_host import (
    Fault,
    FaultPlan,
    FourPhaseHandler,
    PermanentError,
    RetryableError,
    ServiceError,
    SimulatedService,
    StepHandler,
    TaskerError,
    amount,
    require,
    step_results,
)
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.testing import FakeStepContext, simulation_fixtures

pytestmark = pytest.mark.anyio


anyio_backend, sleeps = simulation_fixtures()  # pytest fixtures: asyncio; simulated sleeps, recorded


def ctx(context=None, step="lookup", results=None, attempt=1, **fields):
    task = TaskInfo("task-1", "shop", "checkout", "1.0.0", dict(context or {}))
    return FakeStepContext(task, step, {"timeout_seconds": 5}, dict(results or {}), attempt, **fields)


class Catalogue(SimulatedService):
    name = "Catalogue"

    async def lookup(self, sku: str) -> dict[str, Any]:
        status = await self.begin()
        if sku == "raise":
            raise ServiceError(f"{self.name}: {sku} exploded")
        return {"status": status or ("found" if sku != "gone" else "discontinued"), "sku": sku}


class Lookup(FourPhaseHandler):
    ok_statuses = frozenset({"found"})
    permanent_statuses = frozenset({"discontinued"})

    def extract_inputs(self, ctx: Any) -> dict[str, Any]:
        return require(ctx.task.context, ("sku",), "lookup")

    async def call_service(self, ctx: Any, inputs: dict[str, Any], fault: Fault) -> dict[str, Any]:
        ctx.seen_fault = fault
        return await Catalogue(fault).lookup(inputs["sku"])

    def shape(self, ctx: Any, output: dict[str, Any]) -> dict[str, Any]:
        return {"found": True, "sku": output["sku"]}


async def run(handler: StepHandler, c: FakeStepContext) -> Any:
    return handler.process_results(c, await handler.process(c))


def test_sdk_exports():
    for name in ("FourPhaseHandler", "require", "step_results", "amount"):
        assert name in tasker_host.__all__
    assert issubclass(FourPhaseHandler, StepHandler)


async def test_the_four_phases_run_in_order(sleeps):
    c = ctx({"sku": "A1"})
    assert await run(Lookup(), c) == {"found": True, "sku": "A1"}
    assert c.seen_fault == Fault("ok", 5.0)


async def test_missing_inputs_are_permanent_and_no_service_is_called(sleeps):
    c = ctx({"sku": ""})
    with pytest.raises(PermanentError, match="Missing required fields for lookup: sku"):
        await Lookup().process(c)
    assert not hasattr(c, "seen_fault")


@pytest.mark.parametrize("outcome,error,match", [
    ("unavailable", RetryableError, "Catalogue unavailable .*; will retry"),
    ("timeout", RetryableError, "Catalogue timeout"),
    ("auth", PermanentError, "authentication failed"),
    ("not_found", PermanentError, "record not found"),
    ("declined", PermanentError, "service answered 'declined', not retrying"),
    ("unknown", RetryableError, "unknown service status 'unknown', will retry"),
])
async def test_simulated_outcomes_are_classified(outcome, error, match, sleeps):
    with pytest.raises(error, match=match):
        await Lookup().process(ctx({"sku": "A1", "simulate": {"lookup": [outcome]}}))


async def test_statuses(sleeps):
    with pytest.raises(PermanentError, match="'discontinued', not retrying"):
        await Lookup().process(ctx({"sku": "gone"}))


@pytest.mark.parametrize("message,error,text", [
    ("Gateway connection failed", RetryableError, "Gateway connection failed; will retry"),
    ("read TIMEOUT after 3s", RetryableError, "read TIMEOUT after 3s; will retry"),
    ("Ledger unavailable", RetryableError, "Ledger unavailable; will retry"),
    ("Authentication failed", PermanentError, "Authentication failed"),
    ("authorization denied", PermanentError, "authorization denied"),
    ("payment 7 not found", PermanentError, "payment 7 not found"),
    ("card declined", RetryableError, "service error: card declined"),  # a team adds "declined"
    ("the sky fell", RetryableError, "service error: the sky fell"),
])
def test_service_errors_are_classified_by_message(message, error, text):
    result = Lookup().classify_service_error(ServiceError(message))
    assert type(result) is error and str(result) == text


async def test_a_service_error_from_the_call_is_classified(sleeps):
    with pytest.raises(RetryableError, match="service error: Catalogue: raise exploded") as caught:
        await Lookup().process(ctx({"sku": "raise"}))
    assert isinstance(caught.value.__cause__, ServiceError)


class TeamLookup(Lookup):
    """What a team's own base class sets."""

    refused_statuses = frozenset({"declined", "closed"})
    permanent_markers = (*FourPhaseHandler.permanent_markers, "declined", "closed")
    fault_plan = FaultPlan().answering_also("closed")


async def test_a_team_extends_markers_refused_statuses_and_the_fault_plan(sleeps):
    assert isinstance(TeamLookup().classify_service_error(ServiceError("card declined")), PermanentError)
    with pytest.raises(PermanentError, match="'closed', not retrying"):
        await TeamLookup().process(ctx({"sku": "A1", "simulate": {"lookup": ["closed"]}}))
    with pytest.raises(PermanentError, match="unknown outcome"):  # the host's plan does not know it
        await Lookup().process(ctx({"sku": "A1", "simulate": {"lookup": ["closed"]}}))


def test_shaping_failures_are_permanent_and_tasker_errors_pass_through():
    with pytest.raises(PermanentError, match="failed to process lookup results: KeyError"):
        Lookup().process_results(ctx(), {})

    class Refusing(Lookup):
        def shape(self, ctx: Any, output: dict[str, Any]) -> dict[str, Any]:
            raise RetryableError("later")

    with pytest.raises(RetryableError, match="later"):
        Refusing().process_results(ctx(), {})


async def test_unimplemented_phases_say_which():
    with pytest.raises(NotImplementedError, match="extract_inputs"):
        await FourPhaseHandler().process(ctx())


# --- delegating to another workflow ---------------------------------------------------------------
class Delegate(FourPhaseHandler):
    ok_statuses = frozenset({"complete"})

    def extract_inputs(self, ctx: Any) -> dict[str, Any]:
        return {"order_id": "o-1"}

    async def call_service(self, ctx: Any, inputs: dict[str, Any], fault: Fault) -> dict[str, Any]:
        return await self.invoke_workflow(ctx, fault, "payments", "process_payment", version="~=3.0",
                                          context=inputs, what="the payment")

    def shape(self, ctx: Any, output: dict[str, Any]) -> dict[str, Any]:
        return output


async def test_invoke_workflow_waits_for_the_child_and_summarises_it(sleeps):
    child = InvocationResult("child-9", "payments", "process_payment", "3.0.0", "complete", "corr-9",
                             {"charge_payment": {"charge_id": "ch_1"}})
    c = ctx(child=child)
    assert await run(Delegate(), c) == {
        "status": "complete", "task_id": "child-9", "full_name": "payments.process_payment@3.0.0",
        "version": "3.0.0", "correlation_id": "corr-9", "results": {"charge_payment": {"charge_id": "ch_1"}}}
    assert c.calls == [{"namespace": "payments", "name": "process_payment", "version": "~=3.0",
                        "context": {"order_id": "o-1"}, "wait": True}]


@pytest.mark.parametrize("child,error,match", [
    (TaskerError("no version matches ~=3.0"), PermanentError, "cannot delegate the payment: no version"),
    (PermanentError("child failed"), PermanentError, "^child failed$"),
    (RetryableError("busy"), RetryableError, "^busy$"),
    (InvocationResult("c", "payments", "process_payment", "3.0.0", "pending", "x"), RetryableError, "'pending'"),
])
async def test_invoke_workflow_failures(child, error, match, sleeps):
    with pytest.raises(error, match=match):
        await Delegate().process(ctx(child=child))


async def test_invoke_workflow_plays_the_fault_before_calling(sleeps):
    c = ctx({"simulate": {"lookup": ["unavailable"]}})
    with pytest.raises(RetryableError, match="Tasker payments API unavailable"):
        await Delegate().process(c)
    c = ctx({"simulate": {"lookup": ["declined"]}})
    with pytest.raises(PermanentError, match="'declined'"):
        await Delegate().process(c)
    assert c.calls == []


# --- input helpers --------------------------------------------------------------------------------
def test_require_names_every_missing_or_blank_field():
    assert require({"a": 0, "b": False, "c": "x", "d": 1}, ("a", "b", "c"), "it") == {"a": 0, "b": False, "c": "x"}
    with pytest.raises(PermanentError, match="^Missing required fields for it: b, c$"):
        require({"a": 1, "b": None, "c": ""}, ["a", "b", "c"], "it")


def test_step_results():
    assert step_results(ctx(results={"validate": {"ok": True}}), "validate") == {"ok": True}
    for results in ({}, {"validate": "oops"}):
        with pytest.raises(PermanentError, match="lookup needs the results of step 'validate'"):
            step_results(ctx(results=results), "validate")


@pytest.mark.parametrize("value", [0, 1, 2599, 12.5])
def test_amount_accepts_non_negative_numbers(value):
    assert amount(value, "total") == value


@pytest.mark.parametrize("value", [-1, "10", None, True, [1]])
def test_amount_rejects_everything_else(value):
    with pytest.raises(PermanentError, match="total must be a non-negative number of cents"):
        amount(value, "total")
