"""Contract tests of tasker-payments: the host's plugin contract, then this team's catalogue.

``check_plugin`` loads the plugin as a strict host does (installed entry point, real registry):
hooks, namespace, strict template loading, handler coverage; the rest is specific to Payments.
"""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

NAMESPACE = "payments"
CATALOGUE = {("process_refund", "2.0.0"), ("process_refund", "2.1.3"), ("process_payment", "3.0.0")}
SEED_2_1_3 = [  # (step, depends on, retry limit, timeout) of the story's payments YAML
    ("validate_payment_eligibility", [], 3, 15),
    ("process_gateway_refund", ["validate_payment_eligibility"], 2, 30),
    ("update_payment_records", ["process_gateway_refund"], 3, 20),
    ("notify_customer", ["update_payment_records"], 5, 10),
]


def test_payments_ships_its_catalogue_from_tasker_payments_1_4_0(plugin_report):
    assert plugin_report.summary() == {
        "namespace": NAMESPACE, "owner": "Payments team",
        "entry_point": "payments = tasker_payments.plugin",
        "distribution": "tasker-payments 1.4.0", "template_items": ["templates"],
        "handlers": 8, "catalogue": sorted(CATALOGUE)}
    assert plugin_report.registry.resolve(NAMESPACE, "process_refund", "~=2.1").version == Version("2.1.3")


def test_2_1_3_is_the_story_workflow(plugin_report):
    doc = plugin_report.document("process_refund", "2.1.3")
    steps = [(s.name, list(s.depends_on), s.retry_limit, s.handler_config["timeout_seconds"])
             for s in plugin_report.template("process_refund", "2.1.3").steps]
    assert steps == SEED_2_1_3
    assert doc["schema"]["required"] == ["payment_id", "refund_amount"]
    assert doc["schema"]["properties"]["refund_reason"]["enum"] == [
        "customer_request", "fraud", "system_error", "chargeback"]


def test_2_0_0_has_no_customer_notification(plugin_report):
    doc = plugin_report.document("process_refund", "2.0.0")
    assert [s["name"] for s in doc["step_templates"]] == [s[0] for s in SEED_2_1_3[:3]]


@pytest.mark.parametrize("spec,expected", [("~=2.1", "2.1.3"), (">=2,<3", "2.1.3"),
                                           ("==2.0.0", "2.0.0"), ("<2.1", "2.0.0")])
def test_version_ranges_resolve_as_callers_expect(plugin_report, spec, expected):
    versions = [str(t.version) for t in plugin_report.templates if t.name == "process_refund"]
    assert str(max(SpecifierSet(spec).filter(versions), key=Version)) == expected
    assert str(plugin_report.registry.resolve(NAMESPACE, "process_refund", spec).version) == expected
