"""Behaviour of the Inventory step handlers with a fake step context (no engine, no sleeping)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tasker_host import InvocationResult, PermanentError, RetryableError, TaskerError
from tasker_host.testing import HandlerHarness, answer_with, simulation

from tasker_inventory import plugin

NAMESPACE = "inventory"
RETURN = {"return_id": "rma_1", "order_id": "ord_1001", "sku": "SKU-RED-M", "quantity": 1,
          "refund_amount": 2599, "return_reason": "Too small", "item_condition": "opened"}
STOCK = {"warehouse_id": "wh_east", "reason": "receiving",
         "adjustments": [{"sku": "SKU-RED-M", "delta": 12}, {"sku": "SKU-BLUE-L", "delta": -3}]}
CONTEXTS = {"process_return": RETURN, "update_stock_levels": STOCK}
FAILURES = [("unavailable", RetryableError), ("timeout", RetryableError),
            ("unknown", RetryableError), ("declined", PermanentError),
            ("not_found", PermanentError), ("auth", PermanentError)]

# the fixtures anyio_backend (asyncio) and simulated_sleeps come with tasker-host's pytest plugin


def _child(status="complete", correlation_id="corr-1"):
    return InvocationResult("child-9", "payments", "process_refund", "2.1.3", status,
                            correlation_id, {"process_gateway_refund": {"refund_id": "re_xyz"}})


# the default child: complete, with the caller's correlation id
HARNESS = HandlerHarness(plugin, NAMESPACE, child=answer_with(_child()))
_ctx, _run_step, _run = HARNESS.ctx, HARNESS.run_step, HARNESS.run  # _run: steps in template order


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(HARNESS.newest()))
async def test_happy_path_runs_every_step_with_json_results(name, simulated_sleeps):
    await HARNESS.run_happy_path(name, CONTEXTS[name])
    assert simulated_sleeps == []


@pytest.mark.anyio
async def test_return_refunds_through_payments_2x(simulated_sleeps):
    calls: list[dict[str, Any]] = []
    results = await _run("process_return", RETURN, calls=calls)
    (call,) = calls
    assert (call["namespace"], call["name"], call["version"], call["wait"]) == (
        "payments", "process_refund", ">=2,<3", True)
    context = call["context"]
    assert context["payment_id"] == results["validate_return"]["payment_id"]
    assert context["payment_id"].startswith("pay_")
    assert (context["refund_amount"], context["refund_reason"], context["initiated_by"]) == (
        2599, "customer_request", "inventory")
    assert context["correlation_id"].startswith("inv-")
    assert results["refund_customer"]["refund_full_name"] == "payments.process_refund@2.1.3"
    assert results["close_return"]["gateway_refund_id"] == "re_xyz"
    assert results["close_return"]["restocked"] is True


@pytest.mark.anyio
async def test_damaged_items_are_quarantined_but_still_refunded(simulated_sleeps):
    results = await _run("process_return", {**RETURN, "item_condition": "damaged"})
    assert results["inspect_item"]["restockable"] is False
    assert results["restock_item"]["restocked"] is False
    assert results["restock_item"]["location"].endswith("QUARANTINE")
    assert results["close_return"]["return_closed"] is True


@pytest.mark.anyio
async def test_stock_levels_are_applied_and_low_stock_is_flagged(simulated_sleeps):
    results = await _run("update_stock_levels", STOCK)
    current = results["validate_adjustments"]["current_levels"]
    assert results["apply_adjustments"]["new_levels"] == {
        "SKU-RED-M": current["SKU-RED-M"] + 12, "SKU-BLUE-L": current["SKU-BLUE-L"] - 3}
    drain = {**STOCK, "adjustments": [{"sku": "SKU-RED-M", "delta": -current["SKU-RED-M"]}]}
    flagged = (await _run("update_stock_levels", drain))["check_reorder_points"]
    assert flagged["low_stock_skus"] == ["SKU-RED-M"]
    assert flagged["reorder_request_id"].startswith("po_")


@pytest.mark.anyio
@pytest.mark.parametrize("child,error", [
    (_child(status="pending"), RetryableError),
    (_child(status="error"), PermanentError),
    (PermanentError("child payments task failed"), PermanentError),
    (TaskerError("no version of payments.process_refund matches >=2,<3"), PermanentError),
])
async def test_refund_delegation_outcomes_are_classified(child, error, simulated_sleeps):
    trace: list[str] = []
    with pytest.raises(error):
        await _run("process_return", RETURN, trace, child=child)
    assert trace[-1] == "refund_customer"


@pytest.mark.anyio
@pytest.mark.parametrize("outcome,error", FAILURES)
@pytest.mark.parametrize("name,step", HARNESS.steps())
async def test_injected_failures_are_classified(name, step, outcome, error, simulated_sleeps):
    assert isinstance(await HARNESS.fail_step(name, step, outcome, CONTEXTS[name]), error)


@pytest.mark.anyio
async def test_timeout_sleeps_twice_the_step_timeout(simulated_sleeps):
    context = {**RETURN, "simulate": {"inspect_item": ["timeout"]}}
    with pytest.raises(RetryableError, match="timeout"):
        await _run("process_return", context)
    assert simulated_sleeps == [120.0]  # handler_config.timeout_seconds is 60


@pytest.mark.anyio
async def test_retry_then_success_and_environment_plan(simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps({"inventory.validate_return": ["unavailable"]}))
    with pytest.raises(RetryableError, match="unavailable"):
        await _run_step(_ctx("process_return", "validate_return", RETURN, {}))
    retried = await _run_step(_ctx("process_return", "validate_return", RETURN, {}, attempt=2))
    assert retried["return_validated"] is True
    context = {**RETURN, "simulate": {"validate_return": ["slow:0.25"]}}  # context plan wins
    assert "close_return" in await _run("process_return", context)
    assert simulated_sleeps == [0.25]


@pytest.mark.anyio
@pytest.mark.parametrize("name,context,match", [
    ("process_return", {"sku": "SKU-1"}, "return_id, order_id, quantity, refund_amount"),
    ("process_return", {**RETURN, "quantity": 0}, "quantity"),
    ("update_stock_levels", {**STOCK, "adjustments": []}, "non-empty"),
    ("update_stock_levels", {**STOCK, "adjustments": [{"sku": "A", "delta": "1"}]}, "bad adjustment"),
    ("update_stock_levels", {**STOCK, "adjustments": [{"sku": "A", "delta": 1}] * 2}, "once"),
    ("update_stock_levels", {**STOCK, "adjustments": [{"sku": "A", "delta": -10**6}]}, "below zero"),
])
async def test_bad_inputs_are_permanent(name, context, match, simulated_sleeps):
    with pytest.raises(PermanentError, match=match):
        await _run(name, context)


@pytest.mark.parametrize("handler_class", sorted(plugin.tasker_step_handlers()))
def test_result_shaping_failures_are_permanent(handler_class):
    ctx = _ctx("process_return", "close_return", RETURN, {})
    with pytest.raises(PermanentError, match="failed to process"):
        plugin.tasker_step_handlers()[handler_class]().process_results(ctx, {})
