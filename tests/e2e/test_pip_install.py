"""The host and the three team plugins as real, pip-installed distributions (no editable installs).

A fresh virtual environment gets the wheels of tasker-host and of tasker-payments,
tasker-customer-success and tasker-inventory; every check runs the installed ``tasker-host``
console script as its own process: discovery through the ``tasker_host.plugins`` entry points,
the catalogue, version resolution, a refund run on SQLite, and the refusal to start (then the
quarantine) when a throwaway ``tasker-rogue`` distribution claims the payments namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXPECTED_PLUGINS = {  # distribution: (version, entry point, namespace, templates)
    "tasker-payments": ("1.4.0", "payments = tasker_payments.plugin", "payments", 3),
    "tasker-customer-success": ("0.7.2", "customer_success = tasker_customer_success.plugin", "customer_success", 3),
    "tasker-inventory": ("0.3.1", "inventory = tasker_inventory.plugin", "inventory", 2),
}
REFUND_213_STEPS = {  # step: depends on
    "validate_payment_eligibility": [],
    "process_gateway_refund": ["validate_payment_eligibility"],
    "update_payment_records": ["process_gateway_refund"],
    "notify_customer": ["update_payment_records"],
}
REFUND_CONTEXT = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                  "partial_refund": False}


@pytest.mark.e2e
def test_distributions_are_installed_from_wheels_not_editable(installed):
    """The venv holds real copies: every distribution is installed from a wheel archive into the
    venv's site-packages, and the packages import from there (not from the repository)."""
    for name, version in {"tasker-host": "0.1.0", **{d: v[0] for d, v in EXPECTED_PLUGINS.items()}}.items():
        dist = installed.distribution(name)
        assert dist["version"] == version, dist
        assert Path(dist["location"]).is_relative_to(installed.path), dist
        direct = dist["direct_url"] or {}
        assert "archive_info" in direct and direct["url"].endswith(".whl"), dist
        assert not direct.get("dir_info", {}).get("editable"), dist
    files = installed.py(
        "import json, tasker_host, tasker_payments, tasker_customer_success, tasker_inventory as i\n"
        "print(json.dumps([m.__file__ for m in (tasker_host, tasker_payments, tasker_customer_success, i)]))")
    for file in files:
        assert Path(file).is_relative_to(installed.path), files


@pytest.mark.e2e
def test_plugins_lists_the_three_team_distributions(installed):
    doc = installed.cli_json("plugins")
    found = {d["distribution"]: d for d in doc["distributions"]}
    assert set(found) == set(EXPECTED_PLUGINS), doc
    for name, (version, entry_point, namespace, templates) in EXPECTED_PLUGINS.items():
        d = found[name]
        assert (d["version"], d["entry_points"], d["namespaces"], d["templates"]) == \
            (version, [entry_point], [namespace], templates), d
        assert d["handlers"] > 0, d
    assert doc["failures"] == [] and doc["conflicts"] == [] and doc["quarantined"] == [], doc
    assert doc["ok"] is True and doc["on_conflict"] == "refuse", doc


@pytest.mark.e2e
def test_handlers_shows_both_refund_versions_with_their_dags(installed):
    doc = installed.cli_json("handlers")
    namespaces = {ns["namespace"]: ns for ns in doc["namespaces"]}
    assert set(namespaces) == {"payments", "customer_success", "inventory"}, doc
    payments = namespaces["payments"]
    assert payments["provider"]["distribution"] == "tasker-payments", payments["provider"]
    assert payments["provider"]["distribution_version"] == "1.4.0", payments["provider"]

    refunds = {t["version"]: t for t in payments["handlers"] if t["id"] == "process_refund"}
    assert sorted(refunds) == ["2.0.0", "2.1.3"], sorted(refunds)
    current, previous = refunds["2.1.3"], refunds["2.0.0"]
    assert current["full_name"] == "payments.process_refund@2.1.3"
    assert {s["name"]: s["depends_on"] for s in current["steps"]} == REFUND_213_STEPS, current["steps"]
    assert current["step_names"] == list(REFUND_213_STEPS), current
    assert {s["name"]: s["depends_on"] for s in previous["steps"]} == \
        {k: v for k, v in REFUND_213_STEPS.items() if k != "notify_customer"}, previous["steps"]
    assert current["available_versions"] == ["2.0.0", "2.1.3"], current
    for t in (current, previous):
        assert t["provider"]["distribution"] == "tasker-payments", t["provider"]
        assert t["provider"]["distribution_version"] == "1.4.0", t["provider"]
        # relative to the distribution, not where this machine installed it
        assert t["provider"]["file"] == f"tasker_payments/templates/process_refund-{t['version']}.yaml", t["provider"]


@pytest.mark.e2e
def test_resolve_picks_the_newest_compatible_refund(installed):
    proc = installed.cli("resolve", "payments.process_refund@~=2.1")
    first_line = proc.stdout.splitlines()[0] if proc.stdout else ""
    assert first_line == "payments.process_refund@2.1.3", proc.stdout
    assert "provided by tasker-payments 1.4.0" in proc.stdout, proc.stdout


@pytest.mark.e2e
def test_the_seed_refund_runs_to_completion_on_sqlite(installed, tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    doc = installed.cli_json("--database-url", url, "run", "payments.process_refund@2.1.3",
                             "--context", json.dumps(REFUND_CONTEXT))
    assert (doc["full_name"], doc["status"]) == ("payments.process_refund@2.1.3", "complete"), doc
    assert [s["name"] for s in doc["steps"]] == list(REFUND_213_STEPS), doc["steps"]
    assert all(s["state"] == "complete" for s in doc["steps"]), doc["steps"]
    assert doc["provider"]["distribution"] == "tasker-payments", doc["provider"]
    refund = next(s for s in doc["steps"] if s["name"] == "process_gateway_refund")
    assert refund["results"]["refund_amount"] == 4999, refund

    # the task is durable: a new host process reads it back from the same database file
    listed = installed.cli_json("--database-url", url, "tasks", "list")
    assert [(t["id"], t["status"]) for t in listed] == [(doc["id"], "complete")], listed


@pytest.mark.e2e
def test_the_host_wheel_declares_its_pytest_plugin_and_the_demo_faults_run_from_it(installed, tmp_path):
    """pytest finds the fixtures of any venv with tasker-host (pytest is not installed here: the
    entry point is only read by pytest); the demo plugins' simulated services come from the
    wheel's test kit, which needs no pytest."""
    found = installed.py(
        "import json, importlib.metadata as m\n"
        "eps = [e for e in m.entry_points(group='pytest11') if e.name == 'tasker_host']\n"
        "print(json.dumps([(e.value, e.dist.name) for e in eps]))")
    assert found == [["tasker_host.testing.pytest_plugin", "tasker-host"]]
    context = {**REFUND_CONTEXT, "simulate": {"process_gateway_refund": ["declined"]}}
    doc = installed.cli_json("--database-url", f"sqlite:///{tmp_path / 't.db'}", "run",
                             "payments.process_refund@2.1.3", "--context", json.dumps(context), expect=None)
    refund = next(s for s in doc["steps"] if s["name"] == "process_gateway_refund")
    assert (doc["status"], refund["attempts"], refund["last_error"]["kind"]) == ("error", 1, "permanent"), doc


ROGUE_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "tasker-rogue"
version = "0.0.1"
dependencies = ["tasker-host>=0.1,<0.2"]

[project.entry-points."tasker_host.plugins"]
rogue = "tasker_rogue.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
tasker_rogue = ["templates/*.yaml"]
"""

ROGUE_PLUGIN = '''\
from importlib.resources import files

from tasker_host import Namespace, StepHandler, hookimpl


class RefundEverything(StepHandler):
    def process(self, ctx):
        return {"refunded": "everything"}


@hookimpl
def tasker_namespaces():
    return [Namespace("payments", description="Not really the payments team", owner="Rogue team")]


@hookimpl
def tasker_templates():
    return [files(__package__) / "templates"]


@hookimpl
def tasker_step_handlers():
    return {"Rogue::RefundEverything": RefundEverything}
'''

ROGUE_TEMPLATE = """\
name: refund_everything
namespace_name: payments
version: "0.0.1"
description: Refund every payment there is
step_templates:
  - name: refund_everything
    handler_class: "Rogue::RefundEverything"
"""


def write_rogue_project(root: Path) -> Path:
    """A throwaway plugin distribution whose plugin claims the payments namespace."""
    project = root / "tasker-rogue"
    package = project / "src" / "tasker_rogue"
    (package / "templates").mkdir(parents=True)
    (project / "pyproject.toml").write_text(ROGUE_PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(ROGUE_PLUGIN)
    (package / "templates" / "refund_everything.yaml").write_text(ROGUE_TEMPLATE)
    return project


@pytest.mark.e2e
def test_a_second_owner_of_payments_stops_the_host_until_quarantined(installed, build_wheels, tmp_path):
    rogue_wheel = build_wheels([write_rogue_project(tmp_path / "src")], tmp_path / "rogue")["tasker-rogue"]
    installed.pip("install", "--quiet", rogue_wheel)
    try:
        assert installed.distribution("tasker-rogue")["version"] == "0.0.1"
        check_refusal(installed)
        check_quarantine(installed)
    finally:
        installed.pip("uninstall", "--yes", "tasker-rogue")

    # the session's venv is as it was: three plugins, nothing in conflict
    doc = installed.cli_json("plugins")
    assert sorted(d["distribution"] for d in doc["distributions"]) == sorted(EXPECTED_PLUGINS), doc
    assert doc["ok"] is True and doc["conflicts"] == [] and doc["quarantined"] == [], doc


def check_refusal(venv):
    """Every command that starts the host exits non-zero, naming both distributions."""
    commands = [("plugins",), ("handlers",), ("resolve", "payments.process_refund@~=2.1"),
                ("--database-url", f"sqlite:///{venv.sandbox.home / 'refused.db'}", "worker", "--until-idle")]
    for args in commands:
        proc = venv.cli(*args, expect=None)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"the host started despite the conflict{venv.describe(proc)}"
        for provider in ("tasker-payments 1.4.0", "tasker-rogue 0.0.1"):
            assert provider in output, f"{provider!r} not named{venv.describe(proc)}"
        assert "payments" in output, venv.describe(proc)
    assert not (venv.sandbox.home / "refused.db").exists(), "a refusing host must not open the database"

    doc = venv.cli_json("plugins", expect=1)
    assert doc["ok"] is False and doc["on_conflict"] == "refuse", doc
    (conflict,) = doc["conflicts"]
    assert (conflict["kind"], conflict["subject"]) == ("namespace_ownership", "namespace payments"), conflict
    assert {(p["distribution"], p["distribution_version"], p["entry_point"]) for p in conflict["providers"]} == {
        ("tasker-payments", "1.4.0", "payments = tasker_payments.plugin"),
        ("tasker-rogue", "0.0.1", "rogue = tasker_rogue.plugin"),
    }, conflict

    doc = venv.cli_json("handlers", expect=1)
    assert doc["ok"] is False and doc["error"] == "ConflictError", doc
    assert {p["distribution"] for c in doc["conflicts"] for p in c["providers"]} == \
        {"tasker-payments", "tasker-rogue"}, doc


def check_quarantine(venv):
    """With --on-conflict quarantine (or TASKER_ON_CONFLICT) the host starts without payments."""
    doc = venv.cli_json("--on-conflict", "quarantine", "plugins")
    assert doc["ok"] is True and doc["on_conflict"] == "quarantine", doc
    assert [c["subject"] for c in doc["conflicts"]] == ["namespace payments"], doc  # still visible
    namespaces = {(q["provider"]["distribution"], q["provider"]["distribution_version"])
                  for q in doc["quarantined"] if (q["kind"], q["subject"]) == ("namespace", "payments")}
    assert namespaces == {("tasker-payments", "1.4.0"), ("tasker-rogue", "0.0.1")}, doc["quarantined"]
    quarantined_templates = {q["subject"] for q in doc["quarantined"] if q["kind"] == "template"}
    assert {"payments.process_refund@2.1.3", "payments.refund_everything@0.0.1"} <= quarantined_templates, \
        doc["quarantined"]
    assert {d["distribution"] for d in doc["distributions"]} == {*EXPECTED_PLUGINS, "tasker-rogue"}, doc

    text = venv.cli("--on-conflict", "quarantine", "plugins")
    assert "Quarantined" in text.stdout and "tasker-rogue 0.0.1" in text.stdout, venv.describe(text)

    # everything else is served; the contested namespace is not, from either provider
    served = venv.cli_json("handlers", env={"TASKER_ON_CONFLICT": "quarantine"})
    assert sorted(ns["namespace"] for ns in served["namespaces"]) == ["customer_success", "inventory"], served
    missing = venv.cli_json("--on-conflict", "quarantine", "resolve", "payments.process_refund", expect=1)
    assert missing["error"] == "QuarantinedNamespaceError", missing
    assert [p.split(" [")[0] for p in missing["providers"]] == ["tasker-payments 1.4.0", "tasker-rogue 0.0.1"], missing
