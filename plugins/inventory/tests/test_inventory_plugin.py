"""Contract tests of tasker-inventory: hooks, packaged templates, handler coverage."""

from __future__ import annotations

from importlib.metadata import distribution, entry_points

import jsonschema
import pluggy
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tasker_host import Namespace, StepHandler, hookspecs
from tasker_host.testing import depends_on, template_documents, template_files, topological_order
from tasker_inventory import plugin

NAMESPACE = "inventory"
CATALOGUE = {("process_return", "1.4.0"), ("update_stock_levels", "2.3.0")}
SAMPLE_CONTEXTS = {
    "process_return": {"return_id": "rma_1", "order_id": "ord_1001", "sku": "SKU-RED-M",
                       "quantity": 1, "refund_amount": 2599, "item_condition": "opened"},
    "update_stock_levels": {"warehouse_id": "wh_east", "reason": "receiving",
                            "adjustments": [{"sku": "SKU-RED-M", "delta": 12}]},
}


def _template_files():
    return template_files("tasker_inventory")


def _documents():
    return template_documents("tasker_inventory")


def test_namespace_hook_claims_inventory():
    (namespace,) = plugin.tasker_namespaces()
    assert isinstance(namespace, Namespace)
    assert (namespace.name, namespace.owner) == (NAMESPACE, "Inventory team")
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


def test_return_fans_out_after_inspection_and_refunds_through_payments_2x():
    doc = _documents()["process_return-1.4.0.yaml"]
    deps = {s["name"]: depends_on(s) for s in doc["step_templates"]}
    assert deps == {"validate_return": [], "inspect_item": ["validate_return"],
                    "restock_item": ["inspect_item"], "refund_customer": ["inspect_item"],
                    "close_return": ["restock_item", "refund_customer"]}
    config = doc["step_templates"][3]["handler_config"]
    assert (config["target_namespace"], config["target_workflow"]) == ("payments", "process_refund")
    payments_versions = ["2.0.0", "2.1.3"]  # what tasker-payments 1.4.0 ships
    allowed = list(SpecifierSet(config["target_version"]).filter(payments_versions))
    assert max(allowed, key=Version) == "2.1.3"


def test_entry_point_and_distribution():
    (ep,) = [e for e in entry_points(group="tasker_host.plugins") if e.name == NAMESPACE]
    assert ep.value == "tasker_inventory.plugin"
    assert ep.load() is plugin
    assert distribution("tasker-inventory").version == "0.3.1"


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
    entry_point = testing.FakeEntryPoint.of(NAMESPACE, plugin, dist="tasker-inventory", version="0.3.1")
    catalog = host.open_catalog(settings, entry_points=[entry_point])
    assert list(catalog.failures) == []
    assert {(t.name, str(t.version)) for t in catalog.registry.templates_in(NAMESPACE)} == CATALOGUE
    assert catalog.registry.resolve(NAMESPACE, "process_return", "~=1.4").version == Version("1.4.0")
