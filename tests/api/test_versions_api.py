"""Version lifecycle through the REST API and the CLI (local and remote), on SQLite and
PostgreSQL: deprecation warnings on the task document, 410 ``version_sunset`` (and replays that
still answer), ``GET /versions...`` with exact drain status and access rules, ``versions`` and
``drain-check``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from tasker_host import PermanentError, StepHandler
from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.engine.clock import FakeClock, RealClock
from tasker_host.engine.retry import RetryPolicy
from tasker_host.engine.service import Parent
from tasker_host.host import Host, build_host
from tasker_host.settings import HostSettings
from tasker_host.store.sql.engine import upgrade
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc
from tests.api.conftest import Live, live_server

DAY = 86_400.0
START = 1_700_000_000.0  # 2023-11-14 (UTC)
SUNSET = "2023-11-20"


class Boom(StepHandler):
    async def process(self, ctx: Any) -> Any:
        raise PermanentError("card declined")


def entry_points() -> list[FakeEntryPoint]:
    one = [{"name": "only_step", "handler_class": "Noop"}]
    payments = [
        template_doc("payments", "refund", "1.0.0", one, deprecated="double refunds", replaced_by="~=2.0",
                     sunset=SUNSET),
        template_doc("payments", "refund", "1.5.0", one, deprecated="use 2.x", replaced_by="~=2.0"),
        template_doc("payments", "refund", "2.0.0", one),
        template_doc("payments", "charge", "1.0.0", [{"name": "charge", "handler_class": "Boom"}]),
    ]
    cs = [template_doc("customer_success", "escalate", "1.0.0", one)]
    return [
        FakeEntryPoint.of("payments", make_plugin(["payments"], payments, {"Noop": NoopHandler, "Boom": Boom}),
                          dist="tasker-payments"),
        FakeEntryPoint.of("customer_success", make_plugin(["customer_success"], cs, {"Noop": NoopHandler}),
                          dist="tasker-customer-success"),
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 't.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


def host_on(url: str, clock: Any) -> Host:
    return build_host(HostSettings(database_url=url), entry_points=entry_points(), clock=clock,
                      policy=RetryPolicy(base_seconds=0.01, jitter=0.0))


@pytest.fixture
def served(database: str) -> Iterator[Live]:
    with live_server(host_on(database, FakeClock(START)), run_worker=False) as live:
        yield live


def refund(version: str | None = None) -> dict[str, Any]:
    return {"namespace": "payments", "name": "refund", "version": version, "context": {}}


def test_a_range_resolving_to_a_deprecated_version_warns_on_the_task(served: Live) -> None:
    created = served.create(refund("~=1.0"), "payments")
    assert created.status_code == 201, created.text
    doc = created.json()
    assert (doc["version"], doc["caller_namespace"]) == ("1.5.0", None)
    assert doc["warnings"] == [{"code": "deprecated_version", "replaced_by": "~=2.0", "sunset": None,
                                "replacement": "payments.refund@2.0.0",
                                "message": "payments.refund@1.5.0 is deprecated: use 2.x; use payments.refund@2.0.0"}]
    shown = served.client.get(f"/tasks/{doc['id']}", headers=served.auth("payments")).json()
    assert shown["warnings"] == doc["warnings"]
    newest = served.create(refund(), "payments").json()
    assert (newest["version"], newest["warnings"]) == ("2.0.0", [])  # omitted: never a deprecated one
    series = 'tasker_deprecated_version_tasks_total{namespace="direct",target="payments.refund@1.5.0"} 1.0'
    assert series in served.client.get("/metrics", headers=served.auth("admin")).text
    assert "tasker_deprecated_version_tasks_total{" not in served.client.get(
        "/metrics", headers=served.auth("payments")).text  # "direct" is no namespace a team token views


def test_a_sunset_version_is_410_naming_the_replacement_and_a_replay_still_answers(served: Live) -> None:
    first = served.create(refund("1.0.0"), "payments", **{"Idempotency-Key": "order-7"})
    assert first.status_code == 201 and first.json()["warnings"][0]["sunset"] == SUNSET
    served.host.clock.advance(7 * DAY)  # type: ignore[attr-defined]
    refused = served.create(refund("1.0.0"), "payments")
    assert refused.status_code == 410
    body = refused.json()
    assert body["error"] == "version_sunset" and body["available"] == ["2.0.0"]
    assert body["sunset"] == {"version": "payments.refund@1.0.0", "sunset": SUNSET, "replaced_by": "~=2.0",
                              "replacement": "payments.refund@2.0.0"}
    assert "use payments.refund@2.0.0" in body["message"]
    replay = served.create(refund("1.0.0"), "payments", **{"Idempotency-Key": "order-7"})
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert served.create(refund("~=1.0"), "payments").json()["version"] == "1.5.0"  # not the sunset one
    rows = served.rows()
    assert len(rows) == 2  # the refused request wrote nothing


def _seed(live: Live) -> dict[str, str]:
    """charge@1.0.0 in error; escalate (customer_success) with a live child refund@1.5.0; two direct
    refund@1.5.0 tasks, one of them two weeks old; refund@2.0.0 complete."""
    host, service = live.host, live.host.service
    failed = service.create_task("payments", "charge").task
    done = service.create_task("payments", "refund", "2.0.0").task
    anyio.run(host.engine.run_until_idle)
    service.create_task("payments", "refund", "1.5.0")
    host.clock.advance(14 * DAY)  # type: ignore[attr-defined]
    parent = service.create_task("customer_success", "escalate").task
    child = service.create_task("payments", "refund", "~=1.0", parent=Parent(
        parent.id, "only_step", "k1", parent.correlation_id, parent.namespace)).task
    service.create_task("payments", "refund", "1.5.0")
    return {"failed": failed.id, "done": done.id, "parent": parent.id, "child": child.id}


def test_versions_report_exact_drain_status_per_version(served: Live) -> None:
    _seed(served)
    answer = served.client.get("/versions/payments/refund", headers=served.auth("admin"))
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["days"] == 30
    rows = {r["version"]: r for r in doc["versions"]}
    assert list(rows) == ["1.0.0", "1.5.0", "2.0.0"]
    assert rows["1.0.0"]["sunset_reached"] is True and rows["1.0.0"]["replacement"] == "payments.refund@2.0.0"
    assert rows["1.5.0"]["tasks"] == {"pending": 3, "in_progress": 0, "waiting_on_children": 0, "error": 0,
                                      "complete": 0, "cancelled": 0, "resolved_manually": 0}
    assert rows["1.5.0"]["started_by"] == {"customer_success": 1, "direct": 2}
    assert rows["1.5.0"]["drained"] is False and rows["2.0.0"]["drained"] is True
    assert rows["2.0.0"]["tasks"]["complete"] == 1 and rows["2.0.0"]["last_started_at"] == "2023-11-14T22:13:20.000Z"
    week = served.client.get("/versions/payments/refund?days=7", headers=served.auth("admin")).json()
    assert {r["version"]: r["started_by"] for r in week["versions"]}["1.5.0"] == {"customer_success": 1, "direct": 1}
    cs = served.client.get("/versions/customer_success", headers=served.auth("cs")).json()["versions"]
    assert [(r["full_name"], r["tasks"]["waiting_on_children"]) for r in cs] == [
        ("customer_success.escalate@1.0.0", 1)]
    charge = served.client.get("/versions/payments/charge", headers=served.auth("payments")).json()["versions"]
    assert (charge[0]["tasks"]["error"], charge[0]["drained"]) == (1, False)  # failed, awaiting action


def test_versions_access_and_bad_queries(served: Live) -> None:
    _seed(served)
    get = served.client.get
    mine = get("/versions/payments/refund", headers=served.auth("payments")).json()["versions"]
    assert {r["version"]: r["started_by"] for r in mine}["1.5.0"] == {"direct": 2, "other namespaces": 1}
    listed = get("/versions", headers=served.auth("cs")).json()["versions"]
    assert {r["namespace"] for r in listed} == {"customer_success"}
    assert {r["namespace"] for r in get("/versions", headers=served.auth("admin")).json()["versions"]} == {
        "customer_success", "payments"}
    hidden = get("/versions/customer_success", headers=served.auth("payments"))
    assert (hidden.status_code, hidden.json()["error"]) == (404, "unknown_namespace")
    assert get("/versions/nowhere", headers=served.auth("admin")).json()["error"] == "unknown_namespace"
    missing = get("/versions/payments/nope", headers=served.auth("admin"))
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_template")
    assert missing.json()["available"] == ["charge", "refund"]
    for query in ("days=0", "days=abc", "days=3651", "day=3"):
        bad = get(f"/versions?{query}", headers=served.auth("admin"))
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request"), query
    assert get("/versions").status_code == 401


# --- the CLI, local and remote ----------------------------------------------------------------------
def cli_in(mode: str, database: str, tmp_path: Path, live: Live | None) -> Any:
    head = (["--server", live.base, "--token", live.tokens["admin"]] if live is not None
            else ["--database-url", database])

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(build_cli(), [*head, *args], obj=CliState(entry_points=entry_points()),
                                  env={"XDG_CONFIG_HOME": str(tmp_path)})
    return invoke


@pytest.fixture(params=["local", "remote"])
def cli(request: pytest.FixtureRequest, database: str, tmp_path: Path) -> Iterator[tuple[Any, Host]]:
    host = host_on(database, RealClock())  # the sunset (2023) has passed
    if request.param == "local":
        yield cli_in("local", database, tmp_path, None), host
        host.store.close()
        return
    with live_server(host, run_worker=False) as live:
        yield cli_in("remote", database, tmp_path, live), host


def test_cli_versions_and_sunset_refusal(cli: tuple[Any, Host]) -> None:
    invoke, host = cli
    task = host.service.create_task("payments", "refund", "1.5.0").task
    shown_task = invoke("tasks", "show", task.id)
    assert shown_task.exit_code == 0, shown_task.output
    assert "warning: payments.refund@1.5.0 is deprecated: use 2.x; use payments.refund@2.0.0" in shown_task.stdout
    shown = invoke("versions", "payments.refund", "--json")
    assert shown.exit_code == 0, shown.output
    rows = {r["version"]: r for r in json.loads(shown.stdout)["versions"]}
    assert rows["1.5.0"]["tasks"]["pending"] == 1 and rows["1.5.0"]["started_by"] == {"direct": 1}
    table = invoke("versions", "payments")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == ["VERSION", "DEPRECATED", "REPLACED", "BY", "SUNSET", "PENDING",
                                                    "RUNNING", "WAITING", "ERROR", "DRAINED", "LAST", "START",
                                                    "STARTED", "BY", "(30D)"]
    line = next(li for li in table.stdout.splitlines() if li.startswith("payments.refund@1.0.0"))
    assert "double refunds" in line and "payments.refund@2.0.0" in line and "2023-11-20 (passed" in line
    line = next(li for li in table.stdout.splitlines() if li.startswith("payments.refund@1.5.0"))
    assert line.split()[4:9] == ["1", "0", "0", "0", "no"] and line.rstrip().endswith("direct (1)")
    refused = invoke("run", "payments.refund@1.0.0", "--detach")
    assert refused.exit_code == 1
    assert "reached its sunset on 2023-11-20" in refused.stderr and "payments.refund@2.0.0" in refused.stderr
    as_json = invoke("run", "payments.refund@1.0.0", "--detach", "--json")
    assert as_json.exit_code == 1
    assert (json.loads(as_json.stdout)["error"], json.loads(as_json.stdout)["available"]) == (
        "VersionSunsetError", ["2.0.0"])
    unknown = invoke("versions", "payments.nope")
    assert unknown.exit_code == 1 and "no template 'nope'" in unknown.stderr
    assert invoke("versions", "payments.", "--json").exit_code == 2


def test_drain_check_lists_the_tasks_that_still_need_a_distribution(database: str, tmp_path: Path) -> None:
    host = host_on(database, RealClock())
    invoke = cli_in("local", database, tmp_path, None)
    clear = invoke("drain-check", "tasker-payments")
    assert clear.exit_code == 0 and "`pip uninstall tasker-payments` is safe" in clear.stdout
    task = host.service.create_task("payments", "refund", "2.0.0").task
    blocked = invoke("drain-check", "tasker-payments", "--json")
    assert blocked.exit_code == 1
    doc = json.loads(blocked.stdout)
    assert doc["safe_to_uninstall"] is False
    assert [(t["id"], t["full_name"], t["status"], t["needs"]) for t in doc["tasks"]] == [
        (task.id, "payments.refund@2.0.0", "pending", ["template", "handlers Noop"])]
    text = invoke("drain-check", "tasker-payments")
    assert text.exit_code == 1 and task.id in text.stdout and "payments.refund@2.0.0" in text.stdout
    assert invoke("drain-check", "tasker-customer-success").exit_code == 0
    host.service.cancel_task(task.id)
    assert invoke("drain-check", "tasker-payments").exit_code == 0
    host.store.close()
