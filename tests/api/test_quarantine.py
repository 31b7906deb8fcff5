"""Under ``--on-conflict quarantine`` a request for a quarantined namespace says so (503
``namespace_quarantined``, naming every plugin that claims it), not "unknown namespace" — to
principals that may view it; others still get the 404 of an unknown namespace."""

from __future__ import annotations

from typing import Any

import pytest

from tasker_host.plugins import installed_entry_points
from tasker_host.registry import ConflictPolicy
from tasker_host.testing import FakeEntryPoint, make_plugin

from .conftest import Live, make_host, shared_entry_point

CLAIMANTS = ["tasker-inventory", "tasker-rival"]


@pytest.fixture(scope="module")
def quarantined(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Live:
    rival = FakeEntryPoint.of("rival", make_plugin(namespaces=["inventory"]), dist="tasker-rival", version="0.0.1")
    host = make_host(tmp_path_factory.mktemp("q") / "t.db",
                     entry_points=[*installed_entry_points(), shared_entry_point(), rival],
                     on_conflict=ConflictPolicy.QUARANTINE)
    assert "inventory" not in host.registry.namespaces and "payments" in host.registry.namespaces
    return serve(host=host, run_worker=False)


def assert_quarantined(response: Any) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "namespace_quarantined"
    assert "namespace 'inventory' is quarantined" in body["message"]
    assert [p["path"] for p in body["problems"]] == ["namespace", "namespace"]
    assert [p["message"].removeprefix("claimed by ").split(" ")[0] for p in body["problems"]] == CLAIMANTS
    assert "available" not in body


def test_creating_a_task_in_a_quarantined_namespace_is_503_naming_the_claimants(quarantined: Live) -> None:
    body = {"name": "process_return", "namespace": "inventory", "context": {}}
    for who in ("inventory", "admin"):
        assert_quarantined(quarantined.create(body, who=who))
    assert quarantined.rows() == []  # nothing written


def test_the_catalogue_of_a_quarantined_namespace_is_503(quarantined: Live) -> None:
    who = quarantined.auth("inventory")
    assert_quarantined(quarantined.client.get("/handlers/inventory", headers=who))
    assert_quarantined(quarantined.client.get("/handlers/inventory/process_return", headers=who))
    listed = quarantined.client.get("/handlers", headers=who).json()["namespaces"]
    assert "inventory" not in {ns["namespace"] for ns in listed}  # not served, so not listed
    assert quarantined.client.get("/handlers/payments", headers=quarantined.auth("payments")).status_code == 200


def test_a_principal_that_cannot_view_it_gets_unknown_namespace(quarantined: Live) -> None:
    who = quarantined.auth("payments")
    response = quarantined.client.get("/handlers/inventory", headers=who)
    assert response.status_code == 404 and response.json()["error"] == "unknown_namespace"
    created = quarantined.create({"name": "process_return", "namespace": "inventory", "context": {}}, who="payments")
    assert created.status_code == 404 and created.json()["error"] == "unknown_namespace"
    assert "tasker-rival" not in created.text


def test_a_namespace_nobody_claims_is_still_unknown(quarantined: Live) -> None:
    response = quarantined.client.get("/handlers/billing", headers=quarantined.auth("admin"))
    assert response.status_code == 404 and response.json()["error"] == "unknown_namespace"
