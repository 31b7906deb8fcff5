"""The plugin under test, for tasker-host's pytest plugin: its fixtures ``plugin_report``,
``run_task``, ``tasker_host_factory`` and ``handler_harness`` use it (tasker-host's docs/testing.md)."""

from __future__ import annotations

import pytest
from tasker_host.testing import PluginUnderTest

from tasker_customer_success import plugin

SAMPLE_CONTEXTS = {
    "process_refund": {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
                       "refund_reason": "Product defective", "requires_approval": True,
                       "agent_notes": "Customer very upset, expedite refund"},
    "escalate_ticket": {"ticket_id": "cs_456", "customer_id": "cust_789", "severity": "high"},
}


@pytest.fixture(scope="session")
def tasker_plugin() -> PluginUnderTest:
    # simulated: the services are tasker_host.testing.simulation ones, so every sample context
    # must also be accepted with a "simulate" fault plan
    return PluginUnderTest(plugin, namespace="customer_success", distribution="tasker-customer-success",
                           contexts=SAMPLE_CONTEXTS, simulated=True)
