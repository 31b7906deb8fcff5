"""Contracts across hosts: ``GET /handlers/{ns}/{name}`` publishes the input schema, the
result_schema and the declared calls, and a host whose ``remote_hosts`` serve a namespace checks
its declared calls into it against what that host publishes, at start-up (a real payments server
on loopback, and ``httpx.MockTransport`` for the answers a live server would not give). An
unreachable remote host is a warning, not a failure."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tasker_host.api import create_app
from tasker_host.contracts.calls import Severity
from tasker_host.errors import PluginLoadFailures
from tasker_host.host import Host
from tasker_host.settings import RemoteHost
from tasker_host.tokens import issue_token
from tests.test_contracts_release import installed_with

from .conftest import PREFIX, ServerThread, make_host
from .test_two_hosts import plugins

BROKEN = ("customer_success.process_refund@1.3.3 step 'execute_refund_workflow' calls payments.process_refund "
          '~=2.1: payments.process_refund@2.2.0 input: field "reason_code" is now required (at $.reason_code)')

# customer_success 1.3.3 and 1.4.0 (the approval by event) both declare the call
BROKEN_ALL = [BROKEN, BROKEN.replace("process_refund@1.3.3", "process_refund@1.4.0")]
CALLERS = ["customer_success.process_refund@1.3.3", "customer_success.process_refund@1.4.0"]


def payments_release(tmp_path: Path) -> list[Any]:
    from tests.test_contracts_release import PAYMENTS_TEMPLATES, release_2_2_0

    templates = tmp_path / "release" / "templates"
    templates.mkdir(parents=True)
    for f in PAYMENTS_TEMPLATES.glob("*.yaml"):
        (templates / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    release_2_2_0(templates)
    return [ep for ep in installed_with(templates) if ep.name == "payments"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(entry_points: list[Any], grants: tuple[str, ...] = ("payments",)) -> tuple[Host, str, str]:
        host = make_host(tmp_path / f"payments-{len(started)}.db", entry_points)
        token = issue_token(host.tokens, "customer-success", grants=list(grants), now=time.time()).token
        server = ServerThread(create_app(host, prefix=PREFIX))
        server.start()
        started.append(server)
        return host, f"http://127.0.0.1:{server.port}{PREFIX}", token

    yield start
    for server in started:
        server.stop()


def support_host(tmp_path: Path, base: str, token: str, **settings: Any) -> Host:
    return make_host(tmp_path / "support.db", plugins("customer_success"),
                     remote_hosts=(RemoteHost("payments", base, token),), **settings)


def test_the_handler_endpoint_publishes_the_contract(serve) -> None:
    _, base, token = serve(plugins("payments", "customer_success"))
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        payments = http.get(f"{base}/handlers/payments/process_refund", params={"version": "~=2.1"}).json()
    assert payments["full_name"] == "payments.process_refund@2.1.3"
    assert payments["schema"]["required"] == ["payment_id", "refund_amount"]
    assert sorted(payments["result_schema"]["properties"]) == [
        "process_gateway_refund", "update_payment_records", "validate_payment_eligibility"]
    assert payments["calls"] == []


def test_the_caller_side_publishes_its_declared_calls(serve) -> None:
    _, base, token = serve(plugins("customer_success"), grants=("customer_success",))
    doc = httpx.get(f"{base}/handlers/customer_success/process_refund",
                    headers={"Authorization": f"Bearer {token}"}).json()
    [call] = doc["calls"]
    assert (call["step"], call["target"], call["version"]) == (
        "execute_refund_workflow", "payments.process_refund", "~=2.1")
    assert call["sends"]["additionalProperties"] is False
    assert call["reads"]["properties"]["process_gateway_refund"]["required"] == ["refund_id"]


def test_a_compatible_remote_contract_passes(serve, tmp_path: Path) -> None:
    _, base, token = serve(plugins("payments"))
    host = support_host(tmp_path, base, token, strict_plugins=True)
    assert host.catalog.contracts == ()


def test_a_breaking_remote_release_stops_a_strict_host(serve, tmp_path: Path) -> None:
    _, base, token = serve(payments_release(tmp_path))
    with pytest.raises(PluginLoadFailures) as caught:
        support_host(tmp_path, base, token, strict_plugins=True)
    assert f"failed at contract: {BROKEN}" in str(caught.value)
    lenient = support_host(tmp_path, base, token)
    assert [f.error for f in lenient.catalog.failures] == BROKEN_ALL


def test_an_unreachable_remote_host_is_a_warning(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = support_host(tmp_path, f"http://127.0.0.1:{port}{PREFIX}", "tsk_x", strict_plugins=True)
    warnings = host.catalog.contract_warnings
    assert [w.caller for w in warnings] == CALLERS
    for warning in warnings:
        assert warning.severity is Severity.WARNING
        assert warning.message.startswith(
            f"cannot check: host http://127.0.0.1:{port}{PREFIX} is unreachable (ConnectError")
    assert host.catalog.failures == []


def mock_client(handler: Any) -> Any:
    return lambda: httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("status", "body", "severity", "message"), [
    (404, {"error": "no_matching_version", "message": "no version of payments.process_refund satisfies ~=2.1"},
     Severity.BROKEN, "host http://payments.test/tasker answered HTTP 404: no version of payments.process_refund "
                      "satisfies ~=2.1"),
    (401, {"error": "unauthorized", "message": "invalid token"},
     Severity.WARNING, "cannot check: host http://payments.test/tasker answered HTTP 401: invalid token"),
    (503, {"error": "unavailable", "message": "restarting"},
     Severity.WARNING, "cannot check: host http://payments.test/tasker answered HTTP 503: restarting"),
])
def test_what_the_remote_host_answers_decides_broken_or_warning(status, body, severity, message) -> None:
    from tasker_host.host import build_host
    from tasker_host.settings import HostSettings

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    host = build_host(HostSettings(database_url="memory", remote_hosts=(
        RemoteHost("payments", "http://payments.test/tasker", "tsk_secret"),)),
        entry_points=plugins("customer_success"), contracts_client=mock_client(answer))
    findings = host.catalog.contracts
    assert [(f.caller, f.severity, f.message) for f in findings] == [
        (caller, severity, message) for caller in CALLERS]
    assert str(seen[0].url) == "http://payments.test/tasker/handlers/payments/process_refund?version=~%3D2.1"
    assert seen[0].headers["Authorization"] == "Bearer tsk_secret"


def test_every_remote_version_the_range_matches_is_checked(tmp_path: Path) -> None:
    from tasker_host.host import build_host
    from tasker_host.settings import HostSettings

    def doc(version: str, required: list[str]) -> dict[str, Any]:
        return {"version": version, "full_name": f"payments.process_refund@{version}",
                "available_versions": ["2.0.0", "2.1.0", "2.2.0"], "step_names": ["process_gateway_refund"],
                "schema": {"type": "object", "required": required},
                "result_schema": {"type": "object", "properties": {"process_gateway_refund": {
                    "type": "object", "required": ["refund_id"]}}}}

    def answer(request: httpx.Request) -> httpx.Response:
        version = request.url.params.get("version")
        if version == "2.1.0":
            return httpx.Response(200, json=doc("2.1.0", ["payment_id", "reason_code"]))
        return httpx.Response(200, json=doc("2.2.0", ["payment_id"]))

    host = build_host(HostSettings(database_url="memory", remote_hosts=(
        RemoteHost("payments", "http://payments.test/tasker", "tsk_secret"),)),
        entry_points=plugins("customer_success"), contracts_client=mock_client(answer))
    assert [f.describe() for f in host.catalog.contracts] == [
        f"{caller} step 'execute_refund_workflow' calls payments.process_refund ~=2.1: "
        'payments.process_refund@2.1.0 input: field "reason_code" is now required (at $.reason_code)'
        for caller in CALLERS]
