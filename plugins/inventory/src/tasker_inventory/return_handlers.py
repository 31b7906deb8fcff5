"""Step handlers of ``inventory.process_return`` (1.4.0).

validate_return → inspect_item → {restock_item, refund_customer} → close_return. The refund
itself is delegated to ``payments.process_refund`` through ``ctx.invoke``.
"""

from __future__ import annotations

from typing import Any

from tasker_host import PermanentError, StepContext, amount, require, step_results
from tasker_host.testing.simulation import digest

from tasker_inventory.base import InventoryHandler

VALIDATE_STEP = "validate_return"
INSPECT_STEP = "inspect_item"
RESTOCK_STEP = "restock_item"
REFUND_STEP = "refund_customer"
DELEGATION_CONFIG = ("target_namespace", "target_workflow", "target_version")
DEFAULT_WAREHOUSE = "wh_main"


def _quantity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PermanentError(f"quantity must be a positive integer, got {value!r}")
    return value


class ValidateReturnHandler(InventoryHandler):
    """Check the order was delivered, bought at least ``quantity`` of ``sku``, and find its payment."""

    ok_statuses = frozenset({"delivered"})
    permanent_statuses = frozenset({"cancelled", "not_delivered"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("return_id", "order_id", "sku", "quantity", "refund_amount")
        inputs = require(ctx.task.context, fields, "return validation")
        inputs["quantity"] = _quantity(inputs["quantity"])
        inputs["refund_amount"] = amount(inputs["refund_amount"], "refund_amount")
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        order = await self.services(ctx).orders.get_order(inputs["order_id"], inputs["sku"],
                                                    inputs["quantity"])
        return {**order, "return_id": inputs["return_id"], "quantity": inputs["quantity"]}

    def check_response(self, ctx: StepContext, inputs: dict[str, Any], response: Any) -> None:
        super().check_response(ctx, inputs, response)
        if inputs["quantity"] > response["quantity_purchased"]:
            raise PermanentError(f"order {inputs['order_id']} bought only "
                                 f"{response['quantity_purchased']} of {inputs['sku']}")

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"return_validated": True, "return_id": output["return_id"],
                "order_id": output["order_id"], "sku": output["sku"],
                "quantity": output["quantity"], "payment_id": output["payment_id"],
                "delivered_on": output["delivered_on"]}


class InspectItemHandler(InventoryHandler):
    """Grade the returned item: resellable or damaged."""

    ok_statuses = frozenset({"inspected"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(step_results(ctx, VALIDATE_STEP), ("return_id", "sku"), "inspection")
        inputs["reported_condition"] = ctx.task.context.get("item_condition") or "opened"
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).warehouse.inspect(inputs["return_id"], inputs["sku"],
                                              inputs["reported_condition"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"inspected": True, "inspection_id": output["inspection_id"],
                "grade": output["grade"], "restockable": output["grade"] == "resellable",
                "inspected_at": output["inspected_at"]}


class RestockItemHandler(InventoryHandler):
    """Put resellable items back on the shelf and damaged ones in quarantine."""

    ok_statuses = frozenset({"restocked", "quarantined"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        item = require(step_results(ctx, VALIDATE_STEP), ("return_id", "sku", "quantity"), "restock")
        grade = require(step_results(ctx, INSPECT_STEP), ("grade",), "restock")
        warehouse = ctx.task.context.get("warehouse_id") or DEFAULT_WAREHOUSE
        return {**item, **grade, "warehouse_id": warehouse}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).warehouse.restock(inputs["warehouse_id"], inputs["sku"],
                                              inputs["quantity"], inputs["grade"],
                                              inputs["return_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"restocked": output["status"] == "restocked", "movement_id": output["movement_id"],
                "location": output["location"], "on_hand": output["on_hand"]}


class RefundCustomerHandler(InventoryHandler):
    """Refund the order's payment through ``payments.process_refund`` (version range in config)."""

    ok_statuses = frozenset({"complete", "resolved_manually"})
    permanent_statuses = frozenset({"error", "cancelled"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        config = require(ctx.config, DELEGATION_CONFIG, "customer refund (handler_config)")
        order = require(step_results(ctx, VALIDATE_STEP), ("payment_id", "return_id"), "refund")
        step_results(ctx, INSPECT_STEP)  # refunds only follow an inspection
        child_context = {
            "payment_id": order["payment_id"],
            "refund_amount": amount(ctx.task.context.get("refund_amount"), "refund_amount"),
            "refund_reason": "customer_request",
            "initiated_by": "inventory",
            "return_id": order["return_id"],
            "correlation_id": (ctx.task.context.get("correlation_id") or ctx.task.correlation_id
                               or "inv-" + digest("correlation", ctx.task.id)[:16]),
        }
        return {**config, "context": child_context}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        child = await self.delegate(ctx, inputs, "the refund")
        refund = child.pop("results", {}).get("process_gateway_refund") or {}
        return {**child, "refund_id": refund.get("refund_id")}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"refund_requested": True, "refund_task_id": output["task_id"],
                "refund_full_name": output["full_name"], "refund_task_status": output["status"],
                "gateway_refund_id": output["refund_id"],
                "correlation_id": output["correlation_id"]}


class CloseReturnHandler(InventoryHandler):
    """Close the return once the item is put away and the customer refunded."""

    ok_statuses = frozenset({"closed"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        order = require(step_results(ctx, VALIDATE_STEP), ("return_id",), "closing the return")
        refund = require(step_results(ctx, REFUND_STEP), ("refund_task_id",), "closing the return")
        restock = step_results(ctx, RESTOCK_STEP)
        return {**order, **refund, "restocked": restock.get("restocked") is True,
                "gateway_refund_id": ctx.results[REFUND_STEP].get("gateway_refund_id")}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        closure = await self.services(ctx).returns.close(inputs["return_id"], inputs["refund_task_id"])
        return {**closure, "restocked": inputs["restocked"],
                "refund_task_id": inputs["refund_task_id"],
                "gateway_refund_id": inputs["gateway_refund_id"]}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"return_closed": True, "return_id": output["return_id"],
                "closure_id": output["closure_id"], "restocked": output["restocked"],
                "refund_task_id": output["refund_task_id"],
                "gateway_refund_id": output["gateway_refund_id"], "closed_at": output["closed_at"]}
