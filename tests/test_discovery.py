"""Entry-point discovery with fake entry points: failures are recorded per plugin, never fatal
unless strict; misspelled hooks are caught; the same distribution twice is not a conflict."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tasker_host import hookimpl
from tasker_host.errors import PluginLoadFailures
from tasker_host.plugins import discover
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc


def good(ns: str = "payments", dist: str = "tasker-payments", version: str = "1.4.0") -> FakeEntryPoint:
    plugin = make_plugin([ns], [template_doc(ns, "process_refund", "2.1.3")], {"Noop": NoopHandler})
    return FakeEntryPoint.of(ns, plugin, dist=dist, version=version)


def test_import_error_is_recorded_with_distribution_and_others_still_load():
    broken = FakeEntryPoint.failing("inventory", ImportError("No module named 'tasker_inventory.plugin'"),
                                    dist="tasker-inventory", version="0.3.1")
    found = discover([broken, good()])
    assert [c.plugin.provenance.distribution for c in found.contributions] == ["tasker-payments"]
    [failure] = found.failures
    assert failure.distribution == "tasker-inventory" and failure.distribution_version == "0.3.1"
    assert failure.stage == "import"
    assert "No module named 'tasker_inventory.plugin'" in failure.error
    assert "tasker-inventory 0.3.1" in failure.describe()


def test_strict_mode_makes_any_failure_fatal_and_lists_them_all():
    a = FakeEntryPoint.failing("a", RuntimeError("boom a"), dist="tasker-a")
    b = FakeEntryPoint.failing("b", RuntimeError("boom b"), dist="tasker-b")
    with pytest.raises(PluginLoadFailures) as info:
        discover([a, b, good()], strict=True)
    message = str(info.value)
    assert "tasker-a" in message and "boom a" in message
    assert "tasker-b" in message and "boom b" in message
    assert len(info.value.failures) == 2


def test_raising_hook_names_the_plugin_and_its_contributions_are_dropped():
    @hookimpl
    def tasker_templates():
        raise ValueError("templates directory missing")

    plugin = make_plugin(["payments"])
    plugin.tasker_templates = tasker_templates
    found = discover([FakeEntryPoint.of("payments", plugin, dist="tasker-payments", version="1.4.0"),
                      good("inventory", "tasker-inventory")])
    [failure] = found.failures
    assert failure.stage == "hook:tasker_templates"
    assert "templates directory missing" in failure.error and failure.distribution == "tasker-payments"
    assert [c.plugin.provenance.distribution for c in found.contributions] == ["tasker-inventory"]
    assert "tasker-payments:payments" not in {n for n, _ in found.manager.list_name_plugin()}


def test_misspelled_hook_is_caught_with_a_hint():
    @hookimpl
    def tasker_templtes():
        return []

    plugin = make_plugin(["payments"])
    plugin.tasker_templtes = tasker_templtes
    found = discover([FakeEntryPoint.of("payments", plugin, dist="tasker-payments")])
    [failure] = found.failures
    assert failure.stage == "register"
    assert "unknown hook tasker_templtes (did you mean tasker_templates?)" in failure.error
    assert not found.contributions


def test_hook_without_marker_is_reported():
    plugin = SimpleNamespace(tasker_namespaces=lambda: ["payments"])
    found = discover([FakeEntryPoint.of("payments", plugin, dist="tasker-payments")])
    assert "tasker_namespaces is not marked with @tasker_host.hookimpl" in found.failures[0].error


def test_handler_that_is_not_a_step_handler_is_a_failure():
    plugin = make_plugin(["payments"], handlers={"Noop": object})
    found = discover([FakeEntryPoint.of("payments", plugin, dist="tasker-payments")])
    assert found.failures[0].stage == "hook:tasker_step_handlers"
    assert "'Noop' is not a StepHandler subclass" in found.failures[0].error


def test_same_distribution_discovered_twice_loads_once():
    ep = good()
    found = discover([ep, good()])
    assert len(found.contributions) == 1 and not found.failures


def test_two_distributions_with_the_same_entry_point_name_both_load_in_name_order():
    found = discover([good("zeta", "tasker-zeta"), good("alpha", "tasker-alpha")])
    assert [c.plugin.provenance.distribution for c in found.contributions] == ["tasker-alpha", "tasker-zeta"]


def test_provenance_records_entry_point_and_distribution():
    found = discover([good()])
    prov = found.contributions[0].plugin.provenance
    assert (prov.distribution, prov.distribution_version) == ("tasker-payments", "1.4.0")
    assert prov.entry_point == "payments = fake_payments:plugin"
