"""``tasker_host.testing.check_plugin``: passes a plugin the strict host loads, and fails, naming
the problem, for every way a plugin can break the contract."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from tasker_host import Namespace, hookimpl
from tasker_host.testing import (
    FakeEntryPoint,
    NoopHandler,
    PluginReport,
    check_plugin,
    make_plugin,
    plugin_checks,
    template_doc,
)

SHOP = Namespace("shop", description="Orders and checkout", owner="Shop team")
CHECKOUT = """\
name: checkout
namespace_name: shop
version: "1.2.0"
description: Reserve stock, then charge
step_templates:
  - name: reserve
    handler_class: Noop
  - name: charge
    handler_class: Charge
    depends_on_step: reserve
    handler_config:
      timeout_seconds: 5
schema:
  type: object
  required: [order_id]
  properties:
    order_id: {type: string}
"""


class ChargeHandler(NoopHandler):
    """A second handler, so that a template can leave one out."""


HANDLERS = {"Noop": NoopHandler, "Charge": ChargeHandler}


def _templates_dir(tmp_path, **files):
    directory = tmp_path / "templates"
    directory.mkdir()
    for name, text in {"checkout-1.2.0.yaml": CHECKOUT, **files}.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _shop(templates, handlers=HANDLERS, namespaces=(SHOP,), **hooks):
    return make_plugin(namespaces=namespaces, templates=templates, handlers=handlers, **hooks)


def _problems(plugin, **kwargs) -> str:
    kwargs.setdefault("namespace", "shop")
    with pytest.raises(AssertionError) as failed:
        check_plugin(plugin, **kwargs)
    return str(failed.value)


# --- a plugin that meets the contract ------------------------------------------------------------
def test_a_good_plugin_passes_and_is_reported_as_the_host_loaded_it(tmp_path):
    plugin = _shop([_templates_dir(tmp_path)])
    report = check_plugin(plugin, namespace="shop", contexts={"checkout": {"order_id": "o-1"}})
    assert isinstance(report, PluginReport)
    assert report.namespace is SHOP
    assert report.catalogue == {("checkout", "1.2.0")}
    assert report.handlers == HANDLERS
    assert report.template("checkout").step_names == ["reserve", "charge"]
    assert report.document("checkout", "1.2.0")["step_templates"][1]["handler_config"] == {
        "timeout_seconds": 5}
    assert report.summary() == {
        "namespace": "shop", "owner": "Shop team", "entry_point": "shop = fake_shop:plugin",
        "distribution": "tasker-plugin-under-test 0+test", "template_items": ["templates"],
        "handlers": 2, "catalogue": [("checkout", "1.2.0")]}
    assert list(report.catalog.failures) == [] and report.registry.conflicts == ()


def test_check_context_names_what_the_schema_rejects(tmp_path):
    report = check_plugin(_shop([_templates_dir(tmp_path)]), namespace="shop")
    report.check_context("checkout", {"order_id": "o-1", "simulate": {"reserve": ["unavailable"]}})
    with pytest.raises(AssertionError, match=r"checkout@1\.2\.0 at order_id: 7 is not of type 'string'"):
        report.check_context("checkout", {"order_id": 7})


def test_a_plugin_may_own_several_namespaces(tmp_path):
    audit = template_doc("shop_admin", "audit", "0.1.0", [{"name": "scan", "handler_class": "Scan"}])
    handlers = {**HANDLERS, ("shop_admin", "Scan"): ChargeHandler}
    plugin = _shop([_templates_dir(tmp_path), audit], handlers,
                   namespaces=(SHOP, Namespace("shop_admin", "Admin")))
    report = check_plugin(plugin, namespace=["shop", "shop_admin"])
    assert [ns.name for ns in report.namespaces] == ["shop", "shop_admin"]
    assert [t.full_name for t in report.templates] == ["shop.checkout@1.2.0", "shop_admin.audit@0.1.0"]
    assert report.catalogue == {("checkout", "1.2.0")}  # of the first namespace


def test_a_namespaced_handler_must_be_used_in_its_own_namespace(tmp_path):
    handlers = {**HANDLERS, ("shop_admin", "Noop"): NoopHandler}
    plugin = _shop([_templates_dir(tmp_path)], handlers,
                   namespaces=(SHOP, Namespace("shop_admin", "Admin")))
    message = _problems(plugin, namespace=["shop", "shop_admin"])
    assert "handler ('shop_admin', 'Noop') (NoopHandler) is used by no template" in message


# --- what the host itself refuses ----------------------------------------------------------------
def test_a_handler_class_no_handler_provides_fails(tmp_path):
    message = _problems(_shop([_templates_dir(tmp_path)], handlers={"Noop": NoopHandler}))
    assert "plugin contract" in message and "the host refuses it" in message
    assert "checkout-1.2.0.yaml" in message
    assert "handler 'Charge' of step 'charge' is not provided in namespace 'shop'" in message


def test_a_template_in_a_foreign_namespace_fails():
    foreign = template_doc("payments", "refund", "1.0.0")
    message = _problems(_shop([foreign], handlers={"Noop": NoopHandler}))
    assert "foreign_namespace: namespace payments" in message
    assert "contributes template(s) payments.refund@1.0.0" in message


@pytest.mark.parametrize("hooks,expected", [
    ({"tasker_templtes": lambda: []}, "unknown hook tasker_templtes (did you mean tasker_templates?)"),
    ({"tasker_on_evnt": lambda event: None}, "unknown hook tasker_on_evnt (did you mean tasker_on_event?)"),
])
def test_a_misspelled_hook_fails(tmp_path, hooks, expected):
    message = _problems(_shop([_templates_dir(tmp_path)], **hooks))
    assert "failed at register" in message and expected in message


def test_a_hook_without_the_marker_fails(tmp_path):
    plugin = _shop([_templates_dir(tmp_path)])
    plugin.tasker_on_event = lambda event: None  # not @hookimpl
    assert "tasker_on_event is not marked with @tasker_host.hookimpl" in _problems(plugin)


def test_a_hook_whose_arguments_do_not_match_the_hookspec_fails(tmp_path):
    plugin = _shop([_templates_dir(tmp_path)])
    plugin.tasker_on_event = hookimpl(lambda evt: None)
    message = _problems(plugin)
    assert "failed at register" in message and "evt" in message


def test_a_hook_that_raises_fails(tmp_path):
    def tasker_templates():
        raise RuntimeError("templates directory missing from the wheel")

    plugin = _shop([])
    plugin.tasker_templates = hookimpl(tasker_templates)
    message = _problems(plugin)
    assert "failed at hook:tasker_templates: RuntimeError: templates directory missing" in message


def test_a_handler_that_is_not_a_step_handler_fails(tmp_path):
    message = _problems(_shop([_templates_dir(tmp_path)], handlers={**HANDLERS, "Refund": object}))
    assert "handler 'Refund' is not a StepHandler subclass" in message


@pytest.mark.parametrize("old,new,expected", [
    ("description: Reserve", "description: [Reserve", "checkout-1.2.0.yaml:"),  # YAML syntax
    ("description: Reserve stock", "name: again", "duplicate key 'name'"),
    ('version: "1.2.0"', "version: 1.2", 'version must be a string: write version: "1.2"'),
    ('version: "1.2.0"', 'version: "one"', "is not a valid version"),
    ("depends_on_step: reserve", "depends_on_step: reserv", "depends on unknown step 'reserv'"),
    ("    handler_class: Noop\n", "    handler_class: Noop\n    depends_on_step: charge\n",
     "dependency cycle"),
    ("  - name: charge", "  - name: reserve", "duplicate step name 'reserve'"),
    ("      timeout_seconds: 5", "      - 5", "must be of type object"),
    ("type: object", "type: objekt", "not a valid JSON Schema"),
    ("schema:", "shema:", "unknown key 'shema' (did you mean 'schema'?)"),
])
def test_a_broken_template_file_fails_with_file_and_reason(tmp_path, old, new, expected):
    assert old in CHECKOUT
    directory = _templates_dir(tmp_path)
    (directory / "checkout-1.2.0.yaml").write_text(CHECKOUT.replace(old, new), encoding="utf-8")
    message = _problems(_shop([directory]))
    assert "failed at template: " in message and "checkout-1.2.0.yaml" in message
    assert expected in message


def test_two_documents_of_one_version_fail(tmp_path):
    message = _problems(_shop([_templates_dir(tmp_path, **{"copy.yaml": CHECKOUT})]))
    assert "duplicate_template: shop.checkout@1.2.0" in message


# --- what check_plugin asks beyond the host ------------------------------------------------------
@pytest.mark.parametrize("namespaces,expected", [
    ((Namespace("shops", "Orders"),), "tasker_namespaces() claims ['shops'], expected ['shop']"),
    ((), "tasker_namespaces() claims no namespace, expected ['shop']"),
    ((SHOP, Namespace("extra", "More")), "claims ['shop', 'extra'], expected ['shop']"),
    ((Namespace("shop"),), "namespace 'shop' has no description"),
])
def test_the_namespaces_claimed_must_be_exactly_the_described_ones_expected(namespaces, expected):
    plugin = make_plugin(namespaces=namespaces, templates=[], handlers={})
    assert expected in _problems(plugin)


def test_a_plain_string_namespace_fails_although_the_host_accepts_it():
    plugin = make_plugin(templates=[], handlers={})
    plugin.tasker_namespaces = hookimpl(lambda: ["shop"])
    message = _problems(plugin)
    assert "tasker_namespaces() returns 'shop': return Namespace(name, description, owner)" in message


def test_an_unused_handler_fails(tmp_path):
    message = _problems(_shop([_templates_dir(tmp_path)], handlers={**HANDLERS, "Spare": NoopHandler}))
    assert "handler 'Spare' (NoopHandler) is used by no template" in message


def test_every_problem_is_named_at_once(tmp_path):
    plugin = make_plugin(namespaces=[Namespace("shop")], templates=[_templates_dir(tmp_path)],
                         handlers={**HANDLERS, "Spare": NoopHandler, "Extra": NoopHandler})
    message = _problems(plugin)
    assert "(3 problem(s))" in message
    assert "no description" in message and "'Spare'" in message and "'Extra'" in message


@pytest.mark.parametrize("contexts,expected", [
    ({"checkout": {}}, "sample context rejected by the schema of shop.checkout@1.2.0 at <top>: "
                       "'order_id' is a required property"),
    ({"refund": {"order_id": "o-1"}}, "no sample context for shop.checkout@1.2.0"),
])
def test_sample_contexts_must_meet_every_templates_schema(tmp_path, contexts, expected):
    assert expected in _problems(_shop([_templates_dir(tmp_path)]), contexts=contexts)


def test_a_simulated_plugins_sample_context_must_also_pass_with_a_simulation_plan(tmp_path):
    closed = CHECKOUT.replace("  required:", "  additionalProperties: false\n  required:")
    directory = _templates_dir(tmp_path, **{"checkout-1.2.0.yaml": closed})
    message = _problems(_shop([directory]), contexts={"checkout": {"order_id": "o-1"}}, simulated=True)
    assert "sample context with a simulate plan rejected" in message
    assert "'simulate' was unexpected" in message
    assert "(1 problem(s))" in message  # the bare sample passes
    # a plugin with real services need not accept the simulation's context key
    report = check_plugin(_shop([directory]), namespace="shop", contexts={"checkout": {"order_id": "o-1"}})
    assert report.catalogue == {("checkout", "1.2.0")}


def test_a_template_without_a_schema_has_no_sample_to_check(tmp_path):
    plugin = _shop([template_doc("shop", "ping", "1.0.0")], handlers={"Noop": NoopHandler})
    message = _problems(plugin, contexts={"ping": {}})
    assert "shop.ping@1.0.0 has no context schema" in message


@pytest.fixture
def shop_package(tmp_path, monkeypatch):
    """An importable package ``shop_plugin_pkg`` with ``templates/`` and a ``plugin`` module that
    returns whatever ``TEMPLATES`` holds; removed from ``sys.modules`` afterwards."""
    root = tmp_path / "site"
    package = root / "shop_plugin_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "templates").mkdir()
    (package / "templates" / "checkout-1.2.0.yaml").write_text(CHECKOUT, encoding="utf-8")
    (package / "plugin.py").write_text(textwrap.dedent("""\
        from importlib.resources import files

        from tasker_host import Namespace, hookimpl
        from tasker_host.testing import NoopHandler

        TEMPLATES = [files(__package__) / "templates"]

        class ChargeHandler(NoopHandler):
            pass

        @hookimpl
        def tasker_namespaces():
            return [Namespace("shop", "Orders and checkout", "Shop team")]

        @hookimpl
        def tasker_templates():
            return TEMPLATES

        @hookimpl
        def tasker_step_handlers():
            return {"Noop": NoopHandler, "Charge": ChargeHandler}
        """))
    monkeypatch.syspath_prepend(str(root))
    yield importlib.import_module("shop_plugin_pkg.plugin")
    for name in ("shop_plugin_pkg.plugin", "shop_plugin_pkg"):
        sys.modules.pop(name, None)


def test_a_package_plugin_returning_its_templates_directory_passes(shop_package):
    assert check_plugin(shop_package, namespace="shop").catalogue == {("checkout", "1.2.0")}


def test_a_package_plugin_must_return_its_packaged_templates_directory(shop_package, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # same documents, but not the directory the wheel ships
    elsewhere.mkdir()
    (elsewhere / "checkout-1.2.0.yaml").write_text(CHECKOUT, encoding="utf-8")
    shop_package.TEMPLATES = [elsewhere]
    message = _problems(shop_package)
    assert "tasker_templates() does not return the package's templates directory" in message
    assert "files('shop_plugin_pkg') / \"templates\"" in message


def test_package_may_be_named_for_a_plugin_object(tmp_path):
    plugin = _shop([_templates_dir(tmp_path)])
    assert "tasker_payments" in _problems(plugin, package="tasker_payments")


# --- the installed distribution -----------------------------------------------------------------
def test_a_distribution_that_is_not_installed_fails(tmp_path):
    message = _problems(_shop([_templates_dir(tmp_path)]), distribution="tasker-shop")
    assert "distribution 'tasker-shop' is not installed" in message


def test_the_distributions_entry_point_must_load_the_plugin(tmp_path):
    message = _problems(_shop([_templates_dir(tmp_path)]), distribution="tasker-payments")
    assert "'tasker-payments' declares no entry point(s) of the group 'tasker_host.plugins'" in message
    assert "(declared: payments = tasker_payments.plugin)" in message


def test_the_installed_entry_point_is_the_one_discovered():
    from tasker_payments import plugin

    report = check_plugin(plugin, namespace="payments", distribution="tasker-payments")
    assert (report.entry_point.value, report.distribution_version) == ("tasker_payments.plugin", "1.4.0")
    (loaded,) = report.catalog.discovery.contributions
    assert loaded.plugin.provenance.distribution == "tasker-payments"


def test_another_distribution_declaring_the_same_entry_point_name_fails(monkeypatch):
    from tasker_payments import plugin

    installed = plugin_checks.installed_entry_points
    impostor = FakeEntryPoint.of("payments", object(), dist="tasker-payments-legacy", version="0.9")
    monkeypatch.setattr(plugin_checks, "installed_entry_points",
                        lambda group: [*installed(group=group), impostor])
    message = _problems(plugin, namespace="payments", distribution="tasker-payments")
    assert "entry point name 'payments' is also declared by tasker-payments-legacy" in message
