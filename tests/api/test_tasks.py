"""Task endpoints against a live server with the engine running: the seed's two requests
verbatim, version requests, the Tasker wrapper, idempotency, show / cancel / retry / resolve."""

from __future__ import annotations

import copy
import json
from datetime import datetime

from tasker_host.engine.events import EventKind

from .conftest import SEED_CUSTOMER_SUCCESS, SEED_PAYMENTS, Live

SEED_FIELDS = ("id", "name", "namespace", "version", "full_name", "status", "context", "created_at", "updated_at")


def refund(**context: object) -> dict:
    body = copy.deepcopy(SEED_PAYMENTS)
    body["context"].update(context)
    return body


def test_seed_payments_request_verbatim(live: Live) -> None:
    # curl -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d '{...}'
    response = live.client.post("/tasks", content=json.dumps(SEED_PAYMENTS),
                                headers=live.auth("payments", **{"Content-Type": "application/json"}))
    assert response.status_code == 201, response.text
    doc = response.json()
    assert set(SEED_FIELDS) <= set(doc)
    assert (doc["name"], doc["namespace"], doc["version"]) == ("process_refund", "payments", "2.1.3")
    assert doc["full_name"] == "payments.process_refund@2.1.3"
    assert doc["status"] == "pending"
    assert doc["context"] == SEED_PAYMENTS["context"]
    assert datetime.fromisoformat(doc["created_at"]) == datetime.fromisoformat(doc["updated_at"])
    assert response.headers["location"] == f"/tasker/tasks/{doc['id']}"
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_COMPLETED
    shown = live.client.get(f"/tasks/{doc['id']}", headers=live.auth("payments")).json()
    assert shown["status"] == "complete" and shown["completed_at"]
    assert [s["name"] for s in shown["steps"]] == ["validate_payment_eligibility", "process_gateway_refund",
                                                   "update_payment_records", "notify_customer"]
    for step in shown["steps"]:
        assert (step["state"], step["attempts"], step["last_error"]) == ("complete", 1, None)
        assert step["results"] and step["started_at"] and step["completed_at"]
    assert shown["steps"][1]["depends_on"] == ["validate_payment_eligibility"]
    assert shown["children"] == [] and shown["parent_task_id"] is None


def test_seed_customer_success_request_verbatim_links_its_payments_child(live: Live) -> None:
    response = live.client.post("/tasks", content=json.dumps(SEED_CUSTOMER_SUCCESS),
                                headers=live.auth("cs", **{"Content-Type": "application/json"}))
    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["full_name"] == "customer_success.process_refund@1.3.3"
    assert (doc["status"], doc["context"]) == ("pending", SEED_CUSTOMER_SUCCESS["context"])
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_COMPLETED
    shown = live.client.get(f"/tasks/{doc['id']}", headers=live.auth("admin")).json()
    assert len(shown["children"]) == 1
    child = live.client.get(f"/tasks/{shown['children'][0]}", headers=live.auth("admin")).json()
    assert (child["namespace"], child["name"], child["parent_task_id"]) == ("payments", "process_refund", doc["id"])
    # the customer_success team cannot see into payments: the child id is not listed for it
    assert live.client.get(f"/tasks/{doc['id']}", headers=live.auth("cs")).json()["children"] == []


def test_version_exact_range_or_omitted(live: Live) -> None:
    for spec, resolved in (("2.0.0", "2.0.0"), ("~=2.0", "2.1.3"), (">=2,<2.1", "2.0.0"), (None, "2.1.3")):
        body = refund()
        body["version"] = spec
        doc = live.create(body).json()
        assert (doc["version"], doc["full_name"]) == (resolved, f"payments.process_refund@{resolved}")
    body = refund()
    del body["version"]
    assert live.create(body).json()["version"] == "2.1.3"


def test_tasker_style_wrapper(live: Live) -> None:
    response = live.create({"task": refund()})
    assert response.status_code == 201
    assert response.json()["full_name"] == "payments.process_refund@2.1.3"


def test_idempotency_key_replays_without_writing(live: Live) -> None:
    first = live.create(refund(), **{"Idempotency-Key": "refund-pay_123-1"})
    assert first.status_code == 201
    before = live.rows()
    again = live.create(refund(), **{"Idempotency-Key": "refund-pay_123-1"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    ranged = refund()
    ranged["version"] = "~=2.1"  # the same request, by a range the task's version satisfies
    assert live.create(ranged, **{"Idempotency-Key": "refund-pay_123-1"}).status_code == 200
    other = live.create(refund(refund_amount=1), **{"Idempotency-Key": "refund-pay_123-1"})
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    assert live.rows() == before


def test_cancel_stops_a_running_task(live: Live) -> None:
    doc = live.create(refund(simulate={"validate_payment_eligibility": "slow:30"})).json()
    response = live.client.delete(f"/tasks/{doc['id']}", headers=live.auth("payments"))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_CANCELLED
    again = live.client.delete(f"/tasks/{doc['id']}", headers=live.auth("payments"))
    assert again.status_code == 409 and again.json()["error"] == "invalid_state"


def test_retry_then_resolve_a_failed_step(live: Live) -> None:
    doc = live.create(refund(simulate={"notify_customer": "auth"})).json()  # a permanent failure
    task_url, who = f"/tasks/{doc['id']}", live.auth("payments")
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_FAILED
    failed = live.client.get(task_url, headers=who).json()
    assert failed["status"] == "error" and failed["error"]["step"] == "notify_customer"
    step = failed["steps"][-1]
    assert step["state"] == "error" and step["last_error"]["kind"] == "permanent"

    retried = live.client.post(f"{task_url}/retry", headers=who)
    assert retried.status_code == 200 and retried.json()["status"] in {"in_progress", "error"}
    assert live.waiter.wait(doc["id"], count=2) is EventKind.TASK_FAILED  # the plan fails it again

    resolved = live.client.post(f"{task_url}/steps/notify_customer/resolve", headers=who,
                                json={"results": {"notified": "by phone"}})
    assert resolved.status_code == 200, resolved.text
    final = resolved.json()
    assert final["status"] == "complete"
    last = final["steps"][-1]
    assert (last["state"], last["results"]) == ("resolved_manually", {"notified": "by phone"})
    assert live.client.post(f"{task_url}/retry", headers=who).status_code == 409
    unknown = live.client.post(f"{task_url}/steps/no_such_step/resolve", headers=who)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


def test_a_steps_log_lines_are_served_with_the_tasks_authorization(live: Live) -> None:
    doc = live.create(refund(simulate={"notify_customer": "auth"})).json()  # the simulation logs its fault
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_FAILED
    url = f"/tasks/{doc['id']}/steps/notify_customer/logs"
    response = live.client.get(url, headers=live.auth("payments"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["task_id"], body["step"]) == (doc["id"], "notify_customer")
    line = body["lines"][0]
    assert (line["attempt"], line["seq"], line["level"]) == (1, 0, "info") and line["at"].endswith("Z"), body
    assert "simulating 'auth' on attempt 1 of notify_customer" in line["message"]
    assert [x["seq"] for x in body["lines"]] == list(range(len(body["lines"])))
    quiet = live.client.get(f"/tasks/{doc['id']}/steps/validate_payment_eligibility/logs",
                            headers=live.auth("payments"))
    assert quiet.status_code == 200 and quiet.json()["lines"] == []
    for path in (f"/tasks/{doc['id']}/steps/no_such_step/logs", "/tasks/nope/steps/notify_customer/logs"):
        missing = live.client.get(path, headers=live.auth("payments"))
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert live.client.get(url).status_code == 401


def test_resolve_without_a_body(live: Live) -> None:
    doc = live.create(refund(simulate={"notify_customer": "auth"})).json()
    assert live.waiter.wait(doc["id"]) is EventKind.TASK_FAILED
    response = live.client.post(f"/tasks/{doc['id']}/steps/notify_customer/resolve", headers=live.auth("admin"))
    assert response.status_code == 200 and response.json()["status"] == "complete"


def test_unknown_task_is_404(live: Live) -> None:
    for method, path in (("GET", "/tasks/nope"), ("DELETE", "/tasks/nope"), ("POST", "/tasks/nope/retry"),
                         ("POST", "/tasks/nope/steps/x/resolve")):
        response = live.client.request(method, path, headers=live.auth("admin"))
        assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_correlation_id_is_stored_on_the_task_and_echoed(live: Live) -> None:
    response = live.create(refund(), **{"X-Correlation-Id": "cs-abc123"})
    assert response.headers["x-correlation-id"] == "cs-abc123"
    task = response.json()
    assert task["correlation_id"] == "cs-abc123"
    shown = live.client.get(f"/tasks/{task['id']}", headers=live.auth("admin"))
    assert shown.headers["x-correlation-id"] == shown.json()["correlation_id"] == "cs-abc123"
    plain = live.create(refund()).json()  # without the header: the task's own id
    assert plain["correlation_id"] == plain["id"]
