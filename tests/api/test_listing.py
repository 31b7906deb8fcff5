"""GET /tasks: filters, cursor pagination, and bad query strings (a server without an engine, so
statuses stay put)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest

from .conftest import SEED_CUSTOMER_SUCCESS, SEED_PAYMENTS, Live


@pytest.fixture(scope="module")
def listed(serve: Any) -> tuple[Live, list[dict[str, Any]]]:
    live = serve(run_worker=False)
    docs = []
    for i in range(7):
        body = copy.deepcopy(SEED_PAYMENTS if i % 3 else SEED_CUSTOMER_SUCCESS)
        if i == 5:
            body["version"] = "2.0.0"
        docs.append(live.create(body).json())
    live.client.delete(f"/tasks/{docs[1]['id']}", headers=live.auth("admin"))
    return live, docs


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["tasks"]]


def test_lists_oldest_first_without_steps(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, docs = listed
    response = live.client.get("/tasks", headers=live.auth("admin"))
    assert ids(response) == [d["id"] for d in docs]
    assert response.json()["next_cursor"] is None
    assert "steps" not in response.json()["tasks"][0]


def test_cursor_pagination_walks_every_task_once(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, docs = listed
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = live.client.get("/tasks", params=params, headers=live.auth("admin")).json()
        seen += [t["id"] for t in page["tasks"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["id"] for d in docs] and pages == 3


def test_filters(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, docs = listed
    get = lambda **params: ids(live.client.get("/tasks", params=params, headers=live.auth("admin")))  # noqa: E731
    payments = [d["id"] for d in docs if d["namespace"] == "payments"]
    assert get(namespace="payments") == payments
    assert get(namespace=["payments", "customer_success"]) == [d["id"] for d in docs]
    assert get(namespace="payments", version="2.0.0") == [docs[5]["id"]]
    assert get(name="process_refund", status="cancelled") == [docs[1]["id"]]
    assert get(status="pending", namespace="payments") == [i for i in payments if i != docs[1]["id"]]
    middle = docs[3]["created_at"]
    epoch = datetime.fromisoformat(middle).timestamp()
    assert get(created_after=middle) == [d["id"] for d in docs[3:]]
    assert get(created_after=str(epoch)) == [d["id"] for d in docs[3:]]
    assert get(created_before=middle) == [d["id"] for d in docs[:3]]
    assert get(created_after="2999-01-01T00:00:00") == []


def test_newest_first_and_by_id_prefix(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, docs = listed
    get = lambda **params: ids(live.client.get("/tasks", params=params, headers=live.auth("admin")))  # noqa: E731
    assert get(order="newest") == [d["id"] for d in reversed(docs)]
    first = live.client.get("/tasks", params={"order": "newest", "limit": 2}, headers=live.auth("admin")).json()
    rest = get(order="newest", cursor=first["next_cursor"])
    assert [t["id"] for t in first["tasks"]] + rest == [d["id"] for d in reversed(docs)]
    assert get(id_prefix=docs[2]["id"][:8]) == [docs[2]["id"]]
    assert ids(live.client.get("/tasks", params={"id_prefix": docs[2]["id"][:8]}, headers=live.auth("inventory"))) == []


def test_a_team_token_lists_only_its_namespaces(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, docs = listed
    mine = ids(live.client.get("/tasks", headers=live.auth("payments")))
    assert mine == [d["id"] for d in docs if d["namespace"] == "payments"]
    assert ids(live.client.get("/tasks", headers=live.auth("inventory"))) == []


@pytest.mark.parametrize(("params", "paths"), [
    ({"limit": "0"}, ["limit"]), ({"limit": "201"}, ["limit"]), ({"limit": "ten"}, ["limit"]),
    ({"status": "done"}, ["status"]), ({"created_after": "yesterday"}, ["created_after"]),
    ({"created_before": "nan"}, ["created_before"]), ({"cursor": "not-a-cursor"}, ["cursor"]),
    ({"namespace": ""}, ["namespace"]), ({"statu": "error"}, ["statu"]), ({"order": "sideways"}, ["order"]),
    ({"limit": "-1", "status": "x", "cursor": "%%"}, ["status", "limit", "cursor"]),
])
def test_bad_query_is_422_listing_every_problem(listed: tuple[Live, list[dict[str, Any]]], params: dict[str, str],
                                               paths: list[str]) -> None:
    live, _ = listed
    response = live.client.get("/tasks", params=params, headers=live.auth("admin"))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request" and [p["path"] for p in body["problems"]] == paths
    if "order" in params:
        assert body["problems"][0]["message"] == "must be one of oldest, newest"


def test_bad_resolve_bodies(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, docs = listed
    url, before = f"/tasks/{docs[0]['id']}/steps/validate_refund_request/resolve", live.rows()
    for content, content_type, status, error in (
        (b"[1]", "application/json", 422, "invalid_request"),
        (b'{"results": 1, "why": "x"}', "application/json", 422, "invalid_request"),
        (b"{", "application/json", 400, "malformed_json"),
        (b"results=1", "text/plain", 415, "unsupported_media_type"),
        (b'{"results": 1}', "application/json", 409, "invalid_state"),  # the step has not failed
    ):
        response = live.client.post(url, content=content, headers=live.auth("admin", **{"Content-Type": content_type}))
        assert (response.status_code, response.json()["error"]) == (status, error)
    assert live.rows() == before
    assert live.host.store.get_task(docs[0]["id"]).steps[0].state.value == "pending"


def test_unknown_routes_and_methods_answer_json(listed: tuple[Live, list[dict[str, Any]]]) -> None:
    live, _ = listed
    missing = live.client.get("/nothing-here", headers=live.auth("admin"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = live.client.put("/tasks", headers=live.auth("admin"))
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
