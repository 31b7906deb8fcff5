"""Contract tests of tasker-customer-success: hooks, packaged templates, handler coverage."""

from __future__ import annotations

from importlib.metadata import distribution, entry_points

import jsonschema
import pluggy
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tasker_host import Namespace, StepHandler, hookspecs
from tasker_host.testing import depends_on, template_documents, template_files, topological_order
from tasker_customer_success import plugin

NAMESPACE = "customer_success"
CATALOGUE = {("process_refund", "1.3.3"), ("escalate_ticket", "2.2.0")}
SAMPLE_CONTEXTS = {
    "process_refund": {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
                       "refund_reason": "Product defective", "requires_approval": True,
                       "agent_notes": "Customer very upset, expedite refund"},
    "escalate_ticket": {"ticket_id": "cs_456", "customer_id": "cust_789", "severity": "high"},
}
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


def _template_files():
    return template_files("tasker_customer_success")


def _documents():
    return template_documents("tasker_customer_success")


def test_namespace_hook_claims_customer_success():
    (namespace,) = plugin.tasker_namespaces()
    assert isinstance(namespace, Namespace)
    assert (namespace.name, namespace.owner) == (NAMESPACE, "Customer Success team")
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
    manager.register(plugin, name=NAMESPACE)
    assert manager.hook.tasker_namespaces()[0][0].name == NAMESPACE
    assert len(manager.hook.tasker_step_handlers()[0]) == 9


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


def test_1_3_3_is_the_story_workflow_with_a_version_range():
    doc = _documents()["process_refund-1.3.3.yaml"]
    steps = [(s["name"], depends_on(s), s["default_retry_limit"],
              s["handler_config"].get("timeout_seconds")) for s in doc["step_templates"]]
    assert steps == SEED_1_3_3
    assert list(doc["schema"]["properties"]) == SEED_SCHEMA_PROPERTIES
    assert doc["schema"]["required"] == ["ticket_id", "customer_id", "refund_amount"]
    config = doc["step_templates"][3]["handler_config"]
    assert {k: v for k, v in config.items() if k != "target_version"} == SEED_DELEGATION_CONFIG
    assert config["target_version"] == "~=2.1"
    payments_versions = ["2.0.0", "2.1.3"]  # what tasker-payments 1.4.0 ships
    assert list(SpecifierSet(config["target_version"]).filter(payments_versions)) == ["2.1.3"]


def test_escalation_fans_out_and_joins():
    doc = _documents()["escalate_ticket-2.2.0.yaml"]
    deps = {s["name"]: depends_on(s) for s in doc["step_templates"]}
    assert deps == {"assess_ticket": [], "notify_manager": ["assess_ticket"],
                    "page_on_call": ["assess_ticket"],
                    "record_escalation": ["notify_manager", "page_on_call"]}


def test_entry_point_and_distribution():
    (ep,) = [e for e in entry_points(group="tasker_host.plugins") if e.name == NAMESPACE]
    assert ep.value == "tasker_customer_success.plugin"
    assert ep.load() is plugin
    assert distribution("tasker-customer-success").version == "0.7.2"


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
    entry_point = testing.FakeEntryPoint.of(NAMESPACE, plugin, dist="tasker-customer-success", version="0.7.2")
    catalog = host.open_catalog(settings, entry_points=[entry_point])
    assert list(catalog.failures) == []
    assert {(t.name, str(t.version)) for t in catalog.registry.templates_in(NAMESPACE)} == CATALOGUE
    assert catalog.registry.resolve(NAMESPACE, "process_refund").version == Version("1.3.3")
