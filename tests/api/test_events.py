"""``POST /tasks/{id}/events/{name}`` on a real server (SQLite and PostgreSQL): an event wakes a
waiting step, replays by Idempotency-Key, invalid payloads (422, nothing written), ended tasks
(409), and who may send (the ``signal`` action, through grants and the ``tasker_authorize`` hook)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tasker_host import StepHandler
from tasker_host.engine.events import EventKind, LifecycleEvent
from tasker_host.markers import hookimpl
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc
from tests.api.conftest import Live, make_host

SCHEMA = {"type": "object", "required": ["approved", "approver"], "additionalProperties": False,
          "properties": {"approved": {"type": "boolean"}, "approver": {"type": "string"},
                         "note": {"type": "string"}}}
APPROVED = {"approved": True, "approver": "maria", "note": "fine"}


class Approval(StepHandler):
    def process(self, ctx: Any) -> Any:
        approval = ctx.event("approval")
        if approval is None:
            return ctx.wait_for("approval", schema=SCHEMA, timeout=timedelta(hours=48))
        return {"approved": approval["approved"]}


class SignalPolicy:
    """While ``viewers_may_signal``, the ``payments_viewer`` token may send events in payments."""

    def __init__(self) -> None:
        self.viewers_may_signal = False
        self.asked: list[tuple[str, str, str]] = []

    @hookimpl
    def tasker_authorize(self, principal: Any, action: str, namespace: str) -> bool | None:
        self.asked.append((principal.name, action, namespace))
        if action == "signal" and principal.name == "payments_viewer" and self.viewers_may_signal:
            return True
        return None


class Waiting:
    """Step-waiting events of the host, waited on (not polled)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: set[str] = set()

    def on_event(self, event: LifecycleEvent) -> None:
        if event.kind is EventKind.STEP_WAITING:
            with self.cond:
                self.seen.add(event.task_id)
                self.cond.notify_all()

    def wait(self, task_id: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: task_id in self.seen, 15), f"task {task_id} never waited"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           serve: Callable[..., Live]) -> Iterator[tuple[Live, SignalPolicy, Waiting]]:
    db: Path | str = tmp_path_factory.mktemp("events") / "tasker.db"
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_module_url")
    policy, waiting = SignalPolicy(), Waiting()
    plugin = make_plugin(["payments"], [template_doc("payments", "approve", "1.0.0", [
        {"name": "approve", "handler_class": "Approval"}])], {"Approval": Approval})
    host = make_host(db, [FakeEntryPoint.of("payments", plugin, dist="tasker-payments-test"),
                          FakeEntryPoint.of("policy", policy, dist="tasker-policy")])
    host.events.subscribe(waiting.on_event)
    yield serve(host=host), policy, waiting


def _waiting_task(live: Live, waiting: Waiting) -> str:
    response = live.create({"namespace": "payments", "name": "approve"})
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    waiting.wait(task_id)
    return task_id


def _send(live: Live, task_id: str, payload: Any, who: str = "payments", name: str = "approval",
          **headers: str) -> Any:
    return live.client.post(f"/tasks/{task_id}/events/{name}", json=payload, headers=live.auth(who, **headers))


def test_an_event_wakes_the_waiting_step_and_a_replay_returns_it(server: tuple[Live, SignalPolicy, Waiting]) -> None:
    live, _, waiting = server
    task_id = _waiting_task(live, waiting)
    doc = live.client.get(f"/tasks/{task_id}", headers=live.auth("payments")).json()
    step = doc["steps"][0]
    assert step["state"] == "waiting" and step["waiting_for"]["event"] == "approval"
    assert step["waiting_for"]["schema"] == SCHEMA and step["waiting_for"]["timeout_at"]
    first = _send(live, task_id, APPROVED, **{"Idempotency-Key": "approval-1"})
    assert first.status_code == 201, first.text
    sent = first.json()
    assert (sent["woke"], sent["duplicate"], sent["sender"]) == ("approve", False, "payments")
    assert sent["payload"] == APPROVED
    live.waiter.wait(task_id)
    again = _send(live, task_id, {**APPROVED, "approved": False}, **{"Idempotency-Key": "approval-1"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == sent["id"] and again.json()["payload"] == APPROVED
    done = live.client.get(f"/tasks/{task_id}", headers=live.auth("payments")).json()
    assert done["status"] == "complete" and done["steps"][0]["results"] == {"approved": True}
    events = live.client.get(f"/tasks/{task_id}/events", headers=live.auth("payments_viewer")).json()["events"]
    assert [e["id"] for e in events] == [sent["id"]]
    ended = _send(live, task_id, APPROVED)
    assert ended.status_code == 409 and ended.json()["error"] == "task_ended"
    # who approved is in the audit trail, once: the replay and the refused send wrote nothing
    assert [(e["principal"], e["actor_kind"], e["details"]) for e in _sends(live, task_id)] == [
        ("payments", "api", {"event": "approval", "woke": "approve", "idempotency_key": "approval-1"})]


def _sends(live: Live, task_id: str) -> list[Any]:
    entries = live.client.get("/audit", params={"namespace": "payments", "limit": 200},
                              headers=live.auth("payments")).json()["entries"]
    return [e for e in entries if e["action"] == "event.send" and e["target"] == task_id]


def test_an_invalid_payload_is_a_422_listing_every_problem(server: tuple[Live, SignalPolicy, Waiting]) -> None:
    live, _, waiting = server
    task_id = _waiting_task(live, waiting)
    response = _send(live, task_id, {"approved": "yes", "extra": 1})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_event" and len(body["problems"]) == 3
    assert {p["path"] for p in body["problems"]} == {"payload", "payload.approved"}
    bad_name = _send(live, task_id, APPROVED, name="no spaces")
    assert bad_name.status_code == 422 and bad_name.json()["error"] == "invalid_request"
    not_json = live.client.post(f"/tasks/{task_id}/events/approval", content=b"{", headers=live.auth(
        "payments", **{"Content-Type": "application/json"}))
    assert not_json.status_code == 400
    assert live.client.get(f"/tasks/{task_id}/events", headers=live.auth("payments")).json()["events"] == []
    assert _sends(live, task_id) == []  # nothing written, nothing audited
    assert live.client.delete(f"/tasks/{task_id}", headers=live.auth("payments")).status_code == 200


def test_who_may_send_events(server: tuple[Live, SignalPolicy, Waiting]) -> None:
    live, policy, waiting = server
    task_id = _waiting_task(live, waiting)
    assert _send(live, task_id, APPROVED, who="cs").status_code == 404  # cannot even see it
    denied = _send(live, task_id, APPROVED, who="payments_viewer")
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert ("payments_viewer", "signal", "payments") in policy.asked  # the hook was asked
    policy.viewers_may_signal = True
    try:
        allowed = _send(live, task_id, APPROVED, who="payments_viewer")
    finally:
        policy.viewers_may_signal = False
    assert allowed.status_code == 201 and allowed.json()["woke"] == "approve"
    live.waiter.wait(task_id)
    assert _send(live, "no-such-task", APPROVED).status_code == 404
