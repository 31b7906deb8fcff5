"""The host's simulated-service support (tasker_host.simulation): fault plans, faults, services."""

from __future__ import annotations

import json

import pytest

import tasker_host
from tasker_host import Fault, FaultPlan, PermanentError, ServiceError, SimulatedService, simulation
from tasker_host.context import TaskInfo
from tasker_host.testing import FakeStepContext, simulation_fixtures

pytestmark = pytest.mark.anyio


anyio_backend, sleeps = simulation_fixtures()  # pytest fixtures: asyncio; simulated sleeps, recorded


def ctx(context=None, step="charge", attempt=1, namespace="shop", **config):
    task = TaskInfo("task-1", namespace, "checkout", "1.0.0", dict(context or {}))
    return FakeStepContext(task, step, config, {}, attempt)


def test_sdk_exports():
    for name in ("Fault", "FaultPlan", "ServiceError", "SimulatedService"):
        assert name in tasker_host.__all__ and getattr(tasker_host, name) is getattr(simulation, name)


# --- reading the plan -----------------------------------------------------------------------------
def test_no_plan_is_ok(sleeps):
    assert FaultPlan().outcome_for(ctx()) == "ok"
    assert Fault.for_step(ctx()) == Fault("ok", 1.0)


@pytest.mark.parametrize("attempt,expected", [(1, "unavailable"), (2, "slow:2"), (3, "ok"), (9, "ok")])
def test_attempt_n_uses_item_n_and_later_attempts_are_ok(attempt, expected, sleeps):
    plan = {"simulate": {"charge": ["unavailable", "slow:2"]}}
    assert FaultPlan().outcome_for(ctx(plan, attempt=attempt)) == expected


def test_a_bare_string_applies_to_every_attempt(sleeps):
    for attempt in (1, 2, 7):
        assert FaultPlan().outcome_for(ctx({"simulate": {"charge": "auth"}}, attempt=attempt)) == "auth"


def test_other_steps_are_unaffected(sleeps):
    assert FaultPlan().outcome_for(ctx({"simulate": {"refund": ["timeout"]}})) == "ok"


def test_environment_plan_is_keyed_by_namespace_and_step(sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps({"shop.charge": ["not_found"], "other.charge": "auth"}))
    assert FaultPlan().outcome_for(ctx()) == "not_found"
    assert FaultPlan().outcome_for(ctx(attempt=2)) == "ok"
    assert FaultPlan().outcome_for(ctx(namespace="other")) == "auth"
    assert FaultPlan().outcome_for(ctx(step="refund")) == "ok"


def test_the_context_plan_wins_for_the_steps_it_names(sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, json.dumps({"shop.charge": ["unavailable"]}))
    assert FaultPlan().outcome_for(ctx({"simulate": {"charge": ["ok"]}})) == "ok"
    assert FaultPlan().outcome_for(ctx({"simulate": {"refund": ["ok"]}})) == "unavailable"


def test_the_step_timeout_comes_from_handler_config(sleeps):
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
def test_malformed_context_plans_are_permanent(plan, match, sleeps):
    with pytest.raises(PermanentError, match=match):
        FaultPlan().outcome_for(ctx({"simulate": plan}))


@pytest.mark.parametrize("raw,match", [("{not json", r"\$TASKER_SIMULATE: not JSON"),
                                       ('["x"]', r"\$TASKER_SIMULATE: expected a mapping"),
                                       ('{"shop.charge": ["nope"]}', r"\$TASKER_SIMULATE\['shop.charge'\]")])
def test_malformed_environment_plans_are_permanent(raw, match, sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, raw)
    with pytest.raises(PermanentError, match=match):
        FaultPlan().outcome_for(ctx())


def test_a_blank_environment_plan_is_no_plan(sleeps, monkeypatch):
    monkeypatch.setenv(simulation.ENV_VAR, "  ")
    assert FaultPlan().outcome_for(ctx()) == "ok"


# --- team outcomes --------------------------------------------------------------------------------
def test_a_team_may_add_answering_outcomes(sleeps):
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
@pytest.mark.parametrize("outcome,message", [
    ("unavailable", "Ledger unavailable (simulated)"),
    ("auth", "Ledger authentication failed (simulated)"),
    ("not_found", "Ledger: record not found (simulated)"),
])
async def test_raising_outcomes(outcome, message, sleeps):
    with pytest.raises(ServiceError) as caught:
        await Fault(outcome).act_out("Ledger")
    assert str(caught.value) == message
    assert sleeps == []


async def test_timeout_sleeps_twice_the_step_timeout_then_raises(sleeps):
    with pytest.raises(ServiceError, match="Ledger timeout"):
        await Fault("timeout", 30.0).act_out("Ledger")
    assert sleeps == [60.0]


async def test_slow_answers_normally_after_the_delay(sleeps):
    assert await Fault("slow:0.25").act_out("Ledger") is None
    assert sleeps == [0.25]


@pytest.mark.parametrize("outcome,status", [("ok", None), ("declined", "declined"), ("unknown", "unknown"),
                                            ("closed", None)])
async def test_answering_outcomes_become_the_status(outcome, status, sleeps):
    assert await Fault(outcome).act_out("Ledger") == status


async def test_a_team_outcome_answers_only_where_the_plan_knows_it(sleeps):
    assert await Fault("closed", answering=frozenset({"closed"})).act_out("Desk") == "closed"


class Ledger(SimulatedService):
    name = "Ledger"

    async def record(self, entry: str) -> dict:
        status = await self.begin()
        return {"status": status or "recorded", "id": "led_" + simulation.digest("record", entry)[:8]}


async def test_a_simulated_service_plays_its_fault_first(sleeps):
    normal = await Ledger().record("e1")
    assert normal == {"status": "recorded", "id": "led_" + simulation.digest("record", "e1")[:8]}
    assert await Ledger(Fault("slow:1")).record("e1") == normal  # idempotent ids
    assert (await Ledger(Fault("declined")).record("e1"))["status"] == "declined"
    with pytest.raises(ServiceError, match="^Ledger unavailable"):
        await Ledger(Fault("unavailable")).record("e1")
    assert sleeps == [1.0]


def test_digest_is_stable_and_now_iso_is_utc_seconds():
    assert simulation.digest("a", 1) == simulation.digest("a", 1) != simulation.digest("a", 2)
    assert len(simulation.digest()) == 64
    stamp = simulation.now_iso()
    assert stamp.endswith("+00:00") and len(stamp) == len("2024-01-01T00:00:00+00:00")
