"""Contract tests of tasker-customer-success: the host's plugin contract, then this team's catalogue.

``check_plugin`` loads the plugin as a strict host does (installed entry point, real registry):
hooks, namespace, strict template loading, handler coverage; the rest is Customer Success's own.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import Version

NAMESPACE = "customer_success"
CATALOGUE = {("process_refund", "1.3.3"), ("process_refund", "1.4.0"), ("escalate_ticket", "2.2.0")}
SEED_1_3_3 = [  # (step, depends on, retry limit, timeout) of the story's customer_success YAML
    ("validate_refund_request", [], 3, 15),
    ("check_refund_policy", ["validate_refund_request"], 2, 10),
    ("get_manager_approval", ["check_refund_policy"], 1, 300),
    ("execute_refund_workflow", ["get_manager_approval"], 3, None),
    ("update_ticket_status", ["execute_refund_workflow"], 3, 15),
]
SEED_DELEGATION_CONFIG = {
    "url": "http://payments-service.example.com", "retry_delay": 2.0,
    "enable_exponential_backoff": True, "jitter_factor": 0.1,
    "target_namespace": "payments", "target_workflow": "process_refund",
}
SEED_SCHEMA_PROPERTIES = ["ticket_id", "customer_id", "refund_amount", "refund_reason",
                          "agent_notes", "requires_approval"]


def test_customer_success_ships_its_catalogue_from_tasker_customer_success_0_7_2(plugin_report):
    assert plugin_report.summary() == {
        "namespace": NAMESPACE, "owner": "Customer Success team",
        "entry_point": "customer_success = tasker_customer_success.plugin",
        "distribution": "tasker-customer-success 0.7.2", "template_items": ["templates"],
        "handlers": 10, "catalogue": sorted(CATALOGUE)}
    assert plugin_report.registry.resolve(NAMESPACE, "process_refund").version == Version("1.4.0")


def test_1_4_0_is_1_3_3_with_an_approval_that_waits_for_an_event(plugin_report):
    old, new = plugin_report.template("process_refund", "1.3.3"), plugin_report.template("process_refund", "1.4.0")
    assert [(s.name, s.depends_on, s.retry_limit) for s in old.steps] == [
        (s.name, s.depends_on, s.retry_limit) for s in new.steps]
    assert old.context_schema == new.context_schema
    approval = new.step("get_manager_approval")
    assert approval.handler_class.endswith("WaitForManagerApprovalHandler")
    assert approval.handler_config["approval_timeout_hours"] == 48
    schema = approval.handler_config["events"]["approval"]["schema"]
    assert schema["required"] == ["approved", "approver"] and list(schema["properties"]) == [
        "approved", "approver", "note"]


def test_1_3_3_is_the_story_workflow_with_a_version_range(plugin_report):
    doc = plugin_report.document("process_refund", "1.3.3")
    steps = [(s.name, list(s.depends_on), s.retry_limit, s.handler_config.get("timeout_seconds"))
             for s in plugin_report.template("process_refund", "1.3.3").steps]
    assert steps == SEED_1_3_3
    assert list(doc["schema"]["properties"]) == SEED_SCHEMA_PROPERTIES
    assert doc["schema"]["required"] == ["ticket_id", "customer_id", "refund_amount"]
    config = doc["step_templates"][3]["handler_config"]
    assert {k: v for k, v in config.items() if k != "target_version"} == SEED_DELEGATION_CONFIG
    assert config["target_version"] == "~=2.1"
    payments_versions = ["2.0.0", "2.1.3"]  # what tasker-payments 1.4.0 ships
    assert list(SpecifierSet(config["target_version"]).filter(payments_versions)) == ["2.1.3"]


def test_escalation_fans_out_and_joins(plugin_report):
    deps = {s.name: list(s.depends_on) for s in plugin_report.template("escalate_ticket", "2.2.0").steps}
    assert deps == {"assess_ticket": [], "notify_manager": ["assess_ticket"],
                    "page_on_call": ["assess_ticket"],
                    "record_escalation": ["notify_manager", "page_on_call"]}
