"""Authentication (401) and the namespace authorization matrix (404 for what a principal cannot
view, 403 for what it may view but not do), against a live server."""

from __future__ import annotations

import copy

import pytest

from .conftest import SEED_CUSTOMER_SUCCESS, SEED_PAYMENTS, Live

PROTECTED = [("POST", "/tasks"), ("GET", "/tasks"), ("GET", "/tasks/x"), ("DELETE", "/tasks/x"),
             ("POST", "/tasks/x/retry"), ("POST", "/tasks/x/steps/s/resolve"), ("GET", "/handlers"),
             ("GET", "/handlers/payments"), ("GET", "/handlers/payments/process_refund"), ("GET", "/metrics"),
             ("POST", "/tasks/x/events/approval"), ("GET", "/tasks/x/events")]
OPEN = ["/health/live", "/health/ready", "/health/status", "/openapi.json"]
SHARED_PING = {"name": "ping", "namespace": "shared", "context": {}}


@pytest.fixture(scope="module")
def tasks(live: Live) -> dict[str, str]:
    """One task per namespace, created by the admin and run to the end (the customer_success one
    creates a payments child task: done before any test counts rows)."""
    bodies = {"payments": SEED_PAYMENTS, "customer_success": SEED_CUSTOMER_SUCCESS, "shared": SHARED_PING}
    ids = {}
    for ns, body in bodies.items():
        response = live.create(copy.deepcopy(body))
        assert response.status_code == 201, response.text
        ids[ns] = response.json()["id"]
    for task_id in ids.values():
        live.waiter.wait(task_id)
    return ids


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer tsk_not-a-token",
                                           "revoked"])
def test_every_protected_endpoint_needs_a_valid_token(live: Live, method: str, path: str,
                                                      authorization: str | None) -> None:
    headers = {} if authorization is None else (
        live.auth("revoked") if authorization == "revoked" else {"Authorization": authorization})
    before = live.rows()
    response = live.client.request(method, path, headers=headers, json={} if method == "POST" else None)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthorized" and body["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert live.rows() == before


@pytest.mark.parametrize("path", OPEN)
def test_health_and_openapi_need_no_token(live: Live, path: str) -> None:
    assert live.client.get(path).status_code == 200


def test_payments_token_cannot_create_or_see_customer_success_tasks(live: Live, tasks: dict[str, str]) -> None:
    before = live.rows()
    response = live.create(copy.deepcopy(SEED_CUSTOMER_SUCCESS), who="payments")
    assert response.status_code == 404  # as if the namespace did not exist
    assert response.json()["error"] == "unknown_namespace"
    assert "customer_success" not in response.json()["available"]
    assert live.rows() == before
    cs_task = f"/tasks/{tasks['customer_success']}"
    for method, path in (("GET", cs_task), ("DELETE", cs_task), ("POST", f"{cs_task}/retry"),
                         ("POST", f"{cs_task}/steps/validate_refund_request/resolve"),
                         ("GET", f"{cs_task}/steps/validate_refund_request/logs")):
        response = live.client.request(method, path, headers=live.auth("payments"))
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    listed = live.client.get("/tasks", params={"limit": 200}, headers=live.auth("payments")).json()["tasks"]
    assert {t["namespace"] for t in listed} <= {"payments", "shared"}
    assert tasks["customer_success"] not in {t["id"] for t in listed}
    asked = live.client.get("/tasks", params={"namespace": "customer_success"}, headers=live.auth("payments"))
    assert asked.status_code == 200 and asked.json() == {"tasks": [], "next_cursor": None}


def test_customer_success_token_views_shared_but_cannot_manage_it(live: Live, tasks: dict[str, str]) -> None:
    shown = live.client.get(f"/tasks/{tasks['shared']}", headers=live.auth("cs"))
    assert shown.status_code == 200 and shown.json()["namespace"] == "shared"
    listed = live.client.get("/tasks", params={"limit": 200}, headers=live.auth("cs")).json()["tasks"]
    assert {t["namespace"] for t in listed} == {"customer_success", "shared"}
    before = live.rows()
    created = live.create(dict(SHARED_PING), who="cs")
    assert created.status_code == 403 and created.json()["error"] == "forbidden" and created.json()["message"]
    assert live.rows() == before
    cancel = live.client.delete(f"/tasks/{tasks['shared']}", headers=live.auth("cs"))
    assert cancel.status_code == 403 and cancel.json()["error"] == "forbidden"
    names = [ns["namespace"] for ns in live.client.get("/handlers", headers=live.auth("cs")).json()["namespaces"]]
    assert names == ["customer_success", "shared"]


def test_view_grant_allows_reading_but_not_creating(live: Live, tasks: dict[str, str]) -> None:
    assert live.client.get(f"/tasks/{tasks['payments']}", headers=live.auth("payments_viewer")).status_code == 200
    response = live.create(copy.deepcopy(SEED_PAYMENTS), who="payments_viewer")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_admin_sees_and_manages_everything(live: Live, tasks: dict[str, str]) -> None:
    listed = live.client.get("/tasks", params={"limit": 200}, headers=live.auth("admin")).json()["tasks"]
    assert set(tasks.values()) <= {t["id"] for t in listed}
    for task_id in tasks.values():
        assert live.client.get(f"/tasks/{task_id}", headers=live.auth("admin")).status_code == 200
    names = [ns["namespace"] for ns in live.client.get("/handlers", headers=live.auth("admin")).json()["namespaces"]]
    assert sorted(names) == ["customer_success", "inventory", "payments", "shared"]


def test_handlers_of_an_invisible_namespace_are_404(live: Live) -> None:
    for path in ("/handlers/customer_success", "/handlers/customer_success/process_refund"):
        response = live.client.get(path, headers=live.auth("payments"))
        assert response.status_code == 404 and response.json()["error"] == "unknown_namespace"
        assert response.json()["available"] == ["payments", "shared"]
