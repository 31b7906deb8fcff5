"""``tasker-host check``: the CI gate of a plugin project, on a good project and on broken ones
(a broken template, a handler missing, a namespace an installed plugin owns, a stale install),
from a directory or an installed distribution, with its exit codes (0 ok, 1 problems, 2 nothing
to check)."""

from __future__ import annotations

import sys

import pytest

from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc
from tasker_host.testing.entry_point_dir import write_plugin_dist
from tests.kit_support import edit, invoke, invoke_json, scaffold

TEMPLATE = "src/tasker_shipping/templates/shipping-1.0.0.yaml"
PLUGIN = "src/tasker_shipping/plugin.py"


def _problems(project, entry_points=None):
    doc = invoke_json(["check", str(project)], entry_points, exit_code=1)
    assert doc["ok"] is False
    return [(p["kind"], p["message"]) for p in doc["problems"]]


def test_a_good_project_passes_against_the_installed_plugins(tmp_path):
    project = scaffold(tmp_path)
    result = invoke(["check", str(project)])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[0] == f"tasker-shipping 0.1.0 ({project})"
    assert "templates    shipping.shipping@1.0.0" in result.stdout
    assert "checked against 3 other installed plugin distribution(s)" in result.stdout
    assert "not installed: checked from source" in result.stdout
    assert result.stdout.rstrip().endswith("ok: no problems")


def test_the_current_directory_is_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(scaffold(tmp_path))
    assert invoke_json(["check"])["distribution"] == "tasker-shipping"


def test_the_source_is_forgotten_after_the_check(tmp_path):
    project = scaffold(tmp_path)
    invoke_json(["check", str(project)])
    assert "tasker_shipping" not in sys.modules
    assert str(project / "src") not in sys.path


def test_a_broken_template_is_reported_with_file_and_line(tmp_path):
    project = scaffold(tmp_path)
    edit(project / TEMPLATE, "depends_on_step: validate_request", "depends_on_step: validate_requets")
    [(kind, message)] = _problems(project)
    assert kind == "contract"
    assert "shipping-1.0.0.yaml:" in message and "validate_requets" in message


def test_a_missing_handler_is_reported(tmp_path):
    project = scaffold(tmp_path)
    edit(project / PLUGIN, '"Shipping::RecordResult": RecordResultHandler,', "")
    [(kind, message)] = _problems(project)
    assert kind == "contract"
    assert message.startswith("the host refuses it: tasker-shipping 0.1.0 [entry point shipping = "
                              "tasker_shipping.plugin] failed at template: ")
    assert message.endswith("shipping-1.0.0.yaml:28 [step_templates[1].handler_class]: handler "
                            "'Shipping::RecordResult' of step 'record_result' is not provided in "
                            "namespace 'shipping'")


def test_a_plugin_that_does_not_import_is_reported(tmp_path):
    project = scaffold(tmp_path)
    edit(project / PLUGIN, "from tasker_shipping.handlers import", "from tasker_shipping.handler import")
    [(kind, message)] = _problems(project)
    assert kind == "load"
    assert "failed at import: ModuleNotFoundError: No module named 'tasker_shipping.handler'" in message


def test_a_namespace_collision_with_installed_payments_names_both_distributions(tmp_path):
    project = scaffold(tmp_path, "shipping", "payments")
    problems = _problems(project)
    [(kind, message)] = [p for p in problems if p[0] == "collision"]
    assert message.startswith("namespace_ownership: namespace payments claimed by ")
    assert "tasker-payments 1.4.0" in message and "tasker-shipping 0.1.0" in message
    assert problems == [(kind, message)], "alone, the project meets the contract"


def test_a_collision_with_a_plugin_discovery_finds(tmp_path):
    other = make_plugin(["shipping"], [template_doc("shipping", "shipping", "1.0.0")], {"Noop": NoopHandler})
    installed = [FakeEntryPoint.of("shipping", other, dist="tasker-logistics", version="2.0.0")]
    problems = _problems(scaffold(tmp_path), installed)
    assert [k for k, _ in problems] == ["collision"]
    assert "tasker-logistics 2.0.0" in problems[0][1]


def test_every_problem_is_listed_at_once(tmp_path):
    project = scaffold(tmp_path, "shipping", "payments")
    second = (project / TEMPLATE).read_text().replace('version: "1.0.0"', 'version: "1.1.0"')
    (project / TEMPLATE).with_name("shipping-1.1.0.yaml").write_text(
        second.replace("Payments::RecordResult", "Payments::RecordResults"))
    edit(project / TEMPLATE, 'version: "1.0.0"', "version: 1.0")
    result = invoke(["check", str(project)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ✗ ")]
    assert "3 problem(s):" in result.stdout, result.stdout
    assert "shipping-1.0.0.yaml:5 [version]: version must be a string" in lines[0]
    assert "shipping-1.1.0.yaml:" in lines[1] and "'Payments::RecordResults' of step 'record_result' " \
        "is not provided in namespace 'payments'" in lines[1]
    assert lines[2].startswith("  ✗ [collision] namespace_ownership: namespace payments")


def test_a_project_without_an_entry_point_is_a_problem(tmp_path):
    project = scaffold(tmp_path)
    edit(project / "pyproject.toml",
         '[project.entry-points."tasker_host.plugins"]\nshipping = "tasker_shipping.plugin"', "")
    assert _problems(project) == [("project", "tasker-shipping declares no entry point in the group "
                                              "'tasker_host.plugins': the host will never find it")]


def test_an_unreadable_pyproject_is_a_problem(tmp_path):
    project = scaffold(tmp_path)
    edit(project / "pyproject.toml", "[project]", "[project")
    [(kind, message)] = _problems(project)
    assert kind == "project" and message.startswith("pyproject.toml cannot be read")


def test_a_stale_installed_copy_is_a_problem(tmp_path, monkeypatch):
    project = scaffold(tmp_path)
    site = write_plugin_dist(tmp_path / "site", "tasker-shipping", "0.0.9", "shipping", "tasker_shipping.old")
    monkeypatch.syspath_prepend(str(site))
    [(kind, message)] = _problems(project)
    assert kind == "project"
    assert message.startswith("the installed tasker-shipping 0.0.9 declares the entry points "
                              "['shipping = tasker_shipping.old'] but pyproject.toml declares "
                              "['shipping = tasker_shipping.plugin']: it is stale")


def test_an_installed_distribution_is_checked_by_name():
    doc = invoke_json(["check", "tasker-payments"])
    assert (doc["ok"], doc["path"], doc["namespaces"]) == (True, None, ["payments"])
    assert "payments.process_refund@2.1.3" in doc["templates"]
    assert doc["entry_points"] == ["payments = tasker_payments.plugin"]


def test_an_installed_distribution_that_is_no_plugin_is_a_problem():
    doc = invoke_json(["check", "pluggy"], exit_code=1)
    assert doc["problems"][0]["message"].startswith("pluggy declares no entry point")


@pytest.mark.parametrize("target,expected", [("no-such-thing", "no such directory or installed distribution"),
                                             (".", "has no pyproject.toml")])
def test_nothing_to_check_exits_2(tmp_path, monkeypatch, target, expected):
    monkeypatch.chdir(tmp_path)
    result = invoke(["check", target])
    assert result.exit_code == 2
    assert expected in result.stderr
    doc = invoke_json(["check", target], exit_code=2)
    assert doc["ok"] is False and expected in doc["message"]


def test_help_documents_the_exit_codes():
    result = invoke(["check", "--help"])
    assert result.exit_code == 0
    for line in ("0  no problems", "1  problems found", "2  nothing to check"):
        assert line in result.stdout
