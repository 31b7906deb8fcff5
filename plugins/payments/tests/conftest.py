"""The plugin under test, for tasker-host's pytest plugin: its fixtures ``plugin_report``,
``run_task``, ``tasker_host_factory`` and ``handler_harness`` use it (tasker-host's docs/testing.md)."""

from __future__ import annotations

import pytest
from tasker_host.testing import PluginUnderTest

from tasker_payments import plugin

SAMPLE_CONTEXTS = {
    "process_refund": {"payment_id": "pay_123", "refund_amount": 4999,
                       "refund_reason": "customer_request", "partial_refund": False},
    "process_payment": {"customer_id": "cust_789", "amount": 2599, "currency": "USD",
                        "payment_method_id": "pm_card_visa", "order_id": "ord_1001"},
}


@pytest.fixture(scope="session")
def tasker_plugin() -> PluginUnderTest:
    # simulated: the services are tasker_host.testing.simulation ones, so every sample context
    # must also be accepted with a "simulate" fault plan
    return PluginUnderTest(plugin, namespace="payments", distribution="tasker-payments",
                           contexts=SAMPLE_CONTEXTS, simulated=True)
