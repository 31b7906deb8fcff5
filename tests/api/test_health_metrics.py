"""Health, status, metrics and the access log."""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tasker_host.api.access_log import ACCESS_LOGGER
from tasker_host.engine.events import EventKind
from tasker_host.host import build_host
from tasker_host.plugins import installed_entry_points
from tasker_host.registry import ConflictPolicy
from tasker_host.settings import HostSettings
from tasker_host.store.memory import MemoryStore
from tasker_host.testing import FakeEntryPoint, make_plugin

from .conftest import SEED_PAYMENTS, Live, make_host, shared_entry_point


class BrokenStore(MemoryStore):
    def next_ready_at(self) -> float | None:
        raise OSError("connection refused")


def samples(live: Live, who: str = "payments") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = live.client.get("/metrics", headers=live.auth(who))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_live_ready_and_status(live: Live) -> None:
    assert live.client.get("/health/live").json() == {"status": "ok"}
    ready = live.client.get("/health/ready", headers=live.auth("admin"))
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "failing": [], "reasons": [], "warnings": []}
    status = live.client.get("/health/status", headers=live.auth("admin")).json()
    assert (status["status"], status["ready"], status["failing"]) == ("up", True, [])
    assert status["versions"]["tasker_host"] and status["versions"]["python"]
    assert status["worker"]["enabled"] is True and status["worker"]["running"] is True
    assert status["database"]["dialect"] == "sqlite"
    assert status["counts"]["namespaces"] == 4 and status["counts"]["templates"] == 9
    assert {d["distribution"] for d in status["plugins"]["distributions"]} >= {"tasker-payments", "tasker-shared"}


def test_metrics_count_tasks_and_time_steps(live: Live) -> None:
    body = copy.deepcopy(SEED_PAYMENTS)
    body["context"]["simulate"] = {"validate_payment_eligibility": ["unavailable", "ok"]}
    task = live.create(body).json()
    assert live.waiter.wait(task["id"]) is EventKind.TASK_COMPLETED
    found = samples(live)
    ns = ("namespace", "payments")
    assert found[("tasker_tasks", (ns, ("state", "complete")))] >= 1
    tpl = (ns, ("template", "process_refund"), ("version", "2.1.3"))
    step = ("step", "validate_payment_eligibility")
    assert found[("tasker_step_retries_total", tuple(sorted((*tpl, step))))] == 1
    for outcome in ("retry", "complete"):
        labels = tuple(sorted((*tpl, ("outcome", outcome), step)))
        assert found[("tasker_step_duration_seconds_count", labels)] == 1
    assert found[("tasker_step_attempts_count", tuple(sorted((*tpl, step))))] == 1
    assert found[("tasker_step_attempts_sum", tuple(sorted((*tpl, step))))] == 2  # one retry, then complete
    for kind in ("created", "started", "completed"):
        assert found[(f"tasker_tasks_{kind}_total", tpl)] == 1
    assert ("tasker_tasks_failed_total", tpl) not in found
    # every claim whose step row still shows that attempt at the scrape: the 4 steps' last claims
    # (the retried step's first claim was overtaken by its second before the scrape)
    assert found[("tasker_step_queue_wait_seconds_count", tpl)] == 4
    assert found[("tasker_store_up", ())] == 1
    assert found[("tasker_http_requests_total", (("method", "POST"), ("status", "201")))] >= 1


INVENTORY_RETURN = {"name": "process_return", "namespace": "inventory", "version": "1.4.0",
                    "context": {"return_id": "rma_1", "order_id": "ord_1", "sku": "sku_1", "quantity": 1,
                                "refund_amount": 1999}}


def namespaces_in(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {value for _, labels in found for key, value in labels if key == "namespace"}


def test_metrics_show_a_token_only_the_namespaces_it_may_view(live: Live) -> None:
    task = live.create(copy.deepcopy(INVENTORY_RETURN)).json()  # refunds through a payments child task
    assert live.waiter.wait(task["id"]) is EventKind.TASK_COMPLETED
    everything = samples(live, "admin")
    assert {"inventory", "payments"} <= namespaces_in(everything)
    assert everything[("tasker_tasks", (("namespace", "inventory"), ("state", "complete")))] >= 1
    assert any(name == "tasker_step_duration_seconds_count" and ("step", "restock_item") in labels
               for name, labels in everything)
    payments = samples(live, "payments")
    assert namespaces_in(payments) <= {"payments", "shared"} and "payments" in namespaces_in(payments)
    assert not any("restock_item" in value for _, labels in payments for _, value in labels)
    assert payments[("tasker_store_up", ())] == 1  # series without a namespace: for every token
    assert any(name == "tasker_http_requests_total" for name, _ in payments)
    inventory = samples(live, "inventory")
    assert "inventory" in namespaces_in(inventory)
    # payments appears to inventory only as the callee of inventory's own calls (both teams see a call)
    assert {name for name, labels in inventory if ("namespace", "payments") in labels} == {
        "tasker_invocations_total"}
    call = (("caller_namespace", "inventory"), ("namespace", "payments"))
    assert inventory[("tasker_invocations_total", call)] == payments[("tasker_invocations_total", call)] == 1
    anonymous = live.client.get("/metrics")
    assert anonymous.status_code == 401 and "tasker_tasks" not in anonymous.text


def test_pending_steps_are_counted(serve: Any) -> None:
    quiet = serve(run_worker=False)
    quiet.create(copy.deepcopy(SEED_PAYMENTS))
    found = samples(quiet)
    assert found[("tasker_steps", (("namespace", "payments"), ("state", "pending")))] == 4
    assert found[("tasker_tasks", (("namespace", "payments"), ("state", "pending")))] == 1
    assert quiet.client.get("/health/status", headers=quiet.auth("admin")).json()["worker"]["enabled"] is False


def test_not_ready_when_the_database_fails(serve: Any) -> None:
    host = build_host(HostSettings(), entry_points=[shared_entry_point()], store=BrokenStore())
    broken = serve(host=host, run_worker=False)
    ready = broken.client.get("/health/ready", headers=broken.auth("admin"))
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["database error: OSError: connection refused"]
    assert ready.json()["failing"] == ["database"]
    anonymous = broken.client.get("/health/ready")
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "not_ready", "failing": ["database"]}
    assert broken.client.get("/health/status").json() == {"status": "up", "ready": False, "failing": ["database"]}
    assert broken.client.get("/health/live").status_code == 200


def test_not_ready_without_plugins(serve: Any, tmp_path: Path) -> None:
    bare = serve(host=make_host(tmp_path / "t.db", entry_points=[]), run_worker=False)
    ready = bare.client.get("/health/ready", headers=bare.auth("admin"))
    assert ready.status_code == 503 and ready.json()["reasons"] == ["no plugin namespaces are loaded"]
    assert bare.client.get("/health/ready").json() == {"status": "not_ready", "failing": ["plugins"]}


def test_quarantined_conflicts_are_warnings(serve: Any, tmp_path: Path) -> None:
    rival = FakeEntryPoint.of("rival", make_plugin(namespaces=["shared"]), dist="tasker-rival")
    host = make_host(tmp_path / "t.db", entry_points=[*installed_entry_points(), shared_entry_point(), rival],
                     on_conflict=ConflictPolicy.QUARANTINE)
    server = serve(host=host, run_worker=False)
    ready = server.client.get("/health/ready", headers=server.auth("admin"))
    assert ready.status_code == 200 and ready.json()["warnings"]
    assert all(w.startswith("quarantined: ") for w in ready.json()["warnings"])
    assert "shared" not in host.registry.namespaces
    anonymous = server.client.get("/health/ready")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready", "failing": []}


def test_not_ready_when_the_worker_crashed(serve: Any, tmp_path: Path) -> None:
    host = make_host(tmp_path / "t.db")

    async def crash(**_: Any) -> None:
        raise RuntimeError("boom")

    host.engine.run = crash  # type: ignore[method-assign]
    crashed = serve(host=host)
    ready = crashed.client.get("/health/ready", headers=crashed.auth("admin"))
    assert ready.status_code == 503 and ready.json()["reasons"] == ["worker is not running: RuntimeError: boom"]
    assert crashed.client.get("/health/ready").json() == {"status": "not_ready", "failing": ["worker"]}


def test_status_without_a_token_says_only_up_and_ready(live: Live) -> None:
    anonymous = live.client.get("/health/status")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "up", "ready": True, "failing": []}
    assert "tasker-payments" not in anonymous.text and "payments" not in anonymous.text
    assert live.client.get("/health/ready").json() == {"status": "ready", "failing": []}
    for path in ("/health/status", "/health/ready"):  # a token that is sent must be accepted
        for headers in ({"Authorization": "Bearer tsk_not-a-token"}, live.auth("revoked")):
            refused = live.client.get(path, headers=headers)
            assert refused.status_code == 401 and refused.json()["error"] == "unauthorized", path
    for team in ("payments", "payments_viewer"):  # details name every team's plugins: admins only
        for path in ("/health/status", "/health/ready"):
            coarse = live.client.get(path, headers=live.auth(team))
            assert coarse.status_code == 200 and "tasker-" not in coarse.text and "inventory" not in coarse.text
            assert set(coarse.json()) <= {"status", "ready", "failing"}, (team, path)
    detailed = live.client.get("/health/status", headers=live.auth("admin")).json()
    assert {d["distribution"] for d in detailed["plugins"]["distributions"]} >= {"tasker-payments", "tasker-shared"}


def test_plugins_ok_is_false_when_a_plugin_failed_to_load(serve: Any, tmp_path: Path) -> None:
    broken = FakeEntryPoint.failing("broken", ImportError("No module named 'tasker_broken'"), dist="tasker-broken")
    host = make_host(tmp_path / "t.db", entry_points=[shared_entry_point(), broken])
    server = serve(host=host, run_worker=False)
    status = server.client.get("/health/status", headers=server.auth("admin")).json()
    plugins = status["plugins"]
    assert plugins["ok"] is False
    [failure] = plugins["failures"]
    assert failure["distribution"] == "tasker-broken" and "No module named 'tasker_broken'" in failure["error"]
    assert status["ready"] is True  # the host serves the rest: a warning, not a readiness failure
    assert any(w.startswith("plugin failure: tasker-broken") for w in status["warnings"])
    assert plugins["conflicts"] == []  # ok is false for the failure alone


class LineCatcher(logging.Handler):
    """Collects access-log lines; a line is written just AFTER its response is sent, so tests wait
    for it (on a condition, bounded) instead of reading right away."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.lines.append(record.fields)  # type: ignore[attr-defined]
            self.cond.notify_all()

    def wait_for(self, match: Any, timeout: float = 5.0) -> dict[str, Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: any(match(line) for line in self.lines), timeout)
            return next(line for line in self.lines if match(line))


def test_one_access_log_line_per_request(live: Live) -> None:
    catcher, logger = LineCatcher(), logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(catcher)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        task = live.create(copy.deepcopy(SEED_PAYMENTS), who="payments", **{"X-Correlation-Id": "corr-42"}).json()
        live.client.get("/tasks/nope", headers=live.auth("payments"))
        created = catcher.wait_for(lambda line: line.get("task_id") == task["id"])
        missing = catcher.wait_for(lambda line: line["path"] == "/tasker/tasks/nope")
    finally:
        logger.removeHandler(catcher)
        logger.setLevel(level)
    assert created["method"] == "POST" and created["path"] == "/tasker/tasks" and created["status"] == 201
    assert created["duration_ms"] >= 0 and created["principal"] == "payments"
    assert (created["task_id"], created["namespace"], created["correlation_id"]) == (task["id"], "payments", "corr-42")
    assert missing["status"] == 404 and "task_id" not in missing
