"""The four-phase step handler of the plugin SDK (tasker_host.four_phase)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import tasker_host
from tasker_host import (
    FourPhaseHandler,
    PermanentError,
    RetryableError,
    ServiceError,
    ServiceRejected,
    ServiceUnavailable,
    StepContext,
    StepHandler,
    TaskerError,
    amount,
    require,
    step_results,
)
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.engine.retry import RetryPolicy, error_doc, judge
from tasker_host.models import StepState
from tasker_host.testing import FakeStepContext
from tasker_host.testing.simulation import DEFAULT_PLAN, Fault, FaultPlan, SimulatedService

pytestmark = pytest.mark.anyio


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
    plan: FaultPlan = DEFAULT_PLAN

    def catalogue(self, ctx: StepContext) -> Catalogue:
        """Where the handler gets its client: a test replaces it."""
        return Catalogue.for_step(ctx, self.plan)

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        return require(ctx.task.context, ("sku",), "lookup")

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        service = self.catalogue(ctx)
        ctx.seen_fault = service.fault
        return await service.lookup(inputs["sku"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"found": True, "sku": output["sku"]}


async def run(handler: StepHandler, c: FakeStepContext) -> Any:
    return handler.process_results(c, await handler.process(c))


def test_sdk_exports():
    for name in ("FourPhaseHandler", "require", "step_results", "amount"):
        assert name in tasker_host.__all__
    assert issubclass(FourPhaseHandler, StepHandler)
    assert list(inspect.signature(FourPhaseHandler.call_service).parameters) == ["self", "ctx", "inputs"]


async def test_the_four_phases_run_in_order(simulated_sleeps):
    c = ctx({"sku": "A1"})
    assert await run(Lookup(), c) == {"found": True, "sku": "A1"}
    assert c.seen_fault == Fault("ok", 5.0)


async def test_missing_inputs_are_permanent_and_no_service_is_called(simulated_sleeps):
    c = ctx({"sku": ""})
    with pytest.raises(PermanentError, match="Missing required fields for lookup: sku"):
        await Lookup().process(c)
    assert not hasattr(c, "seen_fault")


@pytest.mark.parametrize("outcome,error,match", [
    ("unavailable", ServiceUnavailable, "^Catalogue unavailable"),
    ("timeout", ServiceUnavailable, "^Catalogue timeout"),
    ("auth", ServiceRejected, "authentication failed"),
    ("not_found", ServiceRejected, "record not found"),
    ("declined", PermanentError, "service answered 'declined', not retrying"),
    ("unknown", RetryableError, "unknown service status 'unknown'"),
])
async def test_simulated_outcomes_are_classified(outcome, error, match, simulated_sleeps):
    with pytest.raises(error, match=match) as caught:
        await Lookup().process(ctx({"sku": "A1", "simulate": {"lookup": [outcome]}}))
    assert type(caught.value) is error


async def test_statuses(simulated_sleeps):
    with pytest.raises(PermanentError, match="'discontinued', not retrying"):
        await Lookup().process(ctx({"sku": "gone"}))


@pytest.mark.parametrize("error,state,kind", [
    (ServiceUnavailable("Ledger: record not found"), StepState.WAITING_RETRY, "retryable"),
    (ServiceRejected("Ledger unavailable, timeout"), StepState.ERROR, "permanent"),
    (ServiceError("Ledger: authentication failed"), StepState.WAITING_RETRY, "retryable"),
])
def test_service_errors_are_classified_by_type_never_by_message(error, state, kind):
    verdict = judge(error, attempt=1, retryable=True, retry_limit=3, policy=RetryPolicy(jitter=0.0))
    assert (verdict.state, error_doc(error)["kind"]) == (state, kind)


class FakeCatalogue:
    """A client a test gives the handler instead of the simulated one."""

    def __init__(self, answer: Any):
        self.answer, self.asked = answer, []
        self.fault = None

    async def lookup(self, sku: str) -> dict[str, Any]:
        self.asked.append(sku)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("answer,outcome", [
    ({"status": "found", "sku": "A1"}, {"found": True, "sku": "A1"}),
    (ServiceUnavailable("catalogue restarting", retry_after=7), ServiceUnavailable),
    (ServiceRejected("catalogue: sku A1 unknown"), ServiceRejected),
])
async def test_a_test_replaces_the_service_and_its_typed_errors_pass_through(answer, outcome, monkeypatch):
    fake = FakeCatalogue(answer)
    monkeypatch.setattr(Lookup, "catalogue", lambda self, ctx: fake)
    if isinstance(outcome, dict):
        assert await run(Lookup(), ctx({"sku": "A1"})) == outcome
    else:
        with pytest.raises(outcome) as caught:
            await Lookup().process(ctx({"sku": "A1"}))
        assert caught.value is answer  # unchanged: retry_after and message kept
    assert fake.asked == ["A1"]


async def test_a_bare_service_error_passes_through_and_is_retried(simulated_sleeps):
    with pytest.raises(ServiceError, match="^Catalogue: raise exploded$") as caught:
        await Lookup().process(ctx({"sku": "raise"}))
    assert error_doc(caught.value)["kind"] == "retryable"


class TeamLookup(Lookup):
    """What a team's own base class sets."""

    refused_statuses = frozenset({"declined", "closed"})
    plan = FaultPlan().answering_also("closed")


async def test_a_team_extends_refused_statuses_and_the_fault_plan(simulated_sleeps):
    with pytest.raises(PermanentError, match="'closed', not retrying"):
        await TeamLookup().process(ctx({"sku": "A1", "simulate": {"lookup": ["closed"]}}))
    with pytest.raises(PermanentError, match="unknown outcome"):  # the default plan does not know it
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

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.invoke_workflow(ctx, "payments", "process_payment", version="~=3.0",
                                          context=inputs, what="the payment")

    def shape(self, ctx: Any, output: dict[str, Any]) -> dict[str, Any]:
        return output


async def test_invoke_workflow_waits_for_the_child_and_summarises_it(simulated_sleeps):
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
async def test_invoke_workflow_failures(child, error, match, simulated_sleeps):
    with pytest.raises(error, match=match):
        await Delegate().process(ctx(child=child))


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
