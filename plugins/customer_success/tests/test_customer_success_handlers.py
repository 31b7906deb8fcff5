"""Behaviour of the Customer Success step handlers with a fake step context (no engine)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tasker_host import InvocationResult, PermanentError, RetryableError, TaskerError, Wait
from tasker_host.testing import HandlerHarness, answer_with, simulation

from tasker_customer_success import plugin

NAMESPACE = "customer_success"
REFUND = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
          "refund_reason": "Product defective", "requires_approval": True,
          "agent_notes": "Customer very upset, expedite refund"}
ESCALATION = {"ticket_id": "cs_456", "customer_id": "cust_789", "severity": "critical",
              "summary": "Checkout broken for VIP"}
CONTEXTS = {"process_refund": REFUND, "escalate_ticket": ESCALATION}
FAILURES = [("unavailable", RetryableError), ("timeout", RetryableError),
            ("unknown", RetryableError), ("declined", PermanentError), ("closed", PermanentError),
            ("not_found", PermanentError), ("auth", PermanentError)]

# the fixtures anyio_backend (asyncio) and simulated_sleeps come with tasker-host's pytest plugin


def _child(status="complete", version="2.1.3", correlation_id="corr-1"):
    return InvocationResult("child-7", "payments", "process_refund", version, status,
                            correlation_id, {"process_gateway_refund": {"refund_id": "re_abc"}})


# the default child: complete, with the caller's correlation id; the manager approves (1.4.0 waits)
APPROVAL = {"approved": True, "approver": "mgr_maria", "note": "fine"}
AUTO_APPROVED = {**REFUND, "requires_approval": False, "refund_amount": 100}  # under every tier's limit
HARNESS = HandlerHarness(plugin, NAMESPACE, child=answer_with(_child()), events={"approval": APPROVAL})
_ctx, _run_step, _run = HARNESS.ctx, HARNESS.run_step, HARNESS.run  # _run: steps in template order


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(HARNESS.newest()))
async def test_happy_path_runs_every_step_with_json_results(name, simulated_sleeps):
    await HARNESS.run_happy_path(name, CONTEXTS[name])
    assert simulated_sleeps == []


@pytest.mark.anyio
async def test_refund_is_delegated_to_payments_within_the_version_range(simulated_sleeps):
    calls: list[dict[str, Any]] = []
    results = await _run("process_refund", REFUND, calls=calls)
    (call,) = calls
    assert (call["namespace"], call["name"], call["version"], call["wait"]) == (
        "payments", "process_refund", "~=2.1", True)
    validation, approval = results["validate_refund_request"], results["get_manager_approval"]
    assert call["context"] == {
        "payment_id": validation["payment_id"], "refund_amount": 4999,
        "refund_reason": "customer_request", "initiated_by": "customer_success",
        "ticket_id": "cs_456", "approval_id": approval["approval_id"],
        "correlation_id": call["context"]["correlation_id"]}
    assert call["context"]["correlation_id"].startswith("cs-")
    delegated = results["execute_refund_workflow"]
    assert delegated["delegated_task_id"] == "child-7"
    assert delegated["delegated_full_name"] == "payments.process_refund@2.1.3"
    assert delegated["delegated_task_status"] == "complete"
    assert delegated["correlation_id"] == call["context"]["correlation_id"]
    assert results["update_ticket_status"]["gateway_refund_id"] == "re_abc"


@pytest.mark.anyio
@pytest.mark.parametrize("reason,expected", [("Product defective", "customer_request"),
                                             ("fraud", "fraud"), ("System Error", "system_error"),
                                             (None, "customer_request")])
async def test_refund_reason_is_mapped_to_the_payments_enum(reason, expected, simulated_sleeps):
    calls: list[dict[str, Any]] = []
    await _run("process_refund", {**REFUND, "refund_reason": reason}, calls=calls)
    assert calls[0]["context"]["refund_reason"] == expected


@pytest.mark.anyio
async def test_small_refunds_without_approval_are_auto_approved(simulated_sleeps):
    results = await _run("process_refund", {**REFUND, "requires_approval": False, "refund_amount": 100})
    assert results["get_manager_approval"]["auto_approved"] is True
    assert results["get_manager_approval"]["approval_id"].startswith("auto_")


@pytest.mark.anyio
@pytest.mark.parametrize("child,error", [
    (_child(status="in_progress"), RetryableError),
    (_child(status="cancelled"), PermanentError),
    (PermanentError("child payments task failed"), PermanentError),
    (TaskerError("no version of payments.process_refund matches ~=2.1"), PermanentError),
])
async def test_delegation_outcomes_are_classified(child, error, simulated_sleeps):
    trace: list[str] = []
    with pytest.raises(error):
        await _run("process_refund", REFUND, trace, child=child)
    assert trace[-1] == "execute_refund_workflow"


@pytest.mark.anyio
async def test_low_severity_does_not_page(simulated_sleeps):
    results = await _run("escalate_ticket", {**ESCALATION, "severity": "low",
                                             "simulate": {"page_on_call": "unavailable"}})
    assert results["page_on_call"] == {"paged": False, "incident_id": None, "paged_at": None}
    assert results["record_escalation"]["paged"] is False


@pytest.mark.anyio
@pytest.mark.parametrize("outcome,error", FAILURES)
@pytest.mark.parametrize("name,step", HARNESS.steps())
async def test_injected_failures_are_classified(name, step, outcome, error, simulated_sleeps):
    # 1.4.0 calls the approval service only to auto-approve (a manager's approval is an event)
    context = AUTO_APPROVED if (name, step) == ("process_refund", "get_manager_approval") else CONTEXTS[name]
    assert isinstance(await HARNESS.fail_step(name, step, outcome, context), error)


@pytest.mark.anyio
@pytest.mark.parametrize("outcome,error", FAILURES)
async def test_1_3_3_asks_the_approval_service(outcome, error, simulated_sleeps):
    failed = await HARNESS.fail_step("process_refund", "get_manager_approval", outcome, REFUND, version="1.3.3")
    assert isinstance(failed, error)


@pytest.mark.anyio
async def test_1_4_0_waits_for_the_managers_approval_event(simulated_sleeps):
    results = {step: (await _run("process_refund", REFUND))[step]
               for step in ("validate_refund_request", "check_refund_policy")}
    ctx = _ctx("process_refund", "get_manager_approval", REFUND, results)
    wait = await _run_step(ctx)
    assert isinstance(wait, Wait) and wait.event == "approval" and wait.timeout_seconds == 48 * 3600
    assert wait.schema == {"type": "object", "required": ["approved", "approver"], "additionalProperties": False,
                           "properties": {"approved": {"type": "boolean"},
                                          "approver": {"type": "string", "minLength": 1},
                                          "note": {"type": "string"}}}  # the template's declaration
    approved = await _run_step(ctx.woken_by("approval", APPROVAL))
    assert (approved["approval_obtained"], approved["manager_id"], approved["auto_approved"], approved["note"]) == (
        True, "mgr_maria", False, "fine")
    with pytest.raises(PermanentError, match="rejected by mgr_bob: too much"):
        await _run_step(ctx.woken_by("approval", {"approved": False, "approver": "mgr_bob", "note": "too much"}))
    with pytest.raises(PermanentError, match="no manager decision on ticket cs_456 within 48 hours"):
        await _run_step(ctx.timed_out("approval"))


@pytest.mark.anyio
async def test_1_4_0_still_auto_approves_small_refunds_without_waiting(simulated_sleeps):
    results = await _run("process_refund", AUTO_APPROVED, events={})  # no event given: none needed
    assert results["get_manager_approval"]["auto_approved"] is True


@pytest.mark.anyio
async def test_timeout_sleeps_twice_the_step_timeout(simulated_sleeps):
    context = {**REFUND, "simulate": {"get_manager_approval": ["timeout"]}}
    with pytest.raises(RetryableError, match="timeout"):
        await _run("process_refund", context, version="1.3.3")
    assert simulated_sleeps == [600.0]  # handler_config.timeout_seconds is 300


@pytest.mark.anyio
async def test_retry_then_success_and_environment_plan(simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps({"customer_success.assess_ticket": ["unavailable"]}))
    with pytest.raises(RetryableError, match="unavailable"):
        await _run_step(_ctx("escalate_ticket", "assess_ticket", ESCALATION, {}))
    assert (await _run_step(_ctx("escalate_ticket", "assess_ticket", ESCALATION, {}, attempt=2)))[
        "assessed"] is True
    context = {**ESCALATION, "simulate": {"assess_ticket": ["slow:1.5"]}}  # context plan wins
    assert "record_escalation" in await _run("escalate_ticket", context)
    assert simulated_sleeps == [1.5]


@pytest.mark.anyio
@pytest.mark.parametrize("plan,match", [(["unavailable"], "mapping"),
                                        ({"assess_ticket": ["boom"]}, "boom")])
async def test_malformed_plans_are_permanent(plan, match, simulated_sleeps):
    with pytest.raises(PermanentError, match=match):
        await _run("escalate_ticket", {**ESCALATION, "simulate": plan})


@pytest.mark.anyio
@pytest.mark.parametrize("name,context,match", [
    ("process_refund", {"refund_amount": 10}, "ticket_id, customer_id"),
    ("process_refund", {**REFUND, "refund_amount": 10**9}, "violation"),
    ("escalate_ticket", {**ESCALATION, "severity": "apocalyptic"}, "severity"),
])
async def test_bad_inputs_are_permanent(name, context, match, simulated_sleeps):
    with pytest.raises(PermanentError, match=match):
        await _run(name, context)


@pytest.mark.anyio
async def test_delegation_requires_approval(simulated_sleeps):
    results = {"validate_refund_request": {"payment_id": "pay_1"},
               "get_manager_approval": {"approval_obtained": False}}
    with pytest.raises(PermanentError, match="approval"):
        await _run_step(_ctx("process_refund", "execute_refund_workflow", REFUND, results))


@pytest.mark.parametrize("handler_class", sorted(plugin.tasker_step_handlers()))
def test_result_shaping_failures_are_permanent(handler_class):
    ctx = _ctx("process_refund", "execute_refund_workflow", REFUND, {})
    with pytest.raises(PermanentError, match="failed to process"):
        plugin.tasker_step_handlers()[handler_class]().process_results(ctx, {})
