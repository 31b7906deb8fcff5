"""Inventory workflows through the engine, with tasker-host's pytest plugin: the return's refund
answered by a ``payments`` stand-in (the Payments plugin is not loaded)."""

from __future__ import annotations

from tasker_host import InvocationResult

RETURN = {"return_id": "rma_1", "order_id": "ord_1001", "sku": "SKU-RED-M", "quantity": 1,
          "refund_amount": 2599, "item_condition": "opened"}


def test_a_return_is_restocked_and_refunded_through_payments(tasker_host_factory):
    host = tasker_host_factory(stand_ins={
        "payments.process_refund": {"process_gateway_refund": {"refund_id": "re_1"}}})
    run = host.run_task("process_return", RETURN).assert_complete()
    (call,) = run.invocations
    assert (call.namespace, call.name, call.version) == ("payments", "process_refund", ">=2,<3")
    assert call.context["payment_id"] == run.results["validate_return"]["payment_id"]
    assert run.results["close_return"] | {"closed_at": None} == {
        "return_closed": True, "return_id": "rma_1", "closure_id": run.results["close_return"]["closure_id"],
        "restocked": True, "refund_task_id": "stand-in-1", "gateway_refund_id": "re_1", "closed_at": None}


def test_a_refund_the_payments_task_left_pending_is_retried(tasker_host_factory):
    def answer(request):
        status = "pending" if len(host.calls) == 1 else "complete"
        return InvocationResult(f"pay-task-{len(host.calls)}", "payments", "process_refund", "2.1.3",
                                status, request.correlation_id, {})

    host = tasker_host_factory(stand_ins={"payments": answer})
    run = host.run_task("process_return", RETURN).assert_complete()
    assert run.attempts["refund_customer"] == 2
    assert run.results["refund_customer"]["refund_task_id"] == "pay-task-2"


def test_stock_levels_are_applied_and_a_flaky_event_bus_is_retried(run_task, simulated_sleeps):
    stock = {"warehouse_id": "wh_east", "reason": "receiving",
             "adjustments": [{"sku": "SKU-RED-M", "delta": 12}],
             "simulate": {"publish_stock_levels": ["unavailable", "timeout"]}}
    run = run_task("update_stock_levels", stock)
    assert run.status == "complete" and run.attempts["publish_stock_levels"] == 3
    assert simulated_sleeps == [20.0]  # the simulated timeout: twice timeout_seconds, not slept
    assert run.errors["publish_stock_levels"]["message"] == "Stock event bus timeout (simulated)"
