"""Contract tests of tasker-inventory: the host's plugin contract, then this team's catalogue.

``check_plugin`` loads the plugin as a strict host does (installed entry point, real registry):
hooks, namespace, strict template loading, handler coverage; the rest is Inventory's own.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import Version

NAMESPACE = "inventory"
CATALOGUE = {("process_return", "1.4.0"), ("update_stock_levels", "2.3.0")}


def test_inventory_ships_its_catalogue_from_tasker_inventory_0_3_1(plugin_report):
    assert plugin_report.summary() == {
        "namespace": NAMESPACE, "owner": "Inventory team",
        "entry_point": "inventory = tasker_inventory.plugin",
        "distribution": "tasker-inventory 0.3.1", "template_items": ["templates"],
        "handlers": 9, "catalogue": sorted(CATALOGUE)}
    assert plugin_report.registry.resolve(NAMESPACE, "process_return", "~=1.4").version == Version("1.4.0")


def test_return_fans_out_after_inspection_and_refunds_through_payments_2x(plugin_report):
    doc = plugin_report.document("process_return", "1.4.0")
    deps = {s.name: list(s.depends_on) for s in plugin_report.template("process_return", "1.4.0").steps}
    assert deps == {"validate_return": [], "inspect_item": ["validate_return"],
                    "restock_item": ["inspect_item"], "refund_customer": ["inspect_item"],
                    "close_return": ["restock_item", "refund_customer"]}
    config = doc["step_templates"][3]["handler_config"]
    assert (config["target_namespace"], config["target_workflow"]) == ("payments", "process_refund")
    payments_versions = ["2.0.0", "2.1.3"]  # what tasker-payments 1.4.0 ships
    allowed = list(SpecifierSet(config["target_version"]).filter(payments_versions))
    assert max(allowed, key=Version) == "2.1.3"
