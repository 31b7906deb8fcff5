"""Customer Success workflows through the engine, with tasker-host's pytest plugin: the refund's
call into ``payments`` answered by a stand-in (the Payments plugin is not loaded)."""

from __future__ import annotations

import pytest
from tasker_host import PermanentError, RetryableError

REFUND = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
          "refund_reason": "Product defective", "requires_approval": True}
PAYMENTS_REFUND = {"process_gateway_refund": {"refund_id": "re_stand_in"}}


def test_the_refund_is_delegated_to_payments_within_the_version_range(tasker_host_factory):
    host = tasker_host_factory(stand_ins={"payments.process_refund": PAYMENTS_REFUND})
    run = host.run_task("process_refund", REFUND).assert_complete()
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
    run = tasker_host_factory(stand_ins={"payments": answer}).run_task("process_refund", REFUND)
    assert run.status == "error"
    assert run.attempts["execute_refund_workflow"] == attempts == len(run.invocations)
    assert run.errors["execute_refund_workflow"]["kind"] == kind
    assert run.attempts["update_ticket_status"] == 0


def test_a_call_to_a_namespace_nobody_stands_in_for_has_no_route(run_task):
    run = run_task("process_refund", REFUND)
    assert run.status == "error" and run.invocations == ()
    assert "no route delivers calls to namespace 'payments'" in run.errors["execute_refund_workflow"]["message"]


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
