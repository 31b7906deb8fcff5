"""Registry: provenance, every conflict kind (naming every provider), quarantine, resolution."""

from __future__ import annotations

import pytest
from packaging.version import Version

from tasker_host.errors import (
    ConflictError,
    NoMatchingVersionError,
    QuarantinedNamespaceError,
    UnknownNamespaceError,
    UnknownTemplateError,
)
from tasker_host.host import load_catalog, open_catalog
from tasker_host.models import ConflictKind
from tasker_host.registry import ConflictPolicy
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc

QUARANTINE = HostSettings(on_conflict=ConflictPolicy.QUARANTINE)


def build_host(settings=None, *, entry_points):
    return open_catalog(settings or HostSettings(), entry_points=entry_points)


def plugin_ep(dist, version, namespaces, templates=(), handlers=None, name=None):
    handlers = {"Noop": NoopHandler} if handlers is None else handlers
    plugin = make_plugin(namespaces, templates, handlers)
    return FakeEntryPoint.of(name or dist.removeprefix("tasker-"), plugin, dist=dist, version=version)


def payments(*versions: str):
    docs = [template_doc("payments", "process_refund", v) for v in versions or ("2.0.0", "2.1.3")]
    return plugin_ep("tasker-payments", "1.4.0", ["payments"], docs)


def test_registry_keys_and_provenance():
    host = build_host(entry_points=[payments()])
    t = host.registry.resolve("payments", "process_refund", "2.1.3")
    assert t.key == ("payments", "process_refund", Version("2.1.3"))
    assert (t.provenance.distribution, t.provenance.distribution_version) == ("tasker-payments", "1.4.0")
    assert t.provenance.entry_point == "payments = fake_payments:plugin"
    entry = host.registry.handlers[("payments", "Noop")]
    assert entry.provenance.distribution == "tasker-payments"
    assert host.registry.namespaces["payments"].provenance.distribution == "tasker-payments"


def test_same_template_name_in_two_namespaces_is_fine():
    cs = plugin_ep("tasker-customer-success", "0.7.2", ["customer_success"],
                   [template_doc("customer_success", "process_refund", "1.3.3")])
    host = build_host(entry_points=[payments(), cs])
    assert host.registry.resolve("customer_success", "process_refund").full_name == \
        "customer_success.process_refund@1.3.3"
    assert host.registry.resolve("payments", "process_refund").full_name == "payments.process_refund@2.1.3"


def test_namespace_claimed_by_two_distributions_refuses_naming_both():
    rogue = plugin_ep("tasker-rogue", "0.0.1", ["payments"], [template_doc("payments", "process_refund", "9.0.0")])
    with pytest.raises(ConflictError) as info:
        build_host(entry_points=[payments(), rogue])
    message = str(info.value)
    assert "namespace_ownership: namespace payments" in message
    assert "tasker-payments 1.4.0" in message and "tasker-rogue 0.0.1" in message
    assert "--on-conflict=quarantine" in message


def test_conflict_report_does_not_depend_on_load_order():
    rogue = plugin_ep("tasker-rogue", "0.0.1", ["payments"])
    a = load_catalog(QUARANTINE, entry_points=[payments(), rogue]).registry
    b = load_catalog(QUARANTINE, entry_points=[rogue, payments()]).registry
    assert [c.describe() for c in a.conflicts] == [c.describe() for c in b.conflicts]
    assert a.namespaces.keys() == b.namespaces.keys()


def test_quarantine_serves_the_rest_and_lists_what_was_left_out():
    rogue = plugin_ep("tasker-rogue", "0.0.1", ["payments"], [template_doc("payments", "process_refund", "9.0.0")])
    inventory = plugin_ep("tasker-inventory", "0.3.1", ["inventory"],
                          [template_doc("inventory", "process_return", "1.4.0")])
    host = build_host(QUARANTINE, entry_points=[payments(), rogue, inventory])
    reg = host.registry
    assert "payments" not in reg.namespaces
    assert reg.resolve("inventory", "process_return").full_name == "inventory.process_return@1.4.0"
    quarantined = {(q.kind, q.subject, q.provenance.distribution) for q in reg.quarantined}
    assert ("namespace", "payments", "tasker-payments") in quarantined
    assert ("namespace", "payments", "tasker-rogue") in quarantined
    assert ("template", "payments.process_refund@9.0.0", "tasker-rogue") in quarantined
    assert ("template", "payments.process_refund@2.1.3", "tasker-payments") in quarantined
    with pytest.raises(QuarantinedNamespaceError) as info:
        reg.resolve("payments", "process_refund")
    assert "namespace 'payments' is quarantined" in str(info.value)
    assert "tasker-payments 1.4.0" in str(info.value) and "tasker-rogue 0.0.1" in str(info.value)
    assert [p.split(" [")[0] for p in info.value.providers] == ["tasker-payments 1.4.0", "tasker-rogue 0.0.1"]
    assert {q.provenance.distribution for q in reg.namespace_claims("payments")} == {"tasker-payments", "tasker-rogue"}
    assert reg.namespace_claims("inventory") == ()
    with pytest.raises(UnknownNamespaceError, match="unknown namespace 'billing'"):
        reg.resolve("billing", "process_refund")  # a namespace nobody claims stays unknown


def test_duplicate_template_in_one_namespace_names_every_provider():
    # one distribution ships the same key in two entry points with different files
    a = plugin_ep("tasker-payments", "1.4.0", ["payments"], [template_doc("payments", "process_refund", "2.1.3")],
                  name="a")
    b = plugin_ep("tasker-payments", "1.4.0", ["payments"], [template_doc("payments", "process_refund", "2.1.3.0")],
                  name="b")
    reg = load_catalog(QUARANTINE, entry_points=[a, b]).registry
    [conflict] = reg.conflicts
    assert conflict.kind is ConflictKind.DUPLICATE_TEMPLATE
    assert conflict.subject == "payments.process_refund@2.1.3"
    assert {p.entry_point for p in conflict.providers} == {"a = fake_a:plugin", "b = fake_b:plugin"}
    assert not reg.versions_of("payments", "process_refund")


def test_templates_for_a_namespace_the_plugin_does_not_own():
    sneaky = plugin_ep("tasker-sneaky", "2.0.0", ["sneaky"], [template_doc("payments", "process_refund", "7.0.0")])
    reg = load_catalog(QUARANTINE, entry_points=[payments(), sneaky]).registry
    [conflict] = reg.conflicts
    assert conflict.kind is ConflictKind.FOREIGN_NAMESPACE
    text = conflict.describe()
    assert "tasker-sneaky 2.0.0" in text and "tasker-payments 1.4.0" in text
    assert "payments.process_refund@7.0.0" in text
    assert [str(t.version) for t in reg.versions_of("payments", "process_refund")] == ["2.0.0", "2.1.3"]
    with pytest.raises(ConflictError):
        build_host(entry_points=[payments(), sneaky])


def test_handlers_for_a_namespace_the_plugin_does_not_own():
    sneaky = plugin_ep("tasker-sneaky", "2.0.0", ["sneaky"], handlers={("payments", "Noop"): NoopHandler})
    reg = load_catalog(QUARANTINE, entry_points=[payments(), sneaky]).registry
    [conflict] = reg.conflicts
    assert conflict.kind is ConflictKind.FOREIGN_NAMESPACE
    assert "tasker-sneaky 2.0.0" in conflict.describe() and "tasker-payments 1.4.0" in conflict.describe()
    assert reg.handlers[("payments", "Noop")].provenance.distribution == "tasker-payments"


def test_plugin_with_handlers_but_no_namespace_is_a_conflict():
    orphan = plugin_ep("tasker-orphan", "0.1.0", [], handlers={"Noop": NoopHandler})
    reg = load_catalog(QUARANTINE, entry_points=[orphan]).registry
    assert reg.conflicts[0].kind is ConflictKind.FOREIGN_NAMESPACE
    assert "owns no namespace" in reg.conflicts[0].describe()


def test_duplicate_handler_between_two_entry_points_of_one_namespace_owner():
    class Other(NoopHandler):
        pass

    a = plugin_ep("tasker-payments", "1.4.0", ["payments"], handlers={"Noop": NoopHandler}, name="a")
    b = plugin_ep("tasker-payments", "1.4.0", ["payments"], handlers={"Noop": Other}, name="b")
    reg = load_catalog(QUARANTINE, entry_points=[a, b]).registry
    [conflict] = reg.conflicts
    assert conflict.kind is ConflictKind.DUPLICATE_HANDLER
    assert {p.entry_point for p in conflict.providers} == {"a = fake_a:plugin", "b = fake_b:plugin"}


def test_handler_names_are_resolved_inside_the_templates_namespace():
    class CsHandler(NoopHandler):
        pass

    cs = plugin_ep("tasker-customer-success", "0.7.2", ["customer_success"],
                   [template_doc("customer_success", "process_refund", "1.3.3")], {"Noop": CsHandler})
    reg = build_host(entry_points=[payments(), cs]).registry
    assert reg.handler_class("customer_success", "Noop") is CsHandler
    assert reg.handler_class("payments", "Noop") is NoopHandler


def test_missing_handler_names_file_line_and_key_and_quarantines_the_template():
    doc = template_doc("payments", "process_refund", "2.1.3",
                       steps=[{"name": "a", "handler_class": "Noop"}, {"name": "b", "handler_class": "Nope"}])
    ep = plugin_ep("tasker-payments", "1.4.0", ["payments"], [doc])
    reg = load_catalog(HostSettings(), entry_points=[ep]).registry
    [failure] = reg.failures
    assert failure.distribution == "tasker-payments" and failure.stage == "template"
    assert "step_templates[1].handler_class" in failure.error and "'Nope'" in failure.error
    assert not reg.templates


def test_resolution_errors_are_distinct_and_list_what_is_available():
    reg = build_host(entry_points=[payments("2.0.0", "2.1.3", "2.9.0", "2.10.0")]).registry
    assert str(reg.resolve("payments", "process_refund").version) == "2.10.0"
    assert str(reg.resolve("payments", "process_refund", "~=2.1").version) == "2.10.0"
    assert str(reg.resolve("payments", "process_refund", ">=2,<2.5").version) == "2.1.3"
    with pytest.raises(UnknownNamespaceError, match="known namespaces: payments"):
        reg.resolve("billing", "process_refund")
    with pytest.raises(UnknownTemplateError, match="its templates: process_refund"):
        reg.resolve("payments", "process_refundz")
    with pytest.raises(NoMatchingVersionError) as info:
        reg.resolve("payments", "process_refund", ">=3")
    assert info.value.available == ("2.0.0", "2.1.3", "2.9.0", "2.10.0")
    assert "available: 2.0.0, 2.1.3, 2.9.0, 2.10.0" in str(info.value)


def test_prerelease_only_when_asked_for():
    reg = build_host(entry_points=[payments("2.1.3", "3.0.0b1")]).registry
    assert str(reg.resolve("payments", "process_refund").version) == "2.1.3"
    assert str(reg.resolve("payments", "process_refund", "3.0.0b1").version) == "3.0.0b1"
    assert str(reg.resolve("payments", "process_refund", ">=3.0.0a1").version) == "3.0.0b1"
