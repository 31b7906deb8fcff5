"""``tasker_host.testing.HandlerHarness``: a plugin's handlers run without an engine, sync and
async ones alike, templates loaded by the host's own loader; and the checks plugins' handler
tests share (``run_happy_path``, ``fail_step``, ``answer_with``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tasker_host import Namespace, PermanentError, StepContext, StepHandler
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.errors import PluginLoadFailures
from tasker_host.testing import FakeStepContext, HandlerHarness, NoopHandler, answer_with, make_plugin, template_doc

pytestmark = pytest.mark.anyio
REFUND = {"payment_id": "pay_123", "refund_amount": 4999}


def _payments_harness() -> HandlerHarness:
    from tasker_payments import plugin

    return HandlerHarness(plugin)


class SyncHandler(StepHandler):
    def process(self, ctx: StepContext) -> dict[str, Any]:
        return {"ran": ctx.step_name, "thread": threading.current_thread().name}


class SyncReturningAwaitable(StepHandler):
    def process(self, ctx: StepContext) -> Any:
        async def later() -> dict[str, Any]:
            return {"ran": ctx.step_name}

        return later()


class AsyncShaping(StepHandler):
    async def process(self, ctx: StepContext) -> dict[str, Any]:
        return {"seen": sorted(ctx.results)}

    async def process_results(self, ctx: StepContext, output: Any) -> dict[str, Any]:
        return {**output, "shaped": True}


class ListResultHandler(NoopHandler):
    async def process(self, ctx: StepContext) -> list[str]:
        return ["not", "a", "dict"]


def _shop(steps: list[dict[str, Any]], handlers: dict[str, type[StepHandler]], **extra: Any) -> Any:
    return make_plugin(namespaces=[Namespace("shop", "Orders")],
                       templates=[template_doc("shop", "checkout", "1.0.0", steps, **extra)],
                       handlers=handlers)


def test_the_payments_catalogue_comes_from_the_hosts_loader():
    harness = _payments_harness()
    assert harness.catalogue == [("process_payment", "3.0.0"), ("process_refund", "2.0.0"),
                                 ("process_refund", "2.1.3")]
    assert str(harness.template("process_refund").version) == "2.1.3"
    assert harness.step("process_refund", "process_gateway_refund").handler_config["timeout_seconds"] == 30
    assert ("process_refund", "notify_customer") in harness.steps()


async def test_sync_and_async_handlers_both_run_as_the_engine_runs_them():
    steps = [{"name": "a", "handler_class": "Sync"},
             {"name": "b", "handler_class": "Later", "depends_on_step": "a"},
             {"name": "c", "handler_class": "Shaping", "depends_on_steps": ["a", "b"]}]
    harness = HandlerHarness(_shop(steps, {"Sync": SyncHandler, "Later": SyncReturningAwaitable,
                                           "Shaping": AsyncShaping}))
    results = await harness.run_happy_path("checkout", {})
    assert results == {"a": {"ran": "a", "thread": threading.current_thread().name},
                       "b": {"ran": "b"}, "c": {"seen": ["a", "b"], "shaped": True}}


async def test_steps_run_dependencies_first_whatever_their_declared_order():
    steps = [{"name": "notify", "handler_class": "Noop", "depends_on_step": "charge"},
             {"name": "charge", "handler_class": "Noop"}]
    harness = HandlerHarness(_shop(steps, {"Noop": NoopHandler}))
    trace: list[str] = []
    assert list(await harness.run("checkout", {}, trace)) == ["charge", "notify"] == trace


def test_a_template_the_host_refuses_fails_the_harness_naming_it():
    steps = [{"name": "a", "handler_class": "Noop", "depends_on_step": "nope"}]
    with pytest.raises(PluginLoadFailures, match="depends on unknown step 'nope'"):
        HandlerHarness(_shop(steps, {"Noop": NoopHandler}))


def test_a_plugin_with_several_namespaces_names_one():
    plugin = make_plugin(namespaces=["shop", "shop_admin"], templates=[template_doc("shop", "ping", "1.0.0")],
                         handlers={"Noop": NoopHandler})
    with pytest.raises(ValueError, match=r"owns namespaces \['shop', 'shop_admin'\]: name one"):
        HandlerHarness(plugin)
    assert HandlerHarness(plugin, "shop").catalogue == [("ping", "1.0.0")]


async def test_run_happy_path_returns_the_results_of_every_step(simulated_sleeps):
    results = await _payments_harness().run_happy_path("process_refund", REFUND, version="2.1.3")
    assert list(results)[-1] == "notify_customer"


async def test_run_happy_path_fails_on_a_result_that_is_not_a_dict():
    harness = HandlerHarness(_shop([{"name": "only_step", "handler_class": "Noop"}],
                                   {"Noop": ListResultHandler}))
    with pytest.raises(AssertionError, match=r"checkout: step results that are not dicts: "
                                             r"\{'only_step': 'list'\}"):
        await harness.run_happy_path("checkout", {})


async def test_fail_step_returns_the_failure_of_the_planned_step(simulated_sleeps):
    failure = await _payments_harness().fail_step("process_refund", "process_gateway_refund",
                                                  "declined", REFUND)
    assert isinstance(failure, PermanentError)


async def test_fail_step_fails_when_the_run_completes_or_another_step_fails(simulated_sleeps):
    harness = _payments_harness()
    with pytest.raises(AssertionError, match="ran to completion although 'notify_customer' was planned"):
        await harness.fail_step("process_refund", "notify_customer", "ok", REFUND)
    with pytest.raises(AssertionError, match="'validate_payment_eligibility' failed"):
        await harness.fail_step("process_refund", "notify_customer", "declined", {})


async def test_answer_with_carries_the_callers_correlation_id():
    child = InvocationResult("child-1", "payments", "process_refund", "2.1.3", "complete", "corr-x")
    ctx = FakeStepContext(TaskInfo("t-1", "shop", "checkout", "1.2.0", {}), "charge",
                          child=answer_with(child))
    answered = await ctx.invoke("payments", "process_refund", context={"correlation_id": "shop-7"})
    assert (answered.task_id, answered.correlation_id) == ("child-1", "shop-7")
