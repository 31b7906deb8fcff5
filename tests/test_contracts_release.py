"""The breaking payments release of issue 12: ``payments.process_refund`` 2.2.0 adds a required
input field, which customer_success (``~=2.1``) and inventory (``>=2,<3``) do not send. It is
caught three ways before any task runs: by ``tasker-host contracts diff``, by customer_success's
``tasker-host check``, and at host start-up (fatal under ``--strict``, listed by ``plugins``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import tasker_payments.plugin as payments_plugin

from tasker_host.errors import PluginLoadFailures
from tasker_host.host import build_host
from tasker_host.plugins import installed_entry_points
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, make_plugin
from tests.kit_support import ROOT, invoke, invoke_json

PAYMENTS_TEMPLATES = ROOT / "plugins/payments/src/tasker_payments/templates"
CURRENT = PAYMENTS_TEMPLATES / "process_refund-2.1.3.yaml"
CS_PROJECT = ROOT / "plugins/customer_success"
BROKEN_CS = ('customer_success.process_refund@1.3.3 step \'execute_refund_workflow\' calls payments.process_refund '
             '~=2.1: payments.process_refund@2.2.0 input: field "reason_code" is now required (at $.reason_code)')
# customer_success 1.4.0 (the approval by event) declares the same call: both installed versions break
BROKEN_CS_ALL = [BROKEN_CS, BROKEN_CS.replace("process_refund@1.3.3", "process_refund@1.4.0")]
BROKEN_INVENTORY = ("inventory.process_return@1.4.0 step 'refund_customer' calls payments.process_refund >=2,<3: "
                    'payments.process_refund@2.2.0 input: field "reason_code" is now required (at $.reason_code)')


def release_2_2_0(directory: Path) -> Path:
    """process_refund 2.1.3 as payments' next release: 2.2.0, with a new required field."""
    text = CURRENT.read_text(encoding="utf-8")
    for old, new in (('version: "2.1.3"', 'version: "2.2.0"'),
                     ("required: ['payment_id', 'refund_amount']",
                      "required: ['payment_id', 'refund_amount', 'reason_code']"),
                     ("    partial_refund:\n", "    reason_code:\n      type: string\n    partial_refund:\n")):
        assert old in text
        text = text.replace(old, new, 1)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "process_refund-2.2.0.yaml"
    target.write_text(text, encoding="utf-8")
    return target


@pytest.fixture
def released(tmp_path: Path) -> Path:
    """The payments templates directory of the new release (2.0.0, 2.1.3, process_payment, 2.2.0)."""
    templates = tmp_path / "tasker_payments" / "templates"
    shutil.copytree(PAYMENTS_TEMPLATES, templates)
    release_2_2_0(templates)
    return templates


def installed_with(templates: Path) -> list[Any]:
    """The installed plugins, with payments replaced by its new release (same handlers)."""
    payments = make_plugin(payments_plugin.tasker_namespaces(), [templates], payments_plugin.tasker_step_handlers())
    others = [ep for ep in installed_entry_points() if ep.name != "payments"]
    return [FakeEntryPoint.of("payments", payments, dist="tasker-payments", version="1.1.0"), *others]


# (a) -------------------------------------------------------------------------------------------
def test_contracts_diff_reports_the_new_required_field_and_exits_1(tmp_path: Path) -> None:
    new = release_2_2_0(tmp_path)
    result = invoke(["contracts", "diff", str(CURRENT), str(new)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'BREAKING (callers): payments.process_refund@2.2.0 input: field "reason_code" is now required '
        "(at $.reason_code)",
        "1 breaking for callers, 0 breaking for stored tasks, 0 cannot decide, 0 compatible"]
    doc = invoke_json(["contracts", "diff", str(CURRENT), str(new)], exit_code=1)
    assert doc["ok"] is False
    assert [(c["kind"], c["subject"], c["part"], c["path"]) for c in doc["changes"]] == [
        ("breaking_callers", "payments.process_refund@2.2.0", "input", "$.reason_code")]


def test_contracts_diff_of_two_plugin_releases(released: Path) -> None:
    doc = invoke_json(["contracts", "diff", str(PAYMENTS_TEMPLATES), str(released)], exit_code=1)
    assert [c["description"] for c in doc["changes"]] == [
        'BREAKING (callers): payments.process_refund@2.2.0 input: field "reason_code" is now required '
        "(at $.reason_code)"]
    assert invoke_json(["contracts", "diff", str(PAYMENTS_TEMPLATES), str(PAYMENTS_TEMPLATES)])["changes"] == []


# (b) -------------------------------------------------------------------------------------------
def test_customer_success_check_fails_against_the_installed_release(released: Path) -> None:
    doc = invoke_json(["check", str(CS_PROJECT)], installed_with(released), exit_code=1)
    assert {"kind": "calls", "message": BROKEN_CS} in doc["problems"]
    assert all(p["kind"] == "calls" for p in doc["problems"]), doc["problems"]  # nothing else is wrong
    result = invoke(["check", str(CS_PROJECT)], installed_with(released))
    assert result.exit_code == 1 and f"✗ [calls] {BROKEN_CS}" in result.stdout


def test_customer_success_check_passes_against_the_current_payments() -> None:
    doc = invoke_json(["check", str(CS_PROJECT)])
    assert doc["ok"] is True, doc["problems"]


# (c) -------------------------------------------------------------------------------------------
def test_a_strict_host_refuses_to_start_naming_every_broken_call(released: Path) -> None:
    with pytest.raises(PluginLoadFailures) as caught:
        build_host(HostSettings(database_url="memory", strict_plugins=True), entry_points=installed_with(released))
    message = str(caught.value)
    assert f"failed at contract: {BROKEN_CS}" in message
    assert f"failed at contract: {BROKEN_INVENTORY}" in message
    assert f"failed at contract: {BROKEN_CS_ALL[1]}" in message
    assert [f.stage for f in caught.value.failures] == ["contract"] * 3


def test_a_lenient_host_starts_and_reports_the_broken_calls(released: Path) -> None:
    host = build_host(HostSettings(database_url="memory"), entry_points=installed_with(released))
    assert sorted(f.error for f in host.catalog.failures) == [*BROKEN_CS_ALL, BROKEN_INVENTORY]
    assert [(f.distribution, f.stage) for f in host.catalog.failures] == [
        ("tasker-customer-success", "contract"), ("tasker-customer-success", "contract"),
        ("tasker-inventory", "contract")]
    doc = invoke_json(["plugins"], installed_with(released), exit_code=1)
    assert sorted(f["error"] for f in doc["failures"]) == [*BROKEN_CS_ALL, BROKEN_INVENTORY]


def test_the_current_plugins_have_no_broken_calls() -> None:
    host = build_host(HostSettings(database_url="memory", strict_plugins=True))
    assert host.catalog.contracts == ()


def test_the_payments_check_names_the_callers_its_release_breaks(released: Path) -> None:
    """The callee's CI gate sees it too: the other teams' declared calls into payments."""
    from tasker_host.testing.project_check import PluginProject, run_gate

    release, *others = installed_with(released)
    report = run_gate(PluginProject("tasker-payments", "1.1.0", (release,)), [release, *others])
    calls = sorted(p.message for p in report.problems if p.kind.value == "calls")
    assert calls == [*BROKEN_CS_ALL, BROKEN_INVENTORY]


def test_validate_checks_the_declared_calls_of_template_files(released: Path) -> None:
    templates = CS_PROJECT / "src/tasker_customer_success/templates"
    doc = invoke_json(["validate", str(templates)], installed_with(released), exit_code=1)
    assert doc["problems"] == BROKEN_CS_ALL
    assert invoke_json(["validate", str(templates)])["problems"] == []


@pytest.mark.anyio
async def test_health_status_shows_the_broken_calls_to_an_admin(released: Path) -> None:
    import httpx

    from tasker_host.api import create_app
    from tasker_host.tokens import issue_token

    host = build_host(HostSettings(database_url="memory"), entry_points=installed_with(released))
    token = issue_token(host.tokens, "ops", admin=True, now=0.0).token
    transport = httpx.ASGITransport(app=create_app(host, prefix="/tasker", run_worker=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        doc = (await http.get("/tasker/health/status", headers={"Authorization": f"Bearer {token}"})).json()
    assert doc["plugins"]["ok"] is False
    assert sorted(f["error"] for f in doc["plugins"]["failures"] if f["stage"] == "contract") == [
        *BROKEN_CS_ALL, BROKEN_INVENTORY]
    assert any(BROKEN_CS in w for w in doc["warnings"])
