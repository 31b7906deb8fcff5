"""Behaviour of the Payments step handlers with a fake step context (no engine, no sleeping)."""

from __future__ import annotations

import json

import pytest
from tasker_host import PermanentError, RetryableError
from tasker_host.testing import HandlerHarness, simulation

from tasker_payments import plugin

NAMESPACE = "payments"
REFUND = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
          "partial_refund": False}
PAYMENT = {"customer_id": "cust_789", "amount": 2599, "currency": "USD",
           "payment_method_id": "pm_card_visa", "customer_email": "jo@example.com"}
CONTEXTS = {"process_refund": REFUND, "process_payment": PAYMENT}
FAILURES = [("unavailable", RetryableError), ("timeout", RetryableError),
            ("unknown", RetryableError), ("declined", PermanentError),
            ("not_found", PermanentError), ("auth", PermanentError)]

# the fixtures anyio_backend (asyncio) and simulated_sleeps come with tasker-host's pytest plugin

HARNESS = HandlerHarness(plugin, NAMESPACE)
STEPS = [(name, version, s.name) for name, version in HARNESS.catalogue if version != "2.0.0"
         for s in HARNESS.template(name, version).steps]


def _ctx(name, version, step, context, results, attempt=1):
    return HARNESS.ctx(name, step, context, results, attempt, version=version)


async def _run_step(ctx):
    return await HARNESS.run_step(ctx)


async def _run(name, version, context, trace=None):
    """Run every step in template order, feeding results forward, as the engine would."""
    return await HARNESS.run(name, context, version=version, trace=trace)


@pytest.mark.anyio
@pytest.mark.parametrize("name,version", HARNESS.catalogue)
async def test_happy_path_runs_every_step_with_json_results(name, version, handler_harness,
                                                             simulated_sleeps):
    await handler_harness.run_happy_path(name, CONTEXTS[name], version=version)
    assert simulated_sleeps == []


@pytest.mark.anyio
async def test_refund_results_and_idempotent_ids(simulated_sleeps):
    first = await _run("process_refund", "2.1.3", REFUND)
    second = await _run("process_refund", "2.1.3", REFUND)
    assert first["validate_payment_eligibility"]["eligible"] is True
    assert first["process_gateway_refund"]["refund_id"].startswith("re_")
    assert first["process_gateway_refund"]["refund_id"] == second["process_gateway_refund"]["refund_id"]
    assert first["update_payment_records"]["payment_status"] == "partially_refunded"
    assert first["notify_customer"]["notification_sent"] is True


@pytest.mark.anyio
async def test_payment_results(simulated_sleeps):
    results = await _run("process_payment", "3.0.0", PAYMENT)
    assert results["check_fraud_score"]["approved"] is True
    assert results["charge_payment"]["charge_id"].startswith("ch_")
    assert results["send_receipt"]["recipient"] == "jo@example.com"


@pytest.mark.anyio
@pytest.mark.parametrize("outcome,error", FAILURES)
@pytest.mark.parametrize("name,version,step", STEPS)
async def test_injected_failures_are_classified(name, version, step, outcome, error, simulated_sleeps):
    failure = await HARNESS.fail_step(name, step, outcome, CONTEXTS[name], version=version)
    assert isinstance(failure, error)


@pytest.mark.anyio
async def test_timeout_sleeps_twice_the_step_timeout(simulated_sleeps):
    context = {**REFUND, "simulate": {"process_gateway_refund": ["timeout"]}}
    with pytest.raises(RetryableError, match="timeout"):
        await _run("process_refund", "2.1.3", context)
    assert simulated_sleeps == [60.0]  # handler_config.timeout_seconds is 30


@pytest.mark.anyio
async def test_retry_succeeds_on_the_next_attempt_and_slow_answers(simulated_sleeps):
    context = {**REFUND, "simulate": {"process_gateway_refund": ["unavailable", "slow:0.5"]}}
    results = {"validate_payment_eligibility": await _run_step(
        _ctx("process_refund", "2.1.3", "validate_payment_eligibility", context, {}))}
    with pytest.raises(RetryableError, match="unavailable"):
        await _run_step(_ctx("process_refund", "2.1.3", "process_gateway_refund", context, results))
    for attempt in (2, 3):  # attempt 3 is past the end of the list: ok
        ctx = _ctx("process_refund", "2.1.3", "process_gateway_refund", context, results, attempt)
        assert (await _run_step(ctx))["refund_status"] == "succeeded"
    assert simulated_sleeps == [0.5]


@pytest.mark.anyio
async def test_environment_plan_applies_and_the_context_plan_wins(simulated_sleeps, monkeypatch):
    plan = {"payments.process_gateway_refund": ["unavailable"]}
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps(plan))
    with pytest.raises(RetryableError):
        await _run("process_refund", "2.1.3", REFUND)
    context = {**REFUND, "simulate": {"process_gateway_refund": ["ok"]}}
    assert "notify_customer" in await _run("process_refund", "2.1.3", context)


@pytest.mark.anyio
async def test_a_bare_string_applies_to_every_attempt(simulated_sleeps):
    context = {**PAYMENT, "simulate": {"validate_payment_method": "auth"}}
    for attempt in (1, 4):
        ctx = _ctx("process_payment", "3.0.0", "validate_payment_method", context, {}, attempt)
        with pytest.raises(PermanentError, match="authentication"):
            await _run_step(ctx)


@pytest.mark.anyio
@pytest.mark.parametrize("plan,match", [("boom", "mapping"),
                                        ({"validate_payment_method": ["explode"]}, "explode"),
                                        ({"validate_payment_method": 3}, "list")])
async def test_malformed_plans_are_permanent(plan, match, simulated_sleeps):
    context = {**PAYMENT, "simulate": plan}
    with pytest.raises(PermanentError, match=match):
        await _run("process_payment", "3.0.0", context)


@pytest.mark.anyio
async def test_malformed_environment_plan_is_permanent(simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, "{not json")
    with pytest.raises(PermanentError, match=simulation.ENV_VAR):
        await _run("process_payment", "3.0.0", PAYMENT)


@pytest.mark.anyio
@pytest.mark.parametrize("name,context,match", [
    ("process_refund", {"refund_reason": "fraud"}, "payment_id, refund_amount"),
    ("process_refund", {**REFUND, "refund_amount": "lots"}, "refund_amount"),
    ("process_refund", {**REFUND, "payment_id": "txn_42"}, "not found"),
    ("process_refund", {**REFUND, "refund_amount": 10**7}, "ineligible"),
    ("process_payment", {"amount": 10}, "customer_id, payment_method_id"),
    ("process_payment", {**PAYMENT, "payment_method_id": "pm_expired_card"}, "expired"),
])
async def test_bad_inputs_are_permanent(name, context, match, simulated_sleeps):
    version = "2.1.3" if name == "process_refund" else "3.0.0"
    with pytest.raises(PermanentError, match=match):
        await _run(name, version, context)


@pytest.mark.anyio
async def test_fraud_score_above_the_limit_blocks_the_payment(simulated_sleeps):
    ctx = _ctx("process_payment", "3.0.0", "check_fraud_score", PAYMENT, {})
    ctx.config = {**ctx.config, "max_score": -1}
    with pytest.raises(PermanentError, match="fraud score"):
        await _run_step(ctx)


@pytest.mark.anyio
async def test_missing_earlier_results_are_permanent(simulated_sleeps):
    ctx = _ctx("process_refund", "2.1.3", "process_gateway_refund", REFUND, {})
    with pytest.raises(PermanentError, match="validate_payment_eligibility"):
        await _run_step(ctx)


@pytest.mark.parametrize("handler_class", sorted(plugin.tasker_step_handlers()))
def test_result_shaping_failures_are_permanent(handler_class):
    ctx = _ctx("process_refund", "2.1.3", "notify_customer", REFUND, {})
    with pytest.raises(PermanentError, match="failed to process"):
        plugin.tasker_step_handlers()[handler_class]().process_results(ctx, {})
