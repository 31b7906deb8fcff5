"""The three installed team plugins, end to end through the engine (memory store and a SQLite
file, fake clock)."""

from __future__ import annotations

import anyio
import pytest

from tasker_host.engine.clock import FakeClock
from tasker_host.engine.events import EventKind
from tasker_host.engine.retry import RetryPolicy
from tasker_host.host import build_host
from tasker_host.models import StepState, TaskState
from tasker_host.settings import HostSettings
from tasker_host.store.base import TaskFilter

pytestmark = pytest.mark.anyio

PAYMENTS_CONTEXT = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                    "partial_refund": False}
CS_CONTEXT = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
              "refund_reason": "Product defective", "agent_notes": "Customer very upset, expedite refund",
              "requires_approval": True}


@pytest.fixture(params=["memory", "sqlite"])
def host(request, tmp_path):
    url = "memory" if request.param == "memory" else f"sqlite:///{tmp_path / 'tasker.db'}"
    h = build_host(HostSettings(database_url=url, strict_plugins=True), clock=FakeClock(),
                   policy=RetryPolicy(jitter=0.0))
    if not {"payments", "customer_success", "inventory"} <= set(h.registry.namespaces):
        pytest.fail("the three team plugins must be installed (./scripts/test installs them)")
    return h


async def drain(host, rounds: int = 20) -> None:
    """Run to idle; while work waits for a backoff, jump the fake clock to it and go again."""
    for _ in range(rounds):
        await host.engine.run_until_idle()
        ready_at = host.store.next_ready_at()
        if ready_at is None:
            return
        host.clock.advance(max(0.0, ready_at - host.clock.now()))
    raise AssertionError("work still pending after draining")


def steps(task):
    return {s.name: s for s in task.steps}


async def test_customer_success_refund_calls_payments_by_range(host):
    parent = host.service.create_task("customer_success", "process_refund", "1.3.3", CS_CONTEXT).task
    await drain(host)
    parent = host.service.get_task(parent.id)
    assert parent.status is TaskState.COMPLETE, parent.error
    [child] = host.store.list_tasks(TaskFilter(parent_task_id=parent.id))
    assert child.full_name == "payments.process_refund@2.1.3"
    assert (child.status, child.parent_step) == (TaskState.COMPLETE, "execute_refund_workflow")
    delegation = steps(parent)["execute_refund_workflow"].results
    assert delegation["delegated_task_id"] == child.id
    assert delegation["delegated_full_name"] == "payments.process_refund@2.1.3"
    assert child.context["payment_id"] == steps(parent)["validate_refund_request"].results["payment_id"]
    assert child.context["refund_amount"] == 4999 and child.correlation_id == parent.correlation_id


async def test_inventory_return_calls_payments_too(host):
    context = {"return_id": "ret_1", "order_id": "ord_1", "sku": "SKU-1", "quantity": 1,
               "payment_id": "pay_123", "refund_amount": 1999}
    template = host.registry.resolve("inventory", "process_return")
    required = set((template.context_schema or {}).get("required", []))
    assert required <= set(context), f"update the test context: {required - set(context)}"
    task = host.service.create_task("inventory", "process_return", context=context).task
    await drain(host)
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE, task.error
    [child] = host.store.list_tasks(TaskFilter(parent_task_id=task.id))
    assert child.namespace == "payments" and child.status is TaskState.COMPLETE


async def test_injected_unavailable_retries_then_succeeds(host):
    context = {**PAYMENTS_CONTEXT, "simulate": {"process_gateway_refund": ["unavailable", "ok"]}}
    task = host.service.create_task("payments", "process_refund", "2.1.3", context).task
    await drain(host)
    task = host.service.get_task(task.id)
    refund = steps(task)["process_gateway_refund"]
    assert task.status is TaskState.COMPLETE and refund.attempts == 2
    kinds = [(t.step, t.to_state) for t in host.store.transitions(task.id) if t.step == "process_gateway_refund"]
    assert ("process_gateway_refund", "waiting_retry") in kinds


async def test_injected_permanent_failure_stops_after_one_attempt(host):
    context = {**PAYMENTS_CONTEXT, "simulate": {"process_gateway_refund": ["declined"]}}
    task = host.service.create_task("payments", "process_refund", "2.1.3", context).task
    await drain(host)
    task = host.service.get_task(task.id)
    refund = steps(task)["process_gateway_refund"]
    assert task.status is TaskState.ERROR
    assert (refund.state, refund.attempts, refund.last_error["kind"]) == (StepState.ERROR, 1, "permanent")
    assert steps(task)["update_payment_records"].attempts == 0


async def test_exhausted_retries_end_the_task_in_error(host):
    context = {**PAYMENTS_CONTEXT, "simulate": {"process_gateway_refund": ["unavailable"] * 5}}
    task = host.service.create_task("payments", "process_refund", "2.1.3", context).task
    await drain(host)
    task = host.service.get_task(task.id)
    refund = steps(task)["process_gateway_refund"]
    assert task.status is TaskState.ERROR
    assert (refund.state, refund.attempts) == (StepState.ERROR, 2)  # default_retry_limit: 2 in the YAML
    assert "retries exhausted" in [t for t in host.store.transitions(task.id) if t.to_state == "error"][0].reason


async def test_injected_timeout_is_enforced_and_retried(host):
    context = {**PAYMENTS_CONTEXT, "simulate": {"notify_customer": ["timeout", "ok"]}}
    task = host.service.create_task("payments", "process_refund", "2.1.3", context).task
    started = anyio.Event()
    host.events.subscribe(lambda e: e.kind is EventKind.STEP_STARTED and e.step == "notify_customer"
                          and started.set())
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run_until_idle)
        await started.wait()
        host.clock.advance(10)  # notify_customer has timeout_seconds: 10
    notify = steps(host.service.get_task(task.id))["notify_customer"]
    assert (notify.state, notify.last_error["kind"]) == (StepState.WAITING_RETRY, "timeout")
    await drain(host)
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE and steps(task)["notify_customer"].attempts == 2
