"""Calls between hosts, end to end: two real servers on loopback, one serving customer_success and
one serving payments, each with its own SQLite file. ``customer_success.process_refund`` invokes
``payments.process_refund@~=2.1``; the customer_success host maps ``payments`` to the other server
(``remote_hosts``), whose first answer to ``POST /tasks`` is a 503."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tasker_host.api import create_app
from tasker_host.engine.events import EventKind
from tasker_host.host import Host
from tasker_host.plugins import installed_entry_points
from tasker_host.settings import RemoteHost
from tasker_host.store.base import TaskFilter
from tasker_host.tokens import issue_token

from .conftest import PREFIX, SEED_CUSTOMER_SUCCESS, ServerThread, TaskWaiter, make_host

DELEGATE_STEP = "execute_refund_workflow"


class FailFirstCreate:
    """ASGI middleware: the first ``POST {prefix}/tasks`` gets a 503 (``Retry-After: 0``) without
    reaching the app; every other request (and the lifespan) passes through."""

    def __init__(self, app: ASGIApp, path: str = f"{PREFIX}/tasks"):
        self.app, self.path, self.refused = app, path, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path
                and not self.refused):
            self.refused += 1
            body = json.dumps({"error": "unavailable", "message": "payments host is restarting"}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"0"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def plugins(*names: str) -> list[Any]:
    """The installed team plugins named (each host serves only its own team's namespace)."""
    found = [ep for ep in installed_entry_points() if ep.name in names]
    assert sorted(ep.name for ep in found) == sorted(names), "install the team plugins (./scripts/test does)"
    return found


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(host: Host, wrap: Callable[[ASGIApp], ASGIApp] = lambda app: app) -> ServerThread:
        server = ServerThread(wrap(create_app(host, prefix=PREFIX)))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):  # the caller first: it stops polling before payments goes away
        server.stop()


def test_refund_delegated_to_payments_on_another_host_retries_a_503(tmp_path: Path, start_server) -> None:
    now = time.time()
    payments = make_host(tmp_path / "payments.db", plugins("payments"))
    payments_token = issue_token(payments.tokens, "customer-success", grants=["payments"], now=now).token
    gates: list[FailFirstCreate] = []

    def fail_first_create(app: ASGIApp) -> ASGIApp:
        gates.append(FailFirstCreate(app))
        return gates[-1]

    payments_server = start_server(payments, fail_first_create)
    payments_base = f"http://127.0.0.1:{payments_server.port}{PREFIX}"

    remote = RemoteHost("payments", payments_base, payments_token)
    support = make_host(tmp_path / "customer_success.db", plugins("customer_success"), remote_hosts=(remote,))
    support_token = issue_token(support.tokens, "support-desk", grants=["customer_success"], now=now).token
    waiter = TaskWaiter(support)
    support_server = start_server(support)
    support_base = f"http://127.0.0.1:{support_server.port}{PREFIX}"

    with httpx.Client(timeout=10) as http:
        created = http.post(f"{support_base}/tasks", json=SEED_CUSTOMER_SUCCESS,
                            headers={"Authorization": f"Bearer {support_token}"})
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        assert waiter.wait(task_id, timeout=30) is EventKind.TASK_COMPLETED
        waiter.unsubscribe()
        task = http.get(f"{support_base}/tasks/{task_id}", headers={"Authorization": f"Bearer {support_token}"}).json()
        delegate = next(s for s in task["steps"] if s["name"] == DELEGATE_STEP)
        child_id = delegate["results"]["delegated_task_id"]
        child = http.get(f"{payments_base}/tasks/{child_id}",
                         headers={"Authorization": f"Bearer {payments_token}"}).json()

    assert task["status"] == "complete"
    assert gates[0].refused == 1
    assert (delegate["state"], delegate["attempts"]) == ("complete", 2)  # attempt 1 met the 503
    assert delegate["results"]["delegated_full_name"] == "payments.process_refund@2.1.3"
    assert delegate["results"]["delegated_task_status"] == "complete"
    assert delegate["results"]["correlation_id"] == task["correlation_id"]

    assert (child["full_name"], child["status"]) == ("payments.process_refund@2.1.3", "complete")
    assert child["correlation_id"] == task["correlation_id"]
    assert all(s["state"] == "complete" for s in child["steps"])
    assert child["context"]["initiated_by"] == "customer_success"

    # one payments task (the retry created it once), and nothing of payments in the caller's database
    assert [t.id for t in payments.store.list_tasks(TaskFilter())] == [child_id]
    assert [t.namespace for t in support.store.list_tasks(TaskFilter())] == ["customer_success"]
