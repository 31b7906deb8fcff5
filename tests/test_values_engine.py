"""The value rule inside the engine, on the memory store, SQLite and PostgreSQL: handler results
that cannot be stored fail their step for good (the path named), failure texts are stored
cleaned and bounded, ``ctx.invoke`` refuses such contexts before any route sees them, event
payloads are storable — and in every case the runner goes on with other work."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tasker_host import PermanentError, StepHandler
from tasker_host.engine.events import LifecycleEvent
from tasker_host.host import REMOTE_ROUTE_PLUGIN
from tasker_host.models import StepState, TaskState
from tasker_host.remote import RemoteRoutePlugin
from tasker_host.settings import RemoteHost
from tasker_host.store.base import TaskFilter
from tasker_host.store.sql import SqlStore
from tasker_host.values import MESSAGE_LIMIT
from tests.engine_support import Script, chain, doc, make_host
from tests.value_support import strictly_storable

pytestmark = pytest.mark.anyio

MEGABYTE_MESSAGE = "\ud800 lone surrogate, \x00 NUL, " + "x" * 1_000_000 + " the end"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    if request.param == "memory":
        yield None  # make_host's default
        return
    url = f"sqlite:///{tmp_path / 't.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    sql = SqlStore(url, auto_upgrade=True)
    yield sql
    sql.close()


class BadResults(StepHandler):
    """Returns what ``context["results"]`` names: values the engine must refuse to store."""

    CASES: dict[str, Any] = {
        "nul": ({"note": "a\x00b"}, "results.note"),
        "nan": ({"x": [1, math.nan]}, "results.x[1]"),
        "infinity": ({"total": json.loads("1e400")}, "results.total"),
        "set": ({"ids": {1, 2}}, "results.ids"),
        "surrogate_key": ({"ok": 1, "\udc80": 2}, 'results["\\udc80"]'),
        "int_key": ({"n": {7: "seven"}}, "results.n[<int 7>]"),
    }

    async def process(self, ctx: Any) -> Any:
        return self.CASES[ctx.task.context["case"]][0]


class Loud(StepHandler):
    """Fails with a megabyte of message holding a lone surrogate and a NUL."""

    async def process(self, ctx: Any) -> Any:
        raise RuntimeError(MEGABYTE_MESSAGE)


class Invoker(StepHandler):
    async def process(self, ctx: Any) -> Any:
        await ctx.invoke(ctx.task.context["target"], "flow", context={"id": "\ud800", "amount": math.inf})
        return {"unreachable": True}


def templates() -> list[dict[str, Any]]:
    return [doc(), doc("results", [{"name": "bad", "handler_class": "BadResults", "default_retry_limit": 3}]),
            doc("loud", [{"name": "loud", "handler_class": "Loud", "default_retry_limit": 2}]),
            doc("invoke", [{"name": "call", "handler_class": "Invoker", "default_retry_limit": 3}])]


def host_on(store: Any, **kw: Any) -> Any:
    return make_host(Script(), templates(), store=store,
                     handlers={"BadResults": BadResults, "Loud": Loud, "Invoker": Invoker}, **kw)


@pytest.mark.parametrize("case", sorted(BadResults.CASES))
async def test_results_that_cannot_be_stored_fail_the_step_for_good_and_the_runner_goes_on(store, case):
    host = host_on(store)
    bad = host.service.create_task("team", "results", context={"case": case}).task
    good = host.service.create_task("team", "flow").task
    await host.engine.run_until_idle()
    assert host.service.get_task(good.id).status is TaskState.COMPLETE
    bad = host.service.get_task(bad.id)
    step = bad.steps[0]
    assert bad.status is TaskState.ERROR and (step.state, step.attempts) == (StepState.ERROR, 1)
    assert step.last_error["kind"] == "permanent" and step.results is None
    message = step.last_error["message"]
    assert message.startswith("step results cannot be stored (1 problem(s)):")
    assert f"  - {BadResults.CASES[case][1]}: " in message
    assert strictly_storable(step.last_error) and strictly_storable(bad.error)


async def test_a_megabyte_failure_message_with_bad_characters_is_recorded_cleaned_and_bounded(store):
    host = host_on(store)
    seen: list[LifecycleEvent] = []
    host.events.subscribe(seen.append)
    loud = host.service.create_task("team", "loud").task
    good = host.service.create_task("team", "flow").task
    await host.engine.run_until_idle()  # attempt 1 fails: waiting for a retry
    step = host.service.get_task(loud.id).steps[0]
    assert step.state is StepState.WAITING_RETRY and strictly_storable(step.last_error)
    host.clock.advance(1000)
    await host.engine.run_until_idle()  # attempt 2 fails: retries exhausted
    assert host.service.get_task(good.id).status is TaskState.COMPLETE
    task = host.service.get_task(loud.id)
    step = task.steps[0]
    assert task.status is TaskState.ERROR and (step.state, step.attempts) == (StepState.ERROR, 2)
    message = step.last_error["message"]
    assert len(message) <= MESSAGE_LIMIT and "characters cut" in message
    assert message.startswith("\ufffd lone surrogate, \ufffd NUL, xxx") and message.endswith("xxx the end")
    assert task.error["message"] == message and strictly_storable(task.error)
    reasons = [t.reason for t in host.store.transitions(loud.id)]
    assert any("RuntimeError: \ufffd lone surrogate" in r for r in reasons)
    assert all(strictly_storable(r) and len(r) <= 2 * MESSAGE_LIMIT for r in reasons)
    details = [dict(e.detail) for e in seen if e.task_id == loud.id and e.detail]
    assert details and all(strictly_storable(d) for d in details)


async def test_an_invoke_context_that_cannot_be_stored_fails_the_caller_and_creates_no_child(store):
    host = host_on(store)
    caller = host.service.create_task("team", "invoke", context={"target": "team"}).task
    good = host.service.create_task("team", "flow").task
    await host.engine.run_until_idle()
    assert host.service.get_task(good.id).status is TaskState.COMPLETE
    caller = host.service.get_task(caller.id)
    step = caller.steps[0]
    assert caller.status is TaskState.ERROR and (step.attempts, step.last_error["kind"]) == (1, "permanent")
    assert step.last_error["message"].startswith("cannot invoke team.flow: context cannot be stored (2 problem(s))")
    assert "context.id: string contains a lone surrogate" in step.last_error["message"]
    assert "context.amount: Infinity" in step.last_error["message"]
    assert host.store.list_tasks(TaskFilter(parent_task_id=caller.id)) == []


async def test_a_remote_route_never_sees_an_invoke_context_that_cannot_be_stored():
    sent: list[Any] = []

    def transport(request: Any) -> Any:  # pragma: no cover - must not be called
        sent.append(request)
        raise AssertionError("a request was sent")

    import httpx

    routes = RemoteRoutePlugin([RemoteHost("payments", "http://payments.test/tasker", "tsk_x")],
                               client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(transport)))
    host = host_on(None, extra_plugins=[(REMOTE_ROUTE_PLUGIN, routes)])
    caller = host.service.create_task("team", "invoke", context={"target": "payments"}).task
    await host.engine.run_until_idle()
    step = host.service.get_task(caller.id).steps[0]
    assert step.state is StepState.ERROR and step.last_error["kind"] == "permanent"
    assert "cannot invoke payments.flow: context cannot be stored" in step.last_error["message"]
    assert sent == []


# -- rows written before the rule (SQLite kept them) -----------------------------------------------


class Echo(StepHandler):
    async def process(self, ctx: Any) -> Any:
        raise PermanentError(f"unknown payment {ctx.task.context['payment_id']}")


async def test_a_task_written_before_the_rule_with_a_lone_surrogate_fails_cleanly(tmp_path):
    """It used to kill the runner (recording the failure raised UnicodeEncodeError), again after
    every restart."""
    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}", auto_upgrade=True)
    host = make_host(Script(), [doc(steps=[{"name": "check", "handler_class": "Echo"}], name="echo"), doc()],
                     store=store, handlers={"Echo": Echo})
    new = host.service.prepare("team", "echo", context={"payment_id": "ok"})
    legacy = host.service.submit([dataclasses.replace(new, context={"payment_id": "pay\ud800"})])[0].task
    good = host.service.create_task("team", "flow").task
    await host.engine.run_until_idle()
    assert host.service.get_task(good.id).status is TaskState.COMPLETE
    task = host.service.get_task(legacy.id)
    assert task.status is TaskState.ERROR and task.error["message"] == "unknown payment pay\ufffd"
    store.close()


async def test_results_written_before_the_rule_with_infinity_do_not_stop_a_runner_loading_them(tmp_path):
    """SQLite's json() refuses ``Infinity``: loading a task's done results used to fail."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    script = Script()
    first = make_host(script, [doc(steps=chain(["a", "b"]))], store=SqlStore(url, auto_upgrade=True))
    task = first.service.create_task("team", "flow", context={"script": {"b": ["permanent"]}}).task
    await first.engine.run_until_idle()
    assert first.service.get_task(task.id).status is TaskState.ERROR
    first.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE steps SET results = :r WHERE task_id = :id AND name = 'a'"),
                     {"r": '{"total": Infinity, "rate": NaN}', "id": task.id})
    engine.dispose()
    second = make_host(script, [doc(steps=chain(["a", "b"]))], store=SqlStore(url, auto_upgrade=True))
    script.fixed.add("b")  # the outside cause of b's failure is fixed
    second.service.retry_task(task.id)
    await second.engine.run_until_idle()  # a new runner: loads the task (and a's results) from rows
    done = second.service.get_task(task.id)
    assert done.status is TaskState.COMPLETE and done.steps[1].results == {"step": "b", "inputs": ["a"]}
    second.close()


async def test_operator_reasons_are_stored_cleaned_and_bounded(store):
    host = host_on(store)
    task = host.service.create_task("team", "flow").task
    host.service.cancel_task(task.id, reason="by \ud800 operator \x00 " + "r" * 100_000)
    [reason] = [t.reason for t in host.store.transitions(task.id) if t.step is None and t.to_state == "cancelled"]
    assert reason.startswith("by \ufffd operator \ufffd rrr") and len(reason) <= MESSAGE_LIMIT
