"""Per-team release cycles, end to end.

The payments team ships tasker-payments 1.5.0: its ``process_refund@2.1.3`` template changed
(``notify_customer`` is gone) and a new ``process_refund@2.2.0`` adds a step. With 1.4.0 installed
a refund task is created but not run; then the newer wheel is ``pip install``ed over 1.4.0 and a
new host process (``tasker-host worker --until-idle``) runs the task. The in-flight task finishes
on the DAG it was created with (2.1.3 as shipped in 1.4.0, four steps), while new tasks get the
new release: 2.2.0 by default, and the changed three-step 2.1.3 when asked for by name.

The test has its own virtual environment, so the upgrade never leaks into other tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PAYMENTS_SOURCE = Path(__file__).resolve().parents[2] / "plugins" / "payments"
OLD_213 = ["validate_payment_eligibility", "process_gateway_refund", "update_payment_records", "notify_customer"]
NEW_213 = OLD_213[:3]
NEW_220 = [*OLD_213, "notify_finance"]
REFUND_CONTEXT = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                  "partial_refund": False}
NOTIFY_STEP = "  - name: notify_customer\n"
NOTIFY_FINANCE_STEP = """
  - name: notify_finance
    description: "Tell finance about the refund (new in 2.2)"
    handler_class: "Payments::StepHandlers::NotifyCustomerHandler"
    depends_on_step: update_payment_records
    default_retryable: true
    default_retry_limit: 5
    handler_config:
      timeout_seconds: 10
"""


def payments_release_150(dest: Path) -> Path:
    """``dest`` (a copy of plugins/payments) turned into release 1.5.0: a changed 2.1.3, a new 2.2.0."""
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text()
    assert text.count('version = "1.4.0"') == 1, "plugins/payments is no longer at 1.4.0: update this test"
    pyproject.write_text(text.replace('version = "1.4.0"', 'version = "1.5.0"'))

    templates = dest / "src" / "tasker_payments" / "templates"
    shipped = (templates / "process_refund-2.1.3.yaml").read_text()
    assert shipped.count(NOTIFY_STEP) == 1 and shipped.rstrip().endswith("timeout_seconds: 10"), \
        "process_refund-2.1.3.yaml changed shape (notify_customer is no longer its last step): update this test"
    (templates / "process_refund-2.1.3.yaml").write_text(shipped[:shipped.index(NOTIFY_STEP)].rstrip() + "\n")

    assert shipped.count('version: "2.1.3"') == 1
    newer = shipped.replace('version: "2.1.3"', 'version: "2.2.0"').rstrip() + "\n" + NOTIFY_FINANCE_STEP
    (templates / "process_refund-2.2.0.yaml").write_text(newer)
    return dest


@pytest.mark.e2e
def test_in_flight_task_keeps_its_dag_across_a_plugin_upgrade(make_venv, wheelhouse, build_wheels, copy_source,
                                                               tmp_path):
    venv = make_venv("release", list(wheelhouse.values()))
    db = ["--database-url", f"sqlite:///{tmp_path / 'release.db'}"]
    release = payments_release_150(copy_source(PAYMENTS_SOURCE, tmp_path / "src" / "payments-1.5.0"))
    new_wheel = build_wheels([release], tmp_path / "release")["tasker-payments"]
    assert "1.5.0" in new_wheel.name, new_wheel

    # 1.4.0 installed: create the task, don't run it
    doc = venv.cli_json(*db, "run", "payments.process_refund", "--detach", "--context", json.dumps(REFUND_CONTEXT))
    task_id = doc["id"]
    assert (doc["version"], doc["status"]) == ("2.1.3", "pending"), doc
    assert [s["name"] for s in doc["steps"]] == OLD_213, doc["steps"]
    assert all(s["state"] == "pending" and s["attempts"] == 0 for s in doc["steps"]), doc["steps"]
    assert doc["provider"]["distribution_version"] == "1.4.0", doc["provider"]

    # the team's release: pip upgrades the installed distribution in place
    venv.pip("install", "--quiet", new_wheel)
    assert venv.distribution("tasker-payments")["version"] == "1.5.0"
    plugins = venv.cli_json("plugins")
    payments = next(d for d in plugins["distributions"] if d["distribution"] == "tasker-payments")
    assert (payments["version"], payments["templates"]) == ("1.5.0", 4), plugins
    assert plugins["ok"] and not plugins["conflicts"] and not plugins["failures"], plugins

    # a restarted host (a new process on the upgraded install) runs the in-flight task
    worker = venv.cli(*db, "worker", "--until-idle")
    done = venv.cli_json(*db, "tasks", "show", task_id)
    assert (done["full_name"], done["status"]) == ("payments.process_refund@2.1.3", "complete"), \
        venv.describe(worker) + json.dumps(done, indent=2)
    assert [s["name"] for s in done["steps"]] == OLD_213, done["steps"]
    assert all(s["state"] == "complete" and s["attempts"] == 1 for s in done["steps"]), done["steps"]
    notified = next(s for s in done["steps"] if s["name"] == "notify_customer")
    assert notified["results"]["notification_sent"] is True, notified
    assert done["provider"]["distribution_version"] == "1.4.0", done["provider"]

    # new tasks get the new release: 2.2.0 by default ...
    new = venv.cli_json(*db, "run", "payments.process_refund", "--context", json.dumps(REFUND_CONTEXT))
    assert (new["full_name"], new["status"]) == ("payments.process_refund@2.2.0", "complete"), new
    assert [s["name"] for s in new["steps"]] == NEW_220, new["steps"]
    assert all(s["state"] == "complete" for s in new["steps"]), new["steps"]
    finance = next(s for s in new["steps"] if s["name"] == "notify_finance")
    assert finance["depends_on"] == ["update_payment_records"], finance
    assert new["provider"]["distribution_version"] == "1.5.0", new["provider"]

    # ... and 2.1.3, asked for by name, is the changed three-step DAG of 1.5.0
    again = venv.cli_json(*db, "run", "payments.process_refund@2.1.3", "--context", json.dumps(REFUND_CONTEXT))
    assert (again["version"], again["status"]) == ("2.1.3", "complete"), again
    assert [s["name"] for s in again["steps"]] == NEW_213, again["steps"]

    catalogue = venv.cli_json("handlers", "payments", "process_refund")
    (ns,) = catalogue["namespaces"]
    assert [t["version"] for t in ns["handlers"]] == ["2.0.0", "2.1.3", "2.2.0"], ns["handlers"]
    assert {t["provider"]["distribution_version"] for t in ns["handlers"]} == {"1.5.0"}, ns["handlers"]
    listed = venv.cli_json(*db, "tasks", "list")  # newest first
    assert [(t["id"], t["version"], t["status"]) for t in listed] == [
        (again["id"], "2.1.3", "complete"), (new["id"], "2.2.0", "complete"), (task_id, "2.1.3", "complete"),
    ], listed
