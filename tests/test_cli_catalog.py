"""The catalogue commands through click's runner, with fake entry points."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc


def eps(*extra):
    pay = make_plugin(["payments"], [template_doc("payments", "process_refund", v) for v in ("2.0.0", "2.1.3")],
                      {"Noop": NoopHandler})
    return [FakeEntryPoint.of("payments", pay, dist="tasker-payments", version="1.4.0"), *extra]


def rogue():
    plugin = make_plugin(["payments"], [template_doc("payments", "process_refund", "9.9.9")], {"Noop": NoopHandler})
    return FakeEntryPoint.of("rogue", plugin, dist="tasker-rogue", version="0.0.1")


def invoke(args, entry_points):
    return CliRunner().invoke(build_cli(), args, obj=CliState(entry_points=entry_points))


def test_plugins_json_lists_distributions_and_counts():
    result = invoke(["plugins", "--json"], eps())
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    [dist] = doc["distributions"]
    assert (dist["distribution"], dist["version"], dist["templates"], dist["handlers"]) == \
        ("tasker-payments", "1.4.0", 2, 1)
    assert dist["namespaces"] == ["payments"] and doc["ok"] is True


def test_plugins_refuses_on_conflict_and_names_both_distributions():
    result = invoke(["plugins"], eps(rogue()))
    assert result.exit_code == 1
    assert "namespace_ownership: namespace payments" in result.output
    assert "tasker-payments 1.4.0" in result.output and "tasker-rogue 0.0.1" in result.output
    assert "refuses to start" in result.output


def test_commands_that_start_the_host_refuse_on_conflict():
    result = invoke(["handlers", "--json"], eps(rogue()))
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["error"] == "ConflictError"
    assert {p["distribution"] for p in doc["conflicts"][0]["providers"]} == {"tasker-payments", "tasker-rogue"}


def test_quarantine_option_starts_and_lists_quarantined_entries():
    result = invoke(["--on-conflict", "quarantine", "plugins", "--json"], eps(rogue()))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is True and doc["on_conflict"] == "quarantine"
    assert {(q["subject"], q["provider"]["distribution"]) for q in doc["quarantined"]} >= {
        ("payments", "tasker-payments"), ("payments", "tasker-rogue")}


def test_handlers_lists_every_version_with_steps():
    result = invoke(["handlers", "payments", "--json"], eps())
    doc = json.loads(result.output)
    handlers = doc["namespaces"][0]["handlers"]
    assert [h["full_name"] for h in handlers] == ["payments.process_refund@2.0.0", "payments.process_refund@2.1.3"]
    assert handlers[0]["steps"][0]["name"] == "only_step" and handlers[0]["step_count"] == 1


def test_handlers_unknown_namespace_is_an_error():
    result = invoke(["handlers", "billing"], eps())
    assert result.exit_code == 1 and "unknown namespace 'billing'" in result.output


def test_resolve_prints_full_name_and_provider():
    result = invoke(["resolve", "payments.process_refund@~=2.1"], eps())
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "payments.process_refund@2.1.3"
    assert "tasker-payments 1.4.0" in result.output


def test_resolve_without_a_match_exits_1_listing_versions():
    result = invoke(["resolve", "payments.process_refund@>=3", "--json"], eps())
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["error"] == "NoMatchingVersionError" and doc["available"] == ["2.0.0", "2.1.3"]


def test_validate_paths_lists_every_problem_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: flow\nnamespace_name: payments\nversion: 1.10\nstep_templates:\n"
                   "  - name: a\n    handler_class: Noop\n    depends_on_step: nowhere\n")
    result = invoke(["validate", str(tmp_path)], eps())
    assert result.exit_code == 1
    assert f"{bad}:3 [version]" in result.output
    assert f"{bad}:7 [step_templates[0].depends_on_step]" in result.output


def test_validate_paths_checks_handlers_of_installed_namespaces(tmp_path):
    (tmp_path / "t.yaml").write_text('name: flow\nnamespace_name: payments\nversion: "1.0.0"\n'
                                     "step_templates:\n  - name: a\n    handler_class: Missing\n")
    result = invoke(["validate", str(tmp_path), "--json"], eps())
    doc = json.loads(result.output)
    assert result.exit_code == 1 and "'Missing'" in doc["problems"][0] and ":6 " in doc["problems"][0]


def test_validate_installed_ok():
    result = invoke(["validate"], eps())
    assert result.exit_code == 0 and "no problems" in result.output


def test_a_quarantined_namespace_is_reported_as_such_by_resolve_handlers_and_run(tmp_path):
    quarantine = ["--on-conflict", "quarantine"]
    for args in (["resolve", "payments.process_refund"], ["handlers", "payments"],
                 ["--database-url", f"sqlite:///{tmp_path / 't.db'}", "run", "payments.process_refund"]):
        result = invoke([*quarantine, *args, "--json"], eps(rogue()))
        assert result.exit_code == 1, (args, result.output)
        doc = json.loads(result.output)
        assert doc["error"] == "QuarantinedNamespaceError", (args, doc)
        assert "namespace 'payments' is quarantined" in doc["message"]
        assert [p.split(" [")[0] for p in doc["providers"]] == ["tasker-payments 1.4.0", "tasker-rogue 0.0.1"]
    text = invoke([*quarantine, "resolve", "payments.process_refund"], eps(rogue()))
    assert text.exit_code == 1 and "namespace 'payments' is quarantined" in text.output
    assert "unknown namespace" not in text.output
