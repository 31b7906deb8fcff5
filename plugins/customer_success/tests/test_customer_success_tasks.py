"""Customer Success workflows through the engine, with tasker-host's pytest plugin: the refund's
call into ``payments`` answered by a stand-in (the Payments plugin is not loaded)."""

from __future__ import annotations

import pytest
from tasker_host import PermanentError, RetryableError

REFUND = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
          "refund_reason": "Product defective", "requires_approval": True}
APPROVAL = {"approved": True, "approver": "mgr_maria", "note": "ok"}
HOUR = 3600.0


def approved(host, context=REFUND):
    """Run a refund until it waits for its manager, then send the approval and run the rest."""
    run = host.run_task("process_refund", context)
    assert run.status == "in_progress" and run.waiting["get_manager_approval"]["event"] == "approval"
    return host.send_event(run.task_id, "approval", APPROVAL, idempotency_key="approval-1")
PAYMENTS_REFUND = {"process_gateway_refund": {"refund_id": "re_stand_in"}}


def test_the_refund_is_delegated_to_payments_within_the_version_range(tasker_host_factory):
    host = tasker_host_factory(stand_ins={"payments.process_refund": PAYMENTS_REFUND})
    run = approved(host).assert_complete()
    assert run.results["get_manager_approval"]["manager_id"] == "mgr_maria"
    (call,) = run.invocations
    assert (call.namespace, call.name, call.version, call.wait) == ("payments", "process_refund",
                                                                     "~=2.1", True)
    assert call.context["refund_reason"] == "customer_request"
    assert call.context["payment_id"] == run.results["validate_refund_request"]["payment_id"]
    assert run.results["update_ticket_status"]["gateway_refund_id"] == "re_stand_in"
    assert host.calls == [call]


@pytest.mark.parametrize("answer,attempts,kind", [
    (PermanentError("child task payments.process_refund ended error"), 1, "permanent"),
    (RetryableError("payments host busy"), 3, "retryable"),  # default_retry_limit: 3
])
def test_a_failing_payments_refund_fails_the_delegation(tasker_host_factory, answer, attempts, kind):
    run = approved(tasker_host_factory(stand_ins={"payments": answer}))
    assert run.status == "error"
    assert run.attempts["execute_refund_workflow"] == attempts == len(run.invocations)
    assert run.errors["execute_refund_workflow"]["kind"] == kind
    assert run.attempts["update_ticket_status"] == 0


def test_a_call_to_a_namespace_nobody_stands_in_for_has_no_route(tasker_host_factory):
    run = approved(tasker_host_factory())
    assert run.status == "error" and run.invocations == ()
    assert "no route delivers calls to namespace 'payments'" in run.errors["execute_refund_workflow"]["message"]


def test_the_approval_may_be_rejected_or_never_come(tasker_host_factory):
    host = tasker_host_factory(stand_ins={"payments.process_refund": PAYMENTS_REFUND})
    waiting = host.run_task("process_refund", REFUND)
    rejected = host.send_event(waiting.task_id, "approval", {"approved": False, "approver": "mgr_bob"})
    assert rejected.status == "error" and "rejected by mgr_bob" in rejected.errors["get_manager_approval"]["message"]
    assert rejected.attempts["execute_refund_workflow"] == 0 and host.calls == []
    forgotten = host.run_task("process_refund", {**REFUND, "ticket_id": "cs_457"})
    host.clock.advance(48 * HOUR)
    host.drain()
    run = host.task_run(forgotten.task_id)
    assert run.status == "error" and "within 48 hours" in run.errors["get_manager_approval"]["message"]


def test_a_small_refund_is_auto_approved_without_waiting(tasker_host_factory):
    host = tasker_host_factory(stand_ins={"payments.process_refund": PAYMENTS_REFUND})
    run = host.run_task("process_refund", {**REFUND, "requires_approval": False, "refund_amount": 100})
    assert run.assert_complete().results["get_manager_approval"]["auto_approved"] is True


def test_1_3_3_still_asks_the_simulated_approval_service(tasker_host_factory):
    host = tasker_host_factory(stand_ins={"payments.process_refund": PAYMENTS_REFUND})
    run = host.run_task("process_refund", REFUND, version="1.3.3").assert_complete()
    assert run.results["get_manager_approval"]["approval_obtained"] is True


def test_a_critical_escalation_notifies_and_pages_in_parallel(run_task):
    run = run_task("escalate_ticket", {"ticket_id": "cs_456", "customer_id": "cust_789",
                                       "severity": "critical"}).assert_complete()
    assert run.results["page_on_call"]["paged"] is True
    assert run.results["record_escalation"]["paged"] is True


def test_a_closed_ticket_is_not_retried(run_task):
    run = run_task("escalate_ticket", {"ticket_id": "cs_456", "customer_id": "cust_789",
                                       "severity": "low", "simulate": {"assess_ticket": ["closed"]}})
    assert run.status == "error" and run.attempts["assess_ticket"] == 1
    assert "'closed', not retrying" in run.errors["assess_ticket"]["message"]
