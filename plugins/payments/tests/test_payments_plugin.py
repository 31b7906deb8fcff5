"""Contract tests of tasker-payments: hooks, packaged templates, handler coverage."""

from __future__ import annotations

from importlib.metadata import distribution, entry_points

import jsonschema
import pluggy
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tasker_host import Namespace, StepHandler, hookspecs
from tasker_host.testing import depends_on, template_documents, template_files, topological_order
from tasker_payments import plugin

NAMESPACE = "payments"
CATALOGUE = {("process_refund", "2.0.0"), ("process_refund", "2.1.3"), ("process_payment", "3.0.0")}
SAMPLE_CONTEXTS = {
    "process_refund": {"payment_id": "pay_123", "refund_amount": 4999,
                       "refund_reason": "customer_request", "partial_refund": False},
    "process_payment": {"customer_id": "cust_789", "amount": 2599, "currency": "USD",
                        "payment_method_id": "pm_card_visa", "order_id": "ord_1001"},
}
SEED_2_1_3 = [  # (step, depends on, retry limit, timeout) of the story's payments YAML
    ("validate_payment_eligibility", [], 3, 15),
    ("process_gateway_refund", ["validate_payment_eligibility"], 2, 30),
    ("update_payment_records", ["process_gateway_refund"], 3, 20),
    ("notify_customer", ["update_payment_records"], 5, 10),
]


def _template_files():
    return template_files("tasker_payments")


def _documents():
    return template_documents("tasker_payments")


def test_namespace_hook_claims_payments():
    (namespace,) = plugin.tasker_namespaces()
    assert isinstance(namespace, Namespace)
    assert (namespace.name, namespace.owner) == (NAMESPACE, "Payments team")
    assert namespace.description


def test_templates_hook_returns_the_packaged_directory():
    (directory,) = plugin.tasker_templates()
    assert directory.is_dir() and directory.name == "templates"
    assert [e.name for e in _template_files()] == sorted(
        e.name for e in directory.iterdir() if e.name.endswith(".yaml"))


def test_catalogue_is_complete_and_versions_are_strings():
    docs = _documents().values()
    assert all(isinstance(d["version"], str) for d in docs)
    assert {(d["name"], d["version"]) for d in docs} == CATALOGUE


def test_every_handler_class_has_a_handler_and_none_is_unused():
    handlers = plugin.tasker_step_handlers()
    used = {s["handler_class"] for d in _documents().values() for s in d["step_templates"]}
    assert set(handlers) == used
    assert all(isinstance(cls, type) and issubclass(cls, StepHandler) for cls in handlers.values())


def test_hooks_match_the_host_hookspecs():
    manager = pluggy.PluginManager("tasker_host")
    manager.add_hookspecs(hookspecs)
    manager.register(plugin, name="payments")
    assert manager.hook.tasker_namespaces()[0][0].name == NAMESPACE
    assert len(manager.hook.tasker_step_handlers()[0]) == 8


@pytest.mark.parametrize("filename", sorted(_documents()))
def test_template_is_a_valid_dag_with_a_valid_schema(filename):
    doc = _documents()[filename]
    assert doc["namespace_name"] == NAMESPACE
    Version(doc["version"])
    names = [s["name"] for s in doc["step_templates"]]
    assert len(names) == len(set(names)), "duplicate step names"
    for step in doc["step_templates"]:
        assert set(depends_on(step)) <= set(names), f"unknown dependency in {step['name']}"
        assert isinstance(step.get("handler_config", {}), dict)
    assert set(topological_order(doc["step_templates"])) == set(names)
    validator = jsonschema.validators.validator_for(doc["schema"])
    validator.check_schema(doc["schema"])
    sample = {**SAMPLE_CONTEXTS[doc["name"]], "simulate": {names[0]: ["unavailable", "ok"]}}
    validator(doc["schema"]).validate(sample)


def test_2_1_3_is_the_story_workflow():
    doc = _documents()["process_refund-2.1.3.yaml"]
    steps = [(s["name"], depends_on(s), s["default_retry_limit"],
              s["handler_config"]["timeout_seconds"]) for s in doc["step_templates"]]
    assert steps == SEED_2_1_3
    assert doc["schema"]["required"] == ["payment_id", "refund_amount"]
    assert doc["schema"]["properties"]["refund_reason"]["enum"] == [
        "customer_request", "fraud", "system_error", "chargeback"]


def test_2_0_0_has_no_customer_notification():
    doc = _documents()["process_refund-2.0.0.yaml"]
    assert [s["name"] for s in doc["step_templates"]] == [s[0] for s in SEED_2_1_3[:3]]


@pytest.mark.parametrize("spec,expected", [("~=2.1", "2.1.3"), (">=2,<3", "2.1.3"),
                                           ("==2.0.0", "2.0.0"), ("<2.1", "2.0.0")])
def test_version_ranges_resolve_as_callers_expect(spec, expected):
    versions = [d["version"] for d in _documents().values() if d["name"] == "process_refund"]
    assert str(max(SpecifierSet(spec).filter(versions), key=Version)) == expected


def test_entry_point_and_distribution():
    (ep,) = [e for e in entry_points(group="tasker_host.plugins") if e.name == NAMESPACE]
    assert ep.value == "tasker_payments.plugin"
    assert ep.load() is plugin
    assert distribution("tasker-payments").version == "1.4.0"


def test_host_template_loader_accepts_every_template():
    templates_module = pytest.importorskip("tasker_host.templates")
    loader_class = getattr(templates_module, "TemplateLoader", None)
    if loader_class is None:
        pytest.skip("tasker_host.templates.TemplateLoader is not available yet")
    (directory,) = plugin.tasker_templates()
    templates, problems = loader_class().load_path(directory)
    assert list(problems) == []
    assert {(t.name, str(t.version)) for t in templates} == CATALOGUE


def test_host_registers_this_plugin_alone_without_failures():
    testing = pytest.importorskip("tasker_host.testing")
    host = pytest.importorskip("tasker_host.host")
    settings = pytest.importorskip("tasker_host.settings").HostSettings(strict_plugins=True)
    entry_point = testing.FakeEntryPoint.of(NAMESPACE, plugin, dist="tasker-payments", version="1.4.0")
    catalog = host.open_catalog(settings, entry_points=[entry_point])
    assert list(catalog.failures) == []
    assert {(t.name, str(t.version)) for t in catalog.registry.templates_in(NAMESPACE)} == CATALOGUE
    assert catalog.registry.resolve(NAMESPACE, "process_refund", "~=2.1").version == Version("2.1.3")
