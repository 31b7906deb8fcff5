"""Payments workflows through the engine, with tasker-host's pytest plugin: ``run_task`` drives a
task to the end on a fake clock (backoffs skipped), on the memory store or SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from tasker_host import ServiceRejected, StepContext

from tasker_payments.base import PaymentsHandler
from tasker_payments.services import PaymentGateway, PaymentsServices, simulated_services

REFUND = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request"}
REFUND_STEPS = ["validate_payment_eligibility", "process_gateway_refund", "update_payment_records",
                "notify_customer"]


def test_a_refund_runs_every_step_once(run_task):
    run = run_task("process_refund", REFUND).assert_complete()
    assert run.full_name == "payments.process_refund@2.1.3"
    assert run.attempts == dict.fromkeys(REFUND_STEPS, 1) and run.errors == {}
    assert run.results["process_gateway_refund"]["refund_id"].startswith("re_")
    assert run.results["update_payment_records"]["payment_status"] == "partially_refunded"


def test_the_older_refund_has_no_customer_notification(run_task):
    run = run_task("process_refund", REFUND, version="2.0.0").assert_complete()
    assert list(run.results) == REFUND_STEPS[:3]


def test_a_gateway_outage_is_retried_after_its_backoff(run_task):
    run = run_task("process_refund", {**REFUND, "simulate": {"process_gateway_refund": ["unavailable"]}})
    run.assert_complete()
    assert run.attempts["process_gateway_refund"] == 2
    assert run.errors["process_gateway_refund"] == {
        "type": "ServiceUnavailable", "kind": "retryable",
        "message": "Payment gateway unavailable (simulated)"}


def test_an_outage_longer_than_the_retry_limit_ends_the_task(run_task):
    run = run_task("process_refund", {**REFUND, "simulate": {"process_gateway_refund": "unavailable"}})
    assert run.status == "error"
    assert run.attempts == {**dict.fromkeys(REFUND_STEPS, 0), "validate_payment_eligibility": 1,
                            "process_gateway_refund": 2}  # default_retry_limit: 2


def test_a_declined_refund_fails_for_good_on_sqlite(tasker_host_factory):
    host = tasker_host_factory(database="sqlite")
    run = host.run_task("process_refund", {**REFUND, "simulate": {"process_gateway_refund": ["declined"]}})
    assert run.status == "error" and run.states["process_gateway_refund"] == "error"
    assert run.errors["process_gateway_refund"]["kind"] == "permanent"
    assert run.attempts["process_gateway_refund"] == 1 and run.attempts["update_payment_records"] == 0


class ClosedAccountGateway(PaymentGateway):
    """What a test gives the handlers instead of the simulated gateway: refunds are refused."""

    async def refund(self, payment_id: str, refund_amount: float, currency: str) -> dict[str, Any]:
        raise ServiceRejected(f"account of {payment_id} is closed")


@pytest.mark.anyio
async def test_the_handlers_services_are_replaced_by_the_test(arun_task, monkeypatch):
    def services(self: PaymentsHandler, ctx: StepContext) -> PaymentsServices:
        simulated = simulated_services(ctx)
        return PaymentsServices(ClosedAccountGateway(), simulated.fraud, simulated.ledger,
                                simulated.notifier)

    monkeypatch.setattr(PaymentsHandler, "services", services)
    run = await arun_task("process_refund", REFUND)
    assert run.status == "error"
    assert run.errors == {"process_gateway_refund": {
        "type": "ServiceRejected", "kind": "permanent", "message": "account of pay_123 is closed"}}
    assert run.results["validate_payment_eligibility"]["eligible"] is True  # the rest is simulated


def test_a_payment_is_charged_and_an_expired_card_fails_for_good(run_task):
    payment = {"customer_id": "cust_789", "amount": 2599, "payment_method_id": "pm_card_visa"}
    run = run_task("process_payment", payment).assert_complete()
    assert run.results["charge_payment"]["charge_id"].startswith("ch_")
    expired = run_task("process_payment", {**payment, "payment_method_id": "pm_expired_card"})
    assert expired.status == "error" and expired.attempts["validate_payment_method"] == 1
    assert "'expired', not retrying" in expired.errors["validate_payment_method"]["message"]
