"""Step handlers of ``inventory.update_stock_levels`` (2.3.0).

validate_adjustments → apply_adjustments → {check_reorder_points, publish_stock_levels}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasker_host import PermanentError, StepContext, require, step_results

from tasker_inventory.base import InventoryHandler

VALIDATE_STEP = "validate_adjustments"
APPLY_STEP = "apply_adjustments"
DEFAULT_REORDER_POINT = 25
DEFAULT_TOPIC = "inventory.stock_levels"


def _adjustments(value: Any) -> list[dict[str, Any]]:
    """``[{"sku": str, "delta": int}, ...]`` with each SKU once, or a permanent error."""
    if not isinstance(value, list) or not value:
        raise PermanentError("adjustments must be a non-empty list of {sku, delta}")
    for item in value:
        ok = isinstance(item, Mapping) and isinstance(item.get("sku"), str) and item["sku"]
        if not ok or isinstance(item.get("delta"), bool) or not isinstance(item.get("delta"), int):
            raise PermanentError(f"bad adjustment {item!r}: expected {{sku: str, delta: int}}")
    skus = [item["sku"] for item in value]
    if len(set(skus)) != len(skus):
        raise PermanentError(f"each SKU may be adjusted once per task, got {skus}")
    return [{"sku": item["sku"], "delta": item["delta"]} for item in value]


class ValidateAdjustmentsHandler(InventoryHandler):
    """Read current levels; an adjustment that would go below zero is refused."""

    ok_statuses = frozenset({"ok"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(ctx.task.context, ("warehouse_id", "adjustments"), "stock adjustment")
        inputs["adjustments"] = _adjustments(inputs["adjustments"])
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        skus = [a["sku"] for a in inputs["adjustments"]]
        levels = await self.services(ctx).warehouse.levels(inputs["warehouse_id"], skus)
        return {**levels, "adjustments": inputs["adjustments"]}

    def check_response(self, ctx: StepContext, inputs: dict[str, Any], response: Any) -> None:
        super().check_response(ctx, inputs, response)
        negative = [a["sku"] for a in inputs["adjustments"]
                    if response["levels"][a["sku"]] + a["delta"] < 0]
        if negative:
            raise PermanentError(f"adjustments would take {negative} below zero")

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"validated": True, "warehouse_id": output["warehouse_id"],
                "current_levels": dict(output["levels"]), "adjustments": output["adjustments"]}


class ApplyAdjustmentsHandler(InventoryHandler):
    """Apply the adjustments as one batch; the task id makes the batch idempotent."""

    ok_statuses = frozenset({"applied"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        fields = ("warehouse_id", "current_levels", "adjustments")
        inputs = require(step_results(ctx, VALIDATE_STEP), fields, "applying adjustments")
        current = inputs["current_levels"]
        inputs["new_levels"] = {a["sku"]: current[a["sku"]] + a["delta"]
                                for a in inputs["adjustments"]}
        return inputs

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        warehouse = self.services(ctx).warehouse
        return await warehouse.apply(inputs["warehouse_id"], inputs["new_levels"], ctx.task.id)

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"applied": True, "batch_id": output["batch_id"],
                "warehouse_id": output["warehouse_id"], "new_levels": dict(output["levels"]),
                "applied_at": output["applied_at"]}


class CheckReorderPointsHandler(InventoryHandler):
    """Flag SKUs that fell under ``handler_config.reorder_point`` to purchasing."""

    ok_statuses = frozenset({"flagged", "nothing_to_flag"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(step_results(ctx, APPLY_STEP), ("warehouse_id", "new_levels"), "reorder check")
        point = int(ctx.config.get("reorder_point", DEFAULT_REORDER_POINT))
        low = sorted(sku for sku, level in inputs["new_levels"].items() if level < point)
        return {**inputs, "reorder_point": point, "low_stock_skus": low}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        purchasing = self.services(ctx).purchasing
        flagged = await purchasing.flag_reorders(inputs["warehouse_id"], inputs["low_stock_skus"])
        return {**flagged, "reorder_point": inputs["reorder_point"]}

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"reorder_checked": True, "reorder_point": output["reorder_point"],
                "low_stock_skus": output["skus"], "reorder_request_id": output["reorder_request_id"]}


class PublishStockLevelsHandler(InventoryHandler):
    """Publish the new levels on the stock event bus for storefronts and reports."""

    ok_statuses = frozenset({"published"})

    def extract_inputs(self, ctx: StepContext) -> dict[str, Any]:
        inputs = require(step_results(ctx, APPLY_STEP), ("batch_id",), "publishing stock levels")
        return {**inputs, "topic": ctx.config.get("topic", DEFAULT_TOPIC)}

    async def call_service(self, ctx: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return await self.services(ctx).events.publish(inputs["topic"], inputs["batch_id"])

    def shape(self, ctx: StepContext, output: dict[str, Any]) -> dict[str, Any]:
        return {"published": True, "topic": output["topic"], "event_id": output["event_id"],
                "published_at": output["published_at"]}
