"""The plugin under test, for tasker-host's pytest plugin: its fixtures ``plugin_report``,
``run_task``, ``tasker_host_factory`` and ``handler_harness`` use it (tasker-host's docs/testing.md)."""

from __future__ import annotations

import pytest
from tasker_host.testing import PluginUnderTest

from tasker_inventory import plugin

SAMPLE_CONTEXTS = {
    "process_return": {"return_id": "rma_1", "order_id": "ord_1001", "sku": "SKU-RED-M",
                       "quantity": 1, "refund_amount": 2599, "item_condition": "opened"},
    "update_stock_levels": {"warehouse_id": "wh_east", "reason": "receiving",
                            "adjustments": [{"sku": "SKU-RED-M", "delta": 12}]},
}


@pytest.fixture(scope="session")
def tasker_plugin() -> PluginUnderTest:
    # simulated: the services are tasker_host.testing.simulation ones, so every sample context
    # must also be accepted with a "simulate" fault plan
    return PluginUnderTest(plugin, namespace="inventory", distribution="tasker-inventory",
                           contexts=SAMPLE_CONTEXTS, simulated=True)
