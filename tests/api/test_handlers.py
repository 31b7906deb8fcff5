"""The catalogue endpoints, in the seed's shapes."""

from __future__ import annotations

from .conftest import Live

SEED_HANDLER_FIELDS = {"id", "namespace", "version", "description", "step_count", "step_names"}


def test_catalogue_lists_namespaces_and_their_workflows(live: Live) -> None:
    response = live.client.get("/handlers", headers=live.auth("admin"))
    assert response.status_code == 200
    namespaces = {ns["namespace"]: ns for ns in response.json()["namespaces"]}
    payments = namespaces["payments"]
    assert payments["owner"] == "Payments team"
    refund = next(h for h in payments["handlers"] if h["id"] == "process_refund" and h["version"] == "2.1.3")
    assert SEED_HANDLER_FIELDS | {"available_versions"} <= set(refund)
    assert refund["description"] == "Process payment gateway refunds"
    assert refund["step_count"] == 4
    assert refund["step_names"] == ["validate_payment_eligibility", "process_gateway_refund",
                                    "update_payment_records", "notify_customer"]
    assert refund["available_versions"] == ["2.0.0", "2.1.3"]


def test_namespace_document_has_the_seed_shape_and_step_dependencies(live: Live) -> None:
    # curl -H "Authorization: Bearer $TOKEN" https://your-app.com/tasker/handlers/payments
    response = live.client.get("/handlers/payments", headers=live.auth("payments"))
    assert response.status_code == 200
    doc = response.json()
    assert doc["namespace"] == "payments"
    assert all(SEED_HANDLER_FIELDS <= set(h) and h["namespace"] == "payments" for h in doc["handlers"])
    payment = next(h for h in doc["handlers"] if h["id"] == "process_payment")
    assert (payment["version"], payment["step_count"]) == ("3.0.0", 4)
    assert payment["step_names"] == ["validate_payment_method", "check_fraud_score", "charge_payment", "send_receipt"]
    steps = {s["name"]: s for s in payment["steps"]}
    assert steps["check_fraud_score"]["depends_on"] == ["validate_payment_method"]


def test_template_by_version_request(live: Live) -> None:
    who = live.auth("payments")
    for spec, version in (("2.1.3", "2.1.3"), ("~=2.0", "2.1.3"), ("<2.1", "2.0.0"), (None, "2.1.3")):
        params = {"version": spec} if spec else {}
        response = live.client.get("/handlers/payments/process_refund", params=params, headers=who)
        assert response.status_code == 200, response.text
        doc = response.json()
        assert (doc["version"], doc["full_name"]) == (version, f"payments.process_refund@{version}")
        assert doc["available_versions"] == ["2.0.0", "2.1.3"]
        assert doc["schema"]["required"] == ["payment_id", "refund_amount"]
        assert doc["steps"][1]["depends_on"] == ["validate_payment_eligibility"]


def test_seed_handler_request_for_a_missing_version_lists_the_available_ones(live: Live) -> None:
    # curl ... https://your-app.com/tasker/handlers/payments/process_refund?version=2.1.0
    response = live.client.get("/handlers/payments/process_refund?version=2.1.0", headers=live.auth("payments"))
    assert response.status_code == 404
    assert response.json()["error"] == "no_matching_version"
    assert response.json()["available"] == ["2.0.0", "2.1.3"]


def test_unknown_template_and_bad_spec(live: Live) -> None:
    unknown = live.client.get("/handlers/payments/refund", headers=live.auth("payments"))
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_template"
    assert unknown.json()["available"] == ["process_payment", "process_refund"]
    bad = live.client.get("/handlers/payments/process_refund?version=latest!", headers=live.auth("payments"))
    assert bad.status_code == 422 and bad.json()["problems"][0]["path"] == "version"
    typo = live.client.get("/handlers/payments/process_refund?verison=2.0.0", headers=live.auth("payments"))
    assert typo.status_code == 422 and typo.json()["problems"][0]["path"] == "verison"
    nowhere = live.client.get("/handlers/billing", headers=live.auth("admin"))
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "unknown_namespace"
