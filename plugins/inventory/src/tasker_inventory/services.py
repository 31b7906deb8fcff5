"""Simulated services of the Inventory team: orders, warehouse, returns desk, purchasing and the
stock event bus.

Answers are deterministic and derived from the inputs, so a retried call returns the same ids.
Every call first plays the step's :class:`~tasker_host.testing.simulation.Fault` (the fault plan
of the task context's ``simulate`` key or ``TASKER_SIMULATE``).

* An order is delivered; it bought ``quantity`` to ``quantity + 2`` units and was paid with a
  payment id (``pay_...``) derived from the order id.
* A SKU has 20-219 units on hand in a warehouse, derived from both ids.
* Inspection grades items reported ``new`` or ``opened`` resellable and ``damaged`` ones damaged.

Handlers get their clients from :meth:`tasker_inventory.base.InventoryHandler.services`, which
a test replaces to give them other ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from tasker_host import StepContext
from tasker_host.testing.simulation import DEFAULT_PLAN, SimulatedService, TaskerApi, digest, now_iso

RESELLABLE_CONDITIONS = ("new", "opened")


def on_hand(warehouse_id: str, sku: str) -> int:
    return 20 + int(digest("stock", warehouse_id, sku)[:6], 16) % 200


class OrderService(SimulatedService):
    name = "Order service"

    async def get_order(self, order_id: str, sku: str, quantity: int) -> dict[str, Any]:
        status = await self.begin()
        h = digest("order", order_id, sku)
        delivered = date.fromordinal(date.today().toordinal() - 3 - int(h[:4], 16) % 10)
        return {"order_id": order_id, "status": status or "delivered", "sku": sku,
                "quantity_purchased": quantity + int(h[4:6], 16) % 3,
                "payment_id": "pay_" + digest("payment", order_id)[:12],
                "delivered_on": delivered.isoformat()}


class Warehouse(SimulatedService):
    name = "Warehouse management system"

    async def inspect(self, return_id: str, sku: str, reported_condition: str) -> dict[str, Any]:
        status = await self.begin()
        grade = "resellable" if reported_condition in RESELLABLE_CONDITIONS else "damaged"
        return {"status": status or "inspected", "sku": sku, "grade": grade,
                "inspection_id": "insp_" + digest("inspect", return_id, sku)[:12],
                "inspected_at": now_iso()}

    async def restock(self, warehouse_id: str, sku: str, quantity: int, grade: str,
                      key: str) -> dict[str, Any]:
        status = await self.begin()
        resellable = grade == "resellable"
        return {"status": status or ("restocked" if resellable else "quarantined"),
                "movement_id": "mov_" + digest("restock", key, sku, quantity)[:12],
                "location": f"{warehouse_id}/{'A-' + sku if resellable else 'QUARANTINE'}",
                "on_hand": on_hand(warehouse_id, sku) + (quantity if resellable else 0)}

    async def levels(self, warehouse_id: str, skus: list[str]) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "ok", "warehouse_id": warehouse_id,
                "levels": {sku: on_hand(warehouse_id, sku) for sku in skus}}

    async def apply(self, warehouse_id: str, new_levels: dict[str, int], key: str) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "applied", "warehouse_id": warehouse_id,
                "batch_id": "batch_" + digest("adjust", key, warehouse_id)[:12],
                "levels": dict(new_levels), "applied_at": now_iso()}


class ReturnsDesk(SimulatedService):
    name = "Returns desk"

    async def close(self, return_id: str, *references: Any) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "closed", "return_id": return_id,
                "closure_id": "close_" + digest("close", return_id, *references)[:12],
                "closed_at": now_iso()}


class Purchasing(SimulatedService):
    name = "Purchasing service"

    async def flag_reorders(self, warehouse_id: str, skus: list[str]) -> dict[str, Any]:
        status = await self.begin()
        request_id = "po_" + digest("reorder", warehouse_id, *skus)[:12] if skus else None
        return {"status": status or ("flagged" if skus else "nothing_to_flag"),
                "reorder_request_id": request_id, "skus": list(skus)}


class EventBus(SimulatedService):
    name = "Stock event bus"

    async def publish(self, topic: str, key: str) -> dict[str, Any]:
        status = await self.begin()
        return {"status": status or "published", "topic": topic,
                "event_id": "evt_" + digest("publish", topic, key)[:12], "published_at": now_iso()}


@dataclass(frozen=True)
class InventoryServices:
    """The service clients an Inventory handler calls during one attempt."""

    orders: OrderService
    warehouse: Warehouse
    returns: ReturnsDesk
    purchasing: Purchasing
    events: EventBus
    tasker: TaskerApi


def simulated_services(ctx: StepContext) -> InventoryServices:
    """The simulated services, behaving as the fault plan has them for ``ctx``'s attempt."""
    fault = DEFAULT_PLAN.fault_for(ctx)
    return InventoryServices(OrderService(fault), Warehouse(fault), ReturnsDesk(fault),
                             Purchasing(fault), EventBus(fault), TaskerApi(fault))
