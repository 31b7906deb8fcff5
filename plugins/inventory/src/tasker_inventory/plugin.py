"""The Inventory team's tasker-host plugin: namespace ``inventory``, its templates and handlers.

Registered through the entry point ``inventory = "tasker_inventory.plugin"`` in the group
``tasker_host.plugins``. The hooks only return values; nothing runs at import time.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from tasker_host import Namespace, StepHandler, hookimpl

from tasker_inventory.return_handlers import (
    CloseReturnHandler,
    InspectItemHandler,
    RefundCustomerHandler,
    RestockItemHandler,
    ValidateReturnHandler,
)
from tasker_inventory.stock_handlers import (
    ApplyAdjustmentsHandler,
    CheckReorderPointsHandler,
    PublishStockLevelsHandler,
    ValidateAdjustmentsHandler,
)

NAMESPACE = "inventory"
HANDLER_PREFIX = "Inventory::StepHandlers::"
HANDLER_CLASSES = (
    ValidateReturnHandler,
    InspectItemHandler,
    RestockItemHandler,
    RefundCustomerHandler,
    CloseReturnHandler,
    ValidateAdjustmentsHandler,
    ApplyAdjustmentsHandler,
    CheckReorderPointsHandler,
    PublishStockLevelsHandler,
)


@hookimpl
def tasker_namespaces() -> list[Namespace]:
    return [
        Namespace(
            NAMESPACE,
            description="Warehouse stock levels and customer returns",
            owner="Inventory team",
        )
    ]


@hookimpl
def tasker_templates() -> list[Any]:
    return [files(__package__) / "templates"]


@hookimpl
def tasker_step_handlers() -> dict[str, type[StepHandler]]:
    return {HANDLER_PREFIX + cls.__name__: cls for cls in HANDLER_CLASSES}
