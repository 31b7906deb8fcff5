"""The contract every plugin must meet, checked the way the host loads plugins.

:func:`check_plugin` discovers the plugin through an entry point (the installed one when
``distribution`` is given, else a :class:`~tasker_host.testing.FakeEntryPoint`) and builds the
real registry from it alone with ``strict_plugins=True`` and the default refuse-on-conflict
policy, so a plugin the host would refuse fails the check. On success it returns a
:class:`PluginReport` for the team's own assertions (catalogue, versions, steps, ...)::

    report = check_plugin(plugin, namespace="payments", distribution="tasker-payments")
    assert ("process_refund", "2.1.3") in report.catalogue
    report.check_context("process_refund", {"payment_id": "pay_1", "refund_amount": 100})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import distribution as installed_distribution
from importlib.metadata import entry_points as installed_entry_points
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from jsonschema.validators import validator_for
from packaging.utils import canonicalize_name

from tasker_host.handler import StepHandler
from tasker_host.markers import ENTRY_POINT_GROUP
from tasker_host.models import Namespace, TaskTemplate
from tasker_host.templates import _yaml_files as yaml_files_below  # what the host's loader reads
from tasker_host.testing.fakes import UNDER_TEST_DISTRIBUTION, FakeEntryPoint

if TYPE_CHECKING:  # tasker_host.host is imported when checking: it loads the engine and the store
    from tasker_host.host import Catalog
    from tasker_host.registry import Registry



@dataclass(frozen=True)
class PluginReport:
    """What the host loaded from one plugin that passed :func:`check_plugin`.

    ``namespaces``: the plugin's namespaces, as the host took them from ``tasker_namespaces()``
    (``namespace``: the first);
    ``handlers``: what ``tasker_step_handlers()`` returned; ``template_items``: what
    ``tasker_templates()`` returned; ``entry_point``: the entry point discovery loaded;
    ``catalog``: the host's catalog of this plugin alone (``registry``: its registry).
    """

    namespaces: tuple[Namespace, ...]
    handlers: Mapping[Any, type[StepHandler]]
    template_items: tuple[Any, ...]
    entry_point: Any
    catalog: Catalog

    @property
    def namespace(self) -> Namespace:
        return self.namespaces[0]

    @property
    def registry(self) -> Registry:
        return self.catalog.registry

    @property
    def distribution_version(self) -> str:
        return self.entry_point.dist.version

    @property
    def templates(self) -> list[TaskTemplate]:
        """The registered templates of every namespace of the plugin, versions ascending."""
        return [t for ns in self.namespaces for t in self.registry.templates_in(ns.name)]

    @property
    def catalogue(self) -> set[tuple[str, str]]:
        """``{(name, version)}`` of the templates registered in :attr:`namespace`."""
        return {(t.name, str(t.version)) for t in self.registry.templates_in(self.namespace.name)}

    def summary(self) -> dict[str, Any]:
        """The plugin's facts in one comparable value (namespace, owner, entry point,
        distribution, what ``tasker_templates()`` returned, handler count, catalogue)."""
        ep = self.entry_point
        return {"namespace": self.namespace.name, "owner": self.namespace.owner,
                "entry_point": f"{ep.name} = {ep.value}",
                "distribution": f"{ep.dist.name} {ep.dist.version}",
                "template_items": [getattr(i, "name", "<mapping>") for i in self.template_items],
                "handlers": len(self.handlers), "catalogue": sorted(self.catalogue)}

    def template(self, name: str, version: str | None = None) -> TaskTemplate:
        """The registered template of :attr:`namespace`: ``version`` exactly, else the newest."""
        return self.registry.resolve(self.namespace.name, name, version)

    def document(self, name: str, version: str | None = None) -> Mapping[str, Any]:
        """The template's document as loaded (plain data: the YAML file's content)."""
        return self.template(name, version).document

    def check_context(self, name: str, context: Mapping[str, Any], version: str | None = None) -> None:
        """``AssertionError`` unless the template has a context ``schema`` that ``context`` meets."""
        problems = _context_problems(self.template(name, version), context)
        if problems:
            raise AssertionError("\n".join(problems))


def check_plugin(
    plugin_module: Any,
    *,
    namespace: str | Sequence[str],
    distribution: str | None = None,
    contexts: Mapping[str, Mapping[str, Any]] | None = None,
    package: str | None = None,
    simulated: bool = False,
) -> PluginReport:
    """Load ``plugin_module`` as the host does and check the plugin contract; ``AssertionError``
    naming every problem, else a :class:`PluginReport`.

    The host must load it with ``strict_plugins=True`` and refuse-on-conflict: hooks with known
    names, marked ``@hookimpl`` and matching the hook specifications; handlers are
    :class:`StepHandler` subclasses; every template loads strictly (YAML, version string,
    document schema, step graph, context schema), lies in a namespace of the plugin and has every
    ``handler_class`` of its steps provided in that namespace. Besides, as the host does not:

    * ``namespace`` (one name or several) is exactly what ``tasker_namespaces()`` claims, each
      a :class:`Namespace` with a description;
    * every handler is used by a step of some template (of its namespace, for a
      ``(namespace, name)`` key);
    * every template document given is registered (none quarantined);
    * when the plugin's package (``package``, by default the plugin module's) ships a
      ``templates`` directory, ``tasker_templates()`` returns that directory;
    * ``contexts`` given (``{template name: sample context}``): every version of every template
      has a context ``schema`` that its sample meets; with ``simulated=True`` (a plugin whose
      services are :mod:`tasker_host.testing.simulation` ones) also with a ``simulate`` plan for
      its first step;
    * ``distribution`` given: it is installed and declares exactly one entry point of the group
      ``tasker_host.plugins`` that loads ``plugin_module`` (that entry point is the one loaded),
      under a name no other installed distribution declares in the group.
    """
    report, problems = plugin_problems(plugin_module, namespace=namespace, distribution=distribution,
                                       contexts=contexts, package=package, simulated=simulated)
    if problems:
        expected = [namespace] if isinstance(namespace, str) else list(namespace)
        raise AssertionError(_message(f"plugin {_name_of(plugin_module)} (namespace "
                                      f"{', '.join(expected)})", problems))
    assert report is not None
    return report


def plugin_problems(
    plugin_module: Any,
    *,
    namespace: str | Sequence[str],
    distribution: str | None = None,
    contexts: Mapping[str, Mapping[str, Any]] | None = None,
    package: str | None = None,
    simulated: bool = False,
    entry_point: Any = None,
) -> tuple[PluginReport | None, list[str]]:
    """:func:`check_plugin`'s checks, returning ``(report, problems)`` instead of raising
    (``report`` is ``None`` when the host refuses the plugin); ``tasker-host check`` reports
    the problems with everything else it finds. ``entry_point`` (instead of ``distribution``):
    discover the plugin through it (``tasker-host check``: a project's source, not installed)."""
    from tasker_host.errors import ConflictError, PluginLoadFailures
    from tasker_host.host import open_catalog
    from tasker_host.settings import HostSettings

    expected = [namespace] if isinstance(namespace, str) else list(namespace)
    if not expected:
        raise ValueError("check_plugin: name the namespace(s) the plugin must claim")
    problems: list[str] = []
    if entry_point is None:
        entry_point, problems = _entry_point(plugin_module, expected[0], distribution)
    if entry_point is None:
        return None, problems
    try:
        catalog = open_catalog(HostSettings(strict_plugins=True), entry_points=[entry_point])
    except PluginLoadFailures as exc:
        return None, [*problems, *(f"the host refuses it: {f.describe()}" for f in exc.failures),
                      *(f"the host refuses it: {c.describe()}" for c in exc.conflicts)]
    except ConflictError as exc:
        return None, [*problems, *(f"the host refuses it: {c.describe()}" for c in exc.conflicts)]
    (contribution,) = catalog.discovery.contributions
    report = PluginReport(contribution.namespaces, contribution.handlers,
                          contribution.template_items, entry_point, catalog)
    returned = [n for result in catalog.manager.hook.tasker_namespaces() for n in result]
    problems += _namespace_problems(returned, expected)
    problems += _registry_problems(report)
    problems += _packaged_directory_problems(plugin_module, package, report.template_items)
    if contexts is not None:
        problems += _sample_problems(report.templates, contexts, simulated)
    return report, problems


# --- the checks ----------------------------------------------------------------------------------
def _entry_point(plugin: Any, name: str, distribution: str | None) -> tuple[Any, list[str]]:
    """The entry point to discover the plugin through, or ``None``, and the problems found."""
    if distribution is None:
        return FakeEntryPoint.of(name, plugin, dist=UNDER_TEST_DISTRIBUTION, version="0+test"), []
    try:
        installed_distribution(distribution)
    except PackageNotFoundError:
        return None, [f"distribution {distribution!r} is not installed (pip install -e it)"]
    wanted = canonicalize_name(distribution)
    group = list(installed_entry_points(group=ENTRY_POINT_GROUP))
    declared = [ep for ep in group if _distribution_of(ep) == wanted]
    loading = [ep for ep in declared if _loads(ep, plugin)]
    if len(loading) != 1:
        found = ", ".join(f"{ep.name} = {ep.value}" for ep in declared) or "none"
        return None, [f"distribution {distribution!r} declares {len(loading) or 'no'} entry point(s) "
                      f"of the group {ENTRY_POINT_GROUP!r} that load {_name_of(plugin)} "
                      f"(declared: {found})"]
    (ep,) = loading
    clashes = sorted({f"{_distribution_of(other)} ({other.name} = {other.value})" for other in group
                      if other.name == ep.name and _distribution_of(other) != wanted})
    if clashes:
        return ep, [f"entry point name {ep.name!r} is also declared by {', '.join(clashes)}"]
    return ep, []


def _distribution_of(ep: Any) -> str | None:
    return canonicalize_name(ep.dist.name) if ep.dist is not None else None


def _loads(ep: Any, plugin: Any) -> bool:
    try:
        return ep.load() is plugin
    except Exception:  # reported as "declares no entry point that loads it"
        return False


def _namespace_problems(namespaces: Sequence[Any], expected: list[str]) -> list[str]:
    problems = []
    names = [getattr(n, "name", n) for n in namespaces]
    if sorted(names) != sorted(expected) or len(set(names)) != len(names):
        problems.append(f"tasker_namespaces() claims {names or 'no namespace'}, expected {expected}")
    for ns in namespaces:
        if not isinstance(ns, Namespace):
            problems.append(f"tasker_namespaces() returns {ns!r}: return Namespace(name, description, "
                            f"owner) values")
        elif not ns.description:
            problems.append(f"namespace {ns.name!r} has no description")
    return problems


def _registry_problems(report: PluginReport) -> list[str]:
    registry = report.registry
    problems = [f"quarantined {q.kind} {q.subject}: {q.reason}" for q in registry.quarantined]
    used = {(t.namespace, s.handler_class) for t in report.templates for s in t.steps}
    used_anywhere = {name for _, name in used}
    problems += [f"handler {key!r} ({cls.__name__}) is used by no template"
                 for key, cls in report.handlers.items()
                 if (key not in used if isinstance(key, tuple) else key not in used_anywhere)]
    loaded = sum(1 for item in report.template_items if isinstance(item, Mapping))
    loaded += sum(len(_yaml_files(item)) for item in report.template_items
                  if not isinstance(item, Mapping))
    if registry.template_count != loaded:
        problems.append(f"{loaded} template document(s) returned by tasker_templates(), "
                        f"{registry.template_count} registered")
    return problems


def _sample_problems(templates: Iterable[TaskTemplate], contexts: Mapping[str, Any],
                     simulated: bool) -> list[str]:
    problems = []
    for t in templates:
        if t.name not in contexts:
            problems.append(f"no sample context for {t.full_name} (contexts has {sorted(contexts)})")
            continue
        sample = contexts[t.name]
        problems += _context_problems(t, sample, "sample context")
        if simulated:
            planned = {**sample, "simulate": {t.steps[0].name: ["unavailable", "ok"]}}
            problems += _context_problems(t, planned, "sample context with a simulate plan")
    return problems


def _context_problems(template: TaskTemplate, context: Mapping[str, Any], what: str = "context"
                      ) -> list[str]:
    if template.context_schema is None:
        return [f"{template.full_name} has no context schema ({template.source})"]
    schema = _plain(template.context_schema)
    errors = sorted(validator_for(schema)(schema).iter_errors(_plain(context)), key=str)
    return [f"{what} rejected by the schema of {template.full_name} at "
            f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors]


def _packaged_directory_problems(plugin: Any, package: str | None, items: Iterable[Any]) -> list[str]:
    package = package if package is not None else _package_of(plugin)
    if not package:
        return []
    try:
        directory = files(package) / "templates"
    except (ModuleNotFoundError, TypeError):
        return [f"package {package!r} cannot be imported"]
    if not directory.is_dir():
        return []
    packaged = [e.name for e in yaml_files_below(directory)]
    for item in items:
        if isinstance(item, Mapping) or not (hasattr(item, "iterdir") and item.is_dir()):
            continue
        if item.name == "templates" and [e.name for e in yaml_files_below(item)] == packaged:
            return []
    return [f"tasker_templates() does not return the package's templates directory "
            f"(importlib.resources.files({package!r}) / \"templates\", files {packaged})"]


# --- small helpers -------------------------------------------------------------------------------
def _yaml_files(item: Any) -> list[Any]:
    """The template files a ``tasker_templates()`` item (a file or a directory) stands for."""
    root = Path(item) if isinstance(item, str) or hasattr(item, "__fspath__") else item
    if root.is_file():
        return [root]
    return yaml_files_below(root) if root.is_dir() else []


def _package_of(plugin: Any) -> str | None:
    if not isinstance(plugin, ModuleType):
        return None
    return plugin.__package__ or None


def _name_of(plugin: Any) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _plain(value: Any) -> Any:
    """Frozen mappings (``MappingProxyType``) as dicts, for jsonschema."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _message(what: str, problems: list[str]) -> str:
    return "\n".join([f"{what} fails the plugin contract ({len(problems)} problem(s)):",
                      *(f"  - {p}" for p in problems)])


__all__ = ["PluginReport", "check_plugin", "plugin_problems"]
