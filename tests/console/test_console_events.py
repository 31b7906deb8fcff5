"""The console shows what a waiting step waits for and, to whoever may send it (the ``signal``
action), a form built from the event's JSON Schema that sends the event (over ASGI)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tasker_host import StepHandler
from tasker_host.api import create_app
from tasker_host.host import Host, build_host
from tasker_host.models import StepState, TaskState
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc
from tests.console.support import issue
from tests.console.test_console_requests import sign_in

SCHEMA = {"type": "object", "required": ["approved", "approver"], "additionalProperties": False,
          "properties": {"approved": {"type": "boolean"}, "approver": {"type": "string", "minLength": 1},
                         "limit": {"type": "integer", "description": "largest amount approved"},
                         "channel": {"type": "string", "enum": ["email", "chat"]},
                         "tags": {"type": "array", "items": {"type": "string"}}}}


class Approval(StepHandler):
    def process(self, ctx: Any) -> Any:
        decision = ctx.event("approval")
        if decision is None:
            return ctx.wait_for("approval", schema=SCHEMA, timeout=timedelta(hours=48))
        return {"decision": decision}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    plugin = make_plugin(["payments"], [template_doc("payments", "approve", "1.0.0", [
        {"name": "approve", "handler_class": "Approval"}])], {"Approval": Approval})
    built = build_host(HostSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}"),
                       entry_points=[FakeEntryPoint.of("payments", plugin, dist="tasker-payments-test")])
    yield built
    built.close()


@pytest.fixture
async def client(host: Host) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(host, run_worker=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as c:
        yield c


@pytest.mark.anyio
async def test_a_waiting_step_shows_a_form_built_from_its_schema(client: httpx.AsyncClient, host: Host) -> None:
    tokens = issue(host)
    task_id = host.service.create_task("payments", "approve").task.id
    await host.engine.run_until_idle()
    csrf = await sign_in(client, tokens["payments"])
    page = (await client.get(f"/ui/tasks/{task_id}")).text
    assert 'class="badge st-waiting"' in page and "Waits for event approval, until" in page
    assert re.search(r'type="checkbox"[^>]*name="field.approved"', page)
    assert re.search(r'name="field.approver" type="text" required', page)
    assert re.search(r'name="field.limit" type="number" step="1"', page) and "largest amount approved" in page
    assert re.search(r'<select[^>]*name="field.channel"><option value=""></option><option>email</option>', page)
    assert re.search(r'<textarea[^>]*name="field.tags"', page)

    bad = await client.post(f"/ui/tasks/{task_id}/events/approval",
                            data={"csrf_token": csrf, "field.approver": "", "field.limit": "ten"})
    assert bad.status_code == 303 and "limit: 'ten' is not a number" in unquote(bad.headers["location"])
    invalid = await client.post(f"/ui/tasks/{task_id}/events/approval", data={"csrf_token": csrf})
    notice = unquote(invalid.headers["location"])
    assert "Not sent" in notice and "'approver' is a required property" in notice
    assert host.service.task_events(task_id) == []

    sent = await client.post(f"/ui/tasks/{task_id}/events/approval", data={
        "csrf_token": csrf, "field.approved": "true", "field.approver": "maria", "field.limit": "5000",
        "field.channel": "chat", "field.tags": '["vip"]'})
    assert sent.status_code == 303 and "step approve runs again" in unquote(sent.headers["location"])
    await host.engine.run_until_idle()
    task = host.service.get_task(task_id)
    assert task.status is TaskState.COMPLETE
    assert task.steps[0].results == {"decision": {"approved": True, "approver": "maria", "limit": 5000,
                                                  "channel": "chat", "tags": ["vip"]}}
    assert [e.sender for e in host.service.task_events(task_id)] == ["payments"]
    gone = await client.post(f"/ui/tasks/{task_id}/events/approval", data={"csrf_token": csrf})
    assert "No step waits for event approval" in unquote(gone.headers["location"])


@pytest.mark.anyio
async def test_only_those_who_may_signal_see_and_use_the_form(client: httpx.AsyncClient, host: Host) -> None:
    tokens = issue(host)
    task_id = host.service.create_task("payments", "approve").task.id
    await host.engine.run_until_idle()
    csrf = await sign_in(client, tokens["payments_viewer"])
    page = html.unescape((await client.get(f"/ui/tasks/{task_id}")).text)
    assert "Waits for event approval" in page and "Send approval" not in page
    refused = await client.post(f"/ui/tasks/{task_id}/events/approval",
                                data={"csrf_token": csrf, "field.approver": "me", "field.approved": "true"})
    assert refused.status_code == 403
    assert host.service.task_events(task_id) == []
    assert host.service.get_task(task_id).steps[0].state is StepState.WAITING
