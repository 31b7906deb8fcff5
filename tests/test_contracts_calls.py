"""Declared calls against callee contracts (tasker_host.contracts.calls), the contract keys in
templates (loaded with file:line errors) and ``contracts diff``'s classification
(tasker_host.contracts.diff), on templates built in the test."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from packaging.version import Version

from tasker_host.contracts.calls import CalleeContract, Severity, candidates, check_call
from tasker_host.contracts.diff import ChangeKind, diff_templates
from tasker_host.models import TaskTemplate
from tasker_host.templates import TemplateLoader
from tests.kit_support import invoke, invoke_json
from tests.template_support import problems_of

LOADER = TemplateLoader()
INPUT = {"type": "object", "required": ["payment_id"], "properties": {"payment_id": {"type": "string"},
                                                                       "amount": {"type": "number"}}}
RESULT = {"type": "object", "properties": {"refund": {"type": "object", "required": ["refund_id"],
                                                      "properties": {"refund_id": {"type": "string"}}}}}


def template(namespace: str = "payments", name: str = "refund", version: str = "1.0.0", *,
             steps: list[dict[str, Any]] | None = None, **extra: Any) -> TaskTemplate:
    doc = {"name": name, "namespace_name": namespace, "version": version,
           "step_templates": steps or [{"name": "refund", "handler_class": "Refund"}], **extra}
    loaded, problems = LOADER.load_mapping(doc)
    assert loaded is not None, [p.describe() for p in problems]
    return loaded


def caller(**call: Any) -> TaskTemplate:
    return template("support", "ticket", steps=[{"name": "delegate", "handler_class": "Delegate",
                                                 "calls": [{"target": "payments.refund", **call}]}])


def findings(call_template: TaskTemplate, *callees: TaskTemplate) -> list[tuple[str, str | None, str, str]]:
    step = call_template.steps[0]
    found = check_call(call_template, step.name, step.calls[0], [CalleeContract.of(t) for t in callees])
    return [(f.severity.value, f.callee, f.part, f.message) for f in found]


SENDS = {"type": "object", "additionalProperties": False, "required": ["payment_id"],
         "properties": {"payment_id": {"type": "string"}}}


def test_a_call_that_sends_what_every_matching_version_accepts_is_fine():
    callees = [template(version=v, schema=INPUT, result_schema=RESULT) for v in ("1.0.0", "1.1.0")]
    assert findings(caller(version="~=1.0", sends=SENDS, reads=["refund.refund_id"]), *callees) == []


def test_every_version_the_range_matches_is_checked():
    old = template(version="1.0.0", schema=INPUT)
    new = template(version="1.1.0", schema={**INPUT, "required": ["payment_id", "reason"]})
    assert findings(caller(version=">=1", sends=SENDS), old, new) == [
        ("broken", "payments.refund@1.1.0", "input", 'field "reason" is now required')]
    assert findings(caller(version="1.0.0", sends=SENDS), old, new) == []


def test_reads_need_a_result_that_guarantees_them():
    callee = template(result_schema=RESULT)
    assert findings(caller(reads=["refund.refund_id"]), callee) == []
    assert findings(caller(reads=["refund.status"]), callee) == [
        ("broken", "payments.refund@1.0.0", "result", 'field "status" is read by the caller but not guaranteed')]
    assert findings(caller(reads={"type": "object", "properties": {"refund": {"properties": {
        "refund_id": {"type": "integer"}}}}}), callee) == [
        ("broken", "payments.refund@1.0.0", "result", "type string is not accepted (accepts integer)")]
    assert findings(caller(reads=["refund.refund_id"]), template()) == [
        ("warning", "payments.refund@1.0.0", "result", "cannot decide: it declares no result_schema")]


def test_a_target_that_is_missing_or_has_no_matching_version_is_broken():
    assert findings(caller(version="~=2.0", sends=SENDS), template()) == [
        ("broken", None, "", "no version satisfies '~=2.0' (available: 1.0.0)")]
    assert findings(caller(sends=SENDS)) == [("broken", None, "", "no template payments.refund is installed")]
    step = caller().steps[0]
    [finding] = check_call(caller(), step.name, step.calls[0], None)
    assert (finding.severity, finding.message) == (Severity.WARNING,
                                                   "cannot check: namespace 'payments' is not installed here")


def test_what_the_checker_cannot_decide_is_a_warning_with_its_path():
    callee = template(schema={"type": "object", "properties": {"payment_id": {"anyOf": [{"type": "string"}]}}})
    assert findings(caller(sends=SENDS), callee) == [
        ("warning", "payments.refund@1.0.0", "input", "cannot decide: anyOf in the receiving schema")]


def test_candidates_follow_the_resolution_rules():
    versions = [CalleeContract("x", Version(v), None, None) for v in ("1.0.0", "1.1.0", "1.2.0rc1", "2.0.0")]
    assert [str(c.version) for c in candidates(versions, "~=1.0")] == ["1.0.0", "1.1.0"]
    assert [str(c.version) for c in candidates(versions, None)] == ["2.0.0"]
    assert [str(c.version) for c in candidates(versions, "1.2.0rc1")] == ["1.2.0rc1"]


def test_an_omitted_version_is_checked_against_the_version_it_resolves_to():
    # Registry.resolve skips deprecated versions for an omitted version while a current one exists
    current, deprecated = (CalleeContract("x", Version("1.1.0"), None, None),
                           CalleeContract("x", Version("2.0.0"), None, None, deprecated=True))
    assert candidates([current, deprecated], None) == [current]
    assert candidates([deprecated], None) == [deprecated]
    assert candidates([current, deprecated], ">=1") == [current, deprecated]


def test_contract_keys_are_validated_with_file_line_and_key():
    text = """name: ticket
namespace_name: support
version: "1.0.0"
result_schema:
  type: object
  allOf: []
  properties:
    nope: {type: object}
step_templates:
  - name: delegate
    handler_class: Delegate
    calls:
      - target: payments
        version: "~=x"
        sends: {type: strng}
"""
    found = [(p.line, p.key, p.message) for p in problems_of(LOADER, text, "t.yaml")]
    assert (6, "result_schema.allOf", "top-level keyword 'allOf' is not supported in result_schema: each step's "
            "results are checked when the step completes; put constraints under properties.<step>") in found
    assert (8, "result_schema.properties.nope", "result_schema names no step 'nope' (steps: delegate)") in found
    assert any(line == 13 and key == "step_templates[0].calls[0].target" for line, key, _ in found)
    assert any(line == 14 and key == "step_templates[0].calls[0].version" for line, key, _ in found)
    assert any(line == 15 and key == "step_templates[0].calls[0].sends.type" for line, key, _ in found)


# --- contracts diff -------------------------------------------------------------------------------
def kinds(old: list[TaskTemplate], new: list[TaskTemplate]) -> list[tuple[str, str]]:
    return [(c.kind.value, c.describe()) for c in diff_templates(old, new)]


def test_a_release_that_accepts_more_and_guarantees_more_is_compatible():
    old = template(schema=INPUT, result_schema=RESULT)
    looser = {**INPUT, "required": []}
    richer = {"type": "object", "properties": {"refund": {"type": "object", "required": ["refund_id", "status"],
                                                          "properties": {"refund_id": {"type": "string"}}}}}
    assert kinds([old], [template(version="1.1.0", schema=looser, result_schema=richer)]) == []


def test_a_result_that_guarantees_less_breaks_callers():
    old = template(result_schema=RESULT)
    new = template(version="1.1.0", result_schema={"type": "object", "properties": {"refund": {"type": "object"}}})
    assert kinds([old], [new]) == [("breaking_callers", 'BREAKING (callers): payments.refund@1.1.0 result: '
                                    'field "refund_id" is no longer guaranteed (at $.refund.refund_id)')]
    assert kinds([old], [template(version="1.1.0")]) == [
        ("breaking_callers", "BREAKING (callers): payments.refund@1.1.0 result: result_schema removed: callers can "
                             "no longer rely on what it returns")]


def test_in_place_changes_and_removed_handlers_break_stored_tasks():
    old = template(schema=INPUT)
    changed = template(schema={**INPUT, "required": ["payment_id", "amount"]},
                       steps=[{"name": "refund", "handler_class": "RefundV2"}])
    assert kinds([old], [changed]) == [
        ("breaking_callers", 'BREAKING (callers): payments.refund@1.0.0 input: field "amount" is now required '
                             "(at $.amount)"),
        ("breaking_stored_tasks", 'BREAKING (stored tasks): payments.refund@1.0.0 input: field "amount" is now '
                                  "required: stored tasks were started without it (at $.amount)"),
        ("breaking_stored_tasks", "BREAKING (stored tasks): payments.refund@1.0.0 steps: changed in place: its steps "
                                  "differ from the released version; tasks stored on it run the old steps with the "
                                  "new handlers (publish a new version)"),
        ("breaking_stored_tasks", "BREAKING (stored tasks): payments handlers: handler 'Refund' is used by no "
                                  "template of NEW, but stored tasks of payments.refund@1.0.0 step 'refund' need it "
                                  "until they finish")]


def test_plugin_releases_pair_versions_and_report_removals_and_privacy():
    old = [template(version="1.0.0"), template(version="1.1.0"), template(name="other")]
    new = [template(version="1.1.0", visibility="private"), template(version="1.2.0"), template(name="added")]
    assert kinds(old, new) == [
        ("compatible", "compatible: payments.added@1.0.0: added"),
        ("breaking_callers", "BREAKING (callers): payments.other: removed (versions 1.0.0): calls to it no "
                             "longer resolve"),
        ("breaking_callers", "BREAKING (callers): payments.refund@1.1.0: is now private: other namespaces may no "
                             "longer invoke it"),
        ("breaking_callers", "BREAKING (callers): payments.refund@1.0.0: removed: calls pinned to it, or whose "
                             "range matches only it, no longer resolve")]
    assert ChangeKind.COMPATIBLE.value == "compatible"


def test_diff_reads_wheels_and_reports_unreadable_input(tmp_path: Path):
    text = Path("plugins/payments/src/tasker_payments/templates/process_refund-2.1.3.yaml").read_text()
    for name, body in (("old.whl", text), ("new.whl", text.replace('version: "2.1.3"', 'version: "2.1.4"'))):
        with zipfile.ZipFile(tmp_path / name, "w") as wheel:
            wheel.writestr("tasker_payments/templates/process_refund.yaml", body)
            wheel.writestr("tasker_payments-1.0.dist-info/METADATA", "Name: tasker-payments\n")
    doc = invoke_json(["contracts", "diff", str(tmp_path / "old.whl"), str(tmp_path / "new.whl")])
    assert (doc["ok"], doc["old_templates"], doc["new_templates"]) == (
        True, ["payments.process_refund@2.1.3"], ["payments.process_refund@2.1.4"])
    (tmp_path / "broken.yaml").write_text("name: x\n")
    result = invoke(["contracts", "diff", str(tmp_path / "broken.yaml"), str(tmp_path / "new.whl")])
    assert result.exit_code == 2 and "missing required key 'namespace_name'" in result.stderr
