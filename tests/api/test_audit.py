"""The audit trail through the real API (a loopback server, SQLite and PostgreSQL): every create,
resolve, retry, cancel and console sign-in is recorded with who did it and the request's
correlation id; GET /audit lists it to admins (every row) and a namespace's managers (their
namespace's rows), newest first and in pages; anyone else gets a 403."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tasker_host.engine.events import EventKind

from .conftest import SEED_PAYMENTS, Live, live_server, make_host


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    database = tmp_path / "t.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with live_server(make_host(database)) as server:
        yield server


def refund(failing_step: str, fault: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED_PAYMENTS)
    body["context"]["simulate"] = {failing_step: [fault]}
    return body


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_sign_in(live: Live, token: str, *, cancel: str | None = None) -> None:
    """Sign in to the console (and cancel the task ``cancel`` through its form)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{live.server.port}") as browser:
        form = browser.get("/ui/sign-in")
        csrf = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
        assert browser.post("/ui/sign-in", data={"token": token, "csrf_token": csrf}).status_code == 303
        if cancel is not None:
            session_csrf = CSRF.search(browser.get("/ui/").text).group(1)  # type: ignore[union-attr]
            done = browser.post(f"/ui/tasks/{cancel}/cancel", headers={"X-CSRF-Token": session_csrf})
            assert done.status_code == 303 and "Cancelled" in done.headers["location"]


def audit(live: Live, who: str, **params: Any) -> httpx.Response:
    return live.client.get("/audit", params=params, headers=live.auth(who))


def rows(live: Live, who: str = "admin", **params: Any) -> list[dict[str, Any]]:
    response = audit(live, who, **params)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def test_every_action_is_recorded_with_who_and_the_correlation_id(live: Live) -> None:
    first = live.create(refund("update_payment_records", "not_found"), "admin",
                        **{"X-Correlation-Id": "refund-42"}).json()
    assert live.waiter.wait(first["id"]) is EventKind.TASK_FAILED
    resolved = live.client.post(f"/tasks/{first['id']}/steps/update_payment_records/resolve",
                                json={"results": {"ledger": "fixed by hand"}}, headers=live.auth("payments"))
    assert resolved.status_code == 200
    second = live.create(refund("process_gateway_refund", "declined"), "payments").json()
    assert live.waiter.wait(second["id"]) is EventKind.TASK_FAILED
    assert live.client.post(f"/tasks/{second['id']}/retry", headers=live.auth("payments")).status_code == 200
    assert live.waiter.wait(second["id"], count=2) is EventKind.TASK_FAILED
    cancelled = live.client.delete(f"/tasks/{second['id']}", headers=live.auth("payments", **{
        "X-Correlation-Id": "ops-7"}))
    assert cancelled.status_code == 200
    assert live.client.delete(f"/tasks/{second['id']}", headers=live.auth("payments")).status_code == 409
    console_sign_in(live, live.tokens["payments"])

    found = rows(live)
    assert [(r["action"], r["target"]) for r in found] == [
        ("console.sign_in", None), ("task.cancel", second["id"]), ("task.retry", second["id"]),
        ("task.create", second["id"]), ("step.resolve", first["id"]), ("task.create", first["id"])]
    assert all(r["principal"] == r["token_name"] == "payments" for r in found[:5])
    assert [r["actor_kind"] for r in found] == ["console", "api", "api", "api", "api", "api"]
    created = found[-1]
    assert (created["principal"], created["namespace"], created["correlation_id"]) == ("admin", "payments",
                                                                                       "refund-42")
    assert created["details"] == {"template": "process_refund", "version": "2.1.3"}
    assert found[4]["details"] == {"step": "update_payment_records", "reason": "resolved manually"}
    assert found[4]["correlation_id"] == "refund-42"  # no header: the task's correlation id
    assert found[1]["correlation_id"] == "ops-7"  # the request's header
    assert found[0]["namespace"] is None and found[0]["os_user"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created["at"])


def test_who_may_read_which_rows(live: Live) -> None:
    quiet = live.create(refund("process_gateway_refund", "declined"), "payments").json()
    assert live.waiter.wait(quiet["id"]) is EventKind.TASK_FAILED
    task = live.create(copy.deepcopy(SEED_PAYMENTS), "payments").json()
    console_sign_in(live, live.tokens["admin"], cancel=quiet["id"])
    everything = rows(live)
    assert [r["action"] for r in everything] == ["task.cancel", "console.sign_in", "task.create", "task.create"]
    assert (everything[0]["actor_kind"], everything[0]["principal"]) == ("console", "admin")
    mine = rows(live, "payments")  # a manager: its namespace's rows, not the sign-in
    assert [(r["action"], r["target"]) for r in mine] == [("task.cancel", quiet["id"]), ("task.create", task["id"]),
                                                          ("task.create", quiet["id"])]
    assert rows(live, "payments", namespace="payments") == mine
    assert rows(live, "inventory") == []  # manages inventory, where nothing happened
    assert rows(live, "admin", namespace="inventory") == []
    for who, params in (("payments_viewer", {}), ("payments", {"namespace": "inventory"}),
                        ("inventory", {"namespace": ["inventory", "payments"]})):
        refused = audit(live, who, **params)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden", (who, params)
    assert live.client.get("/audit").status_code == 401


def test_pages_and_a_bad_query(live: Live) -> None:
    ids = [live.create(copy.deepcopy(SEED_PAYMENTS)).json()["id"] for _ in range(3)]
    first = audit(live, "admin", limit=2).json()
    assert [r["target"] for r in first["entries"]] == ids[:0:-1] and first["next_cursor"]
    rest = audit(live, "admin", limit=2, cursor=first["next_cursor"]).json()
    assert [r["target"] for r in rest["entries"]] == ids[:1] and rest["next_cursor"] is None
    assert rows(live, since="2999-01-01T00:00:00Z") == []
    bad = audit(live, "admin", limit=0, bogus=1, since="yesterday", cursor="nope")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    assert {p["path"] for p in bad.json()["problems"]} == {"limit", "bogus", "since", "cursor"}
