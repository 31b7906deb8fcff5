"""The test kit's simulated services (tasker_host.testing.simulation): fault plans, faults, services."""

from __future__ import annotations

import json

import pytest

import tasker_host
from tasker_host import PermanentError, ServiceError, ServiceRejected, ServiceUnavailable
from tasker_host.context import TaskInfo
from tasker_host.testing import FakeStepContext, simulation
from tasker_host.testing.simulation import Fault, FaultPlan, SimulatedService, TaskerApi

pytestmark = pytest.mark.anyio


def ctx(context=None, step="charge", attempt=1, namespace="shop", **config):
    task = TaskInfo("task-1", namespace, "checkout", "1.0.0", dict(context or {}))
    return FakeStepContext(task, step, config, {}, attempt)


def test_the_simulation_is_a_test_double_not_part_of_the_sdk():
    for name in ("Fault", "FaultPlan", "SimulatedService", "simulation"):
        assert name not in tasker_host.__all__ and not hasattr(tasker_host, name)
    assert issubclass(ServiceUnavailable, ServiceError) and issubclass(ServiceRejected, ServiceError)


# --- reading the plan -----------------------------------------------------------------------------
def test_no_plan_is_ok(simulated_sleeps):
    assert FaultPlan().outcome_for(ctx()) == "ok"
    assert FaultPlan().fault_for(ctx()) == Fault("ok", 1.0)


@pytest.mark.parametrize("attempt,expected", [(1, "unavailable"), (2, "slow:2"), (3, "ok"), (9, "ok")])
def test_attempt_n_uses_item_n_and_later_attempts_are_ok(attempt, expected, simulated_sleeps):
    plan = {"simulate": {"charge": ["unavailable", "slow:2"]}}
    assert FaultPlan().outcome_for(ctx(plan, attempt=attempt)) == expected


def test_a_bare_string_applies_to_every_attempt(simulated_sleeps):
    for attempt in (1, 2, 7):
        assert FaultPlan().outcome_for(ctx({"simulate": {"charge": "auth"}}, attempt=attempt)) == "auth"


def test_other_steps_are_unaffected(simulated_sleeps):
    assert FaultPlan().outcome_for(ctx({"simulate": {"refund": ["timeout"]}})) == "ok"


def test_environment_plan_is_keyed_by_namespace_and_step(simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps({"shop.charge": ["not_found"], "other.charge": "auth"}))
    assert FaultPlan().outcome_for(ctx()) == "not_found"
    assert FaultPlan().outcome_for(ctx(attempt=2)) == "ok"
    assert FaultPlan().outcome_for(ctx(namespace="other")) == "auth"
    assert FaultPlan().outcome_for(ctx(step="refund")) == "ok"


def test_the_context_plan_wins_for_the_steps_it_names(simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps({"shop.charge": ["unavailable"]}))
    assert FaultPlan().outcome_for(ctx({"simulate": {"charge": ["ok"]}})) == "ok"
    assert FaultPlan().outcome_for(ctx({"simulate": {"refund": ["ok"]}})) == "unavailable"


def test_the_step_timeout_comes_from_handler_config(simulated_sleeps):
    fault = FaultPlan().fault_for(ctx({"simulate": {"charge": "timeout"}}, timeout_seconds=30))
    assert fault == Fault("timeout", 30.0)


@pytest.mark.parametrize("plan,match", [
    ("boom", r"context key 'simulate': expected a mapping"),
    (["unavailable"], "expected a mapping"),
    ({"charge": 3}, r"simulate\['charge'\]: expected a list of outcomes"),
    ({"charge": ["explode"]}, r"unknown outcome\(s\) \['explode'\]; expected ok, timeout, unavailable, auth, "
                              r"not_found, declined, unknown, slow:<seconds>"),
    ({"charge": ["slow:soon"]}, "slow:soon"),
    ({"charge": ["closed"]}, "closed"),  # not a standard outcome
    ({"charge": [None]}, "None"),
])
def test_malformed_context_plans_are_permanent(plan, match, simulated_sleeps):
    with pytest.raises(PermanentError, match=match):
        FaultPlan().outcome_for(ctx({"simulate": plan}))


@pytest.mark.parametrize("raw,match", [("{not json", r"\$TASKER_SIMULATE: not JSON"),
                                       ('["x"]', r"\$TASKER_SIMULATE: expected a mapping"),
                                       ('{"shop.charge": ["nope"]}', r"\$TASKER_SIMULATE\['shop.charge'\]")])
def test_malformed_environment_plans_are_permanent(raw, match, simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, raw)
    with pytest.raises(PermanentError, match=match):
        FaultPlan().outcome_for(ctx())


def test_a_blank_environment_plan_is_no_plan(simulated_sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, "  ")
    assert FaultPlan().outcome_for(ctx()) == "ok"


# --- team outcomes --------------------------------------------------------------------------------
def test_a_team_may_add_answering_outcomes(simulated_sleeps):
    plan = FaultPlan().answering_also("closed")
    assert plan.answering == {"declined", "unknown", "closed"}
    assert FaultPlan().answering == {"declined", "unknown"}  # the default is untouched
    assert plan.outcomes == ("ok", "timeout", "unavailable", "auth", "not_found", "closed", "declined",
                             "unknown", "slow:<seconds>")
    fault = plan.fault_for(ctx({"simulate": {"charge": ["closed"]}}))
    assert (fault.outcome, fault.answering) == ("closed", plan.answering)


@pytest.mark.parametrize("status", ["ok", "timeout", "auth", "slow:3"])
def test_answering_outcomes_cannot_redefine_the_standard_ones(status):
    with pytest.raises(ValueError, match="redefine"):
        FaultPlan().answering_also(status)


# --- playing a fault ------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome,error,message", [
    ("unavailable", ServiceUnavailable, "Ledger unavailable (simulated)"),
    ("auth", ServiceRejected, "Ledger authentication failed (simulated)"),
    ("not_found", ServiceRejected, "Ledger: record not found (simulated)"),
])
async def test_raising_outcomes_raise_typed_errors(outcome, error, message, simulated_sleeps):
    with pytest.raises(ServiceError) as caught:
        await Fault(outcome).act_out("Ledger")
    assert type(caught.value) is error and str(caught.value) == message
    assert simulated_sleeps == []


async def test_timeout_sleeps_twice_the_step_timeout_then_raises(simulated_sleeps):
    with pytest.raises(ServiceUnavailable, match="Ledger timeout"):
        await Fault("timeout", 30.0).act_out("Ledger")
    assert simulated_sleeps == [60.0]


async def test_slow_answers_normally_after_the_delay(simulated_sleeps):
    assert await Fault("slow:0.25").act_out("Ledger") is None
    assert simulated_sleeps == [0.25]


@pytest.mark.parametrize("outcome,status", [("ok", None), ("declined", "declined"), ("unknown", "unknown"),
                                            ("closed", None)])
async def test_answering_outcomes_become_the_status(outcome, status, simulated_sleeps):
    assert await Fault(outcome).act_out("Ledger") == status


async def test_a_team_outcome_answers_only_where_the_plan_knows_it(simulated_sleeps):
    assert await Fault("closed", answering=frozenset({"closed"})).act_out("Desk") == "closed"


class Ledger(SimulatedService):
    name = "Ledger"

    async def record(self, entry: str) -> dict:
        status = await self.begin()
        return {"status": status or "recorded", "id": "led_" + simulation.digest("record", entry)[:8]}


async def test_a_simulated_service_plays_its_fault_first(simulated_sleeps):
    normal = await Ledger().record("e1")
    assert normal == {"status": "recorded", "id": "led_" + simulation.digest("record", "e1")[:8]}
    assert await Ledger(Fault("slow:1")).record("e1") == normal  # idempotent ids
    assert (await Ledger(Fault("declined")).record("e1"))["status"] == "declined"
    with pytest.raises(ServiceUnavailable, match="^Ledger unavailable"):
        await Ledger(Fault("unavailable")).record("e1")
    assert simulated_sleeps == [1.0]


async def test_a_service_for_a_step_plays_that_steps_plan_and_logs_it(simulated_sleeps, caplog):
    caplog.set_level("INFO")
    step = ctx({"simulate": {"charge": ["not_found"]}}, timeout_seconds=3)
    ledger = Ledger.for_step(step)
    assert ledger.fault == Fault("not_found", 3.0)
    assert "simulating 'not_found' on attempt 1 of charge" in caplog.text
    with pytest.raises(ServiceRejected, match="^Ledger: record not found"):
        await ledger.record("e1")
    assert Ledger.for_step(ctx()).fault == Fault("ok", 1.0)


async def test_the_tasker_api_plays_the_fault_as_a_call_to_the_namespace(simulated_sleeps):
    with pytest.raises(ServiceUnavailable, match="^Tasker payments API unavailable"):
        await TaskerApi(Fault("unavailable")).reach("payments")
    assert await TaskerApi(Fault("declined")).reach("payments") == "declined"
    assert await TaskerApi().reach("payments") is None


def test_digest_is_stable_and_now_iso_is_utc_seconds():
    assert simulation.digest("a", 1) == simulation.digest("a", 1) != simulation.digest("a", 2)
    assert len(simulation.digest()) == 64
    stamp = simulation.now_iso()
    assert stamp.endswith("+00:00") and len(stamp) == len("2024-01-01T00:00:00+00:00")
