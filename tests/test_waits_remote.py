"""``ctx.send`` to a task that another host serves (``TASKER_REMOTE_HOSTS``): through that host's
``POST /tasks/{id}/events/{name}`` (``httpx.MockTransport``: no network, no sleeping), under the
step's idempotency key and the host's token; refusals fail the step for good, an unreachable host
is retried; this host's deny rules still apply."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tasker_host import StepHandler
from tasker_host.host import REMOTE_ROUTE_PLUGIN
from tasker_host.models import TaskState
from tasker_host.remote import RemoteRoutePlugin
from tests.engine_support import Script, doc, make_host
from tests.test_remote_route import PAYMENTS, FakeRemote, Sleeps, answer

pytestmark = pytest.mark.anyio

EVENT = {"id": 7, "task_id": "remote-task", "name": "approval", "payload": {"approved": True}, "step": "approve",
         "woke": "approve", "duplicate": False, "idempotency_key": "k", "sender": "cs", "created_at": 1.0,
         "delivered_at": 1.0}


class Approver(StepHandler):
    async def process(self, ctx: Any) -> Any:
        sent = await ctx.send("remote-task", "approval", {"approved": True}, namespace="payments")
        return {"event": sent["id"], "woke": sent["woke"]}


def caller_host(remote: FakeRemote, **settings: Any) -> Any:
    routes = RemoteRoutePlugin([PAYMENTS], client_factory=remote.client, sleep=Sleeps())
    caller = doc("approve", [{"name": "send", "handler_class": "Approver", "default_retry_limit": 2}],
                 namespace="support")
    return make_host(Script(), [caller], handlers={"Approver": Approver},
                     extra_plugins=[(REMOTE_ROUTE_PLUGIN, routes)], **settings)


async def test_an_event_to_a_remote_task_goes_through_its_hosts_api() -> None:
    remote = FakeRemote(answer(201, EVENT))
    host = caller_host(remote)
    task = host.service.create_task("support", "approve").task
    await host.engine.run_until_idle()
    done = host.service.get_task(task.id)
    assert done.status is TaskState.COMPLETE and done.steps[0].results == {"event": 7, "woke": "approve"}
    [request] = remote.requests
    assert (request.method, request.url.path) == ("POST", "/tasker/tasks/remote-task/events/approval")
    assert request.headers["Authorization"] == "Bearer tsk_secret"
    assert request.headers["Idempotency-Key"] == f"{task.id}:send#1"
    assert json.loads(request.content) == {"approved": True}


async def test_a_refusal_is_permanent_and_an_unreachable_host_is_retried() -> None:
    refused = FakeRemote(answer(409, {"error": "task_ended", "message": "task remote-task is complete"}))
    host = caller_host(refused)
    task = host.service.create_task("support", "approve").task
    await host.engine.run_until_idle()
    failed = host.service.get_task(task.id)
    assert failed.status is TaskState.ERROR and failed.error["kind"] == "permanent"
    assert "HTTP 409: task remote-task is complete" in failed.error["message"]
    down = FakeRemote(httpx.ConnectError("refused"), answer(201, EVENT))
    host = caller_host(down)
    task = host.service.create_task("support", "approve").task
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).steps[0].state.value == "waiting_retry"
    host.clock.advance(60)
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE
    assert len({r.headers["Idempotency-Key"] for r in down.requests}) == 1  # the retry repeats the same key


async def test_this_hosts_deny_rules_apply() -> None:
    remote = FakeRemote()
    host = caller_host(remote, deny_invocations=("support->payments",))
    task = host.service.create_task("support", "approve").task
    await host.engine.run_until_idle()
    failed = host.service.get_task(task.id)
    assert failed.status is TaskState.ERROR and "may not send events" in failed.error["message"]
    assert remote.requests == []
