"""Entry-point discovery: load every team plugin on its own, record who failed and why."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points as _installed_entry_points
from typing import Any, Protocol

import pluggy

from tasker_host import hookspecs
from tasker_host.errors import PluginLoadFailures
from tasker_host.handler import StepHandler
from tasker_host.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from tasker_host.models import Namespace, PluginFailure, Provenance

REGISTRATION_HOOKS = ("tasker_namespaces", "tasker_templates", "tasker_step_handlers")


class EntryPointLike(Protocol):
    """What discovery needs of an entry point (``importlib.metadata.EntryPoint`` or a fake)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def dist(self) -> Any: ...

    def load(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """A plugin whose entry point imported and registered cleanly."""

    provenance: Provenance
    obj: Any


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one plugin's registration hooks returned."""

    plugin: LoadedPlugin
    namespaces: tuple[Namespace, ...]
    template_items: tuple[Any, ...]
    handlers: Mapping[Any, type[StepHandler]]


@dataclass(slots=True)
class Discovery:
    """The outcome of discovery: the plugin manager, what loaded, and what failed."""

    manager: pluggy.PluginManager
    contributions: list[Contribution] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)


def new_plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def installed_entry_points() -> list[EntryPointLike]:
    return list(_installed_entry_points(group=ENTRY_POINT_GROUP))


def provenance_of(ep: EntryPointLike) -> Provenance:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or (dist.metadata["Name"] if dist is not None else None)
    version = getattr(dist, "version", None) if dist is not None else None
    return Provenance(f"{ep.name} = {ep.value}", name or "<unknown distribution>", version or "?")


def unique_entry_points(eps: Iterable[EntryPointLike]) -> list[EntryPointLike]:
    """Drop repeats of the same distribution's entry point (e.g. found twice on sys.path).

    Order is deterministic: by distribution name, then entry point name; never by load order.
    """
    seen: dict[tuple[str, str, str], EntryPointLike] = {}
    for ep in eps:
        key = (provenance_of(ep).distribution.lower(), ep.name, ep.value)
        seen.setdefault(key, ep)
    return [seen[k] for k in sorted(seen)]


def discover(
    entry_points: Iterable[EntryPointLike] | None = None,
    *,
    strict: bool = False,
    extra_plugins: Iterable[tuple[str, Any]] = (),
) -> Discovery:
    """Load, register and call the registration hooks of every plugin.

    ``extra_plugins`` are (name, object) pairs registered as built-in plugins of the host.
    In ``strict`` mode any failure raises :class:`PluginLoadFailures` listing all of them.
    """
    eps = installed_entry_points() if entry_points is None else list(entry_points)
    found = Discovery(manager=new_plugin_manager())
    for name, obj in extra_plugins:
        found.manager.register(obj, name=name)
    for ep in unique_entry_points(eps):
        _load_one(found, ep)
    if strict and found.failures:
        raise PluginLoadFailures(found.failures)
    return found


def _load_one(found: Discovery, ep: EntryPointLike) -> None:
    prov = provenance_of(ep)

    def fail(stage: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        found.failures.append(
            PluginFailure(prov.entry_point, prov.distribution, prov.distribution_version, stage, text)
        )

    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's import error must not stop the others
        return fail("import", exc)
    if problems := hook_name_problems(obj):
        return fail("register", "; ".join(problems))
    plugin_name = f"{prov.distribution}:{ep.name}"
    try:
        found.manager.register(obj, name=plugin_name)
    except Exception as exc:  # pluggy validation (bad argument names, ...)
        return fail("register", exc)
    plugin = LoadedPlugin(prov, obj)
    try:
        found.contributions.append(_collect(found.manager, plugin, plugin_name))
    except _HookFailed as failed:
        found.manager.unregister(name=plugin_name)
        fail(failed.stage, failed.cause)


class _HookFailed(Exception):
    def __init__(self, stage: str, cause: BaseException | str):
        super().__init__(stage)
        self.stage, self.cause = stage, cause


def hook_name_problems(obj: Any) -> list[str]:
    """Misspelled ``tasker_*`` hooks and hook functions missing the ``@hookimpl`` marker."""
    known = {n for n in dir(hookspecs) if n.startswith("tasker_")}
    problems = []
    for attr in sorted(a for a in dir(obj) if a.startswith("tasker_")):
        value = getattr(obj, attr, None)
        if not callable(value) or inspect.isclass(value):
            continue
        if attr not in known:
            close = difflib.get_close_matches(attr, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"unknown hook {attr}{hint}")
        elif not hasattr(value, f"{PROJECT_NAME}_impl"):
            problems.append(f"{attr} is not marked with @tasker_host.hookimpl")
    return problems


def _call(manager: pluggy.PluginManager, plugin_name: str, hook: str) -> list[Any]:
    impls = [i for i in getattr(manager.hook, hook).get_hookimpls() if i.plugin_name == plugin_name]
    results = []
    for impl in impls:
        try:
            result = impl.function()
        except Exception as exc:
            raise _HookFailed(f"hook:{hook}", exc) from exc
        if result is not None:
            results.append(result)
    return results


def _collect(manager: pluggy.PluginManager, plugin: LoadedPlugin, name: str) -> Contribution:
    namespaces = tuple(_as_namespace(n) for r in _call(manager, name, "tasker_namespaces") for n in r)
    items = tuple(item for r in _call(manager, name, "tasker_templates") for item in _items(r))
    handlers: dict[Any, type[StepHandler]] = {}
    for mapping in _call(manager, name, "tasker_step_handlers"):
        handlers.update(_check_handlers(mapping))
    return Contribution(plugin, namespaces, items, handlers)


def _items(result: Any) -> Iterable[Any]:
    if isinstance(result, (str, Mapping)) or hasattr(result, "iterdir"):
        return (result,)
    return result


def _as_namespace(value: Any) -> Namespace:
    if isinstance(value, Namespace):
        return value
    if isinstance(value, str):
        return Namespace(value)
    raise _HookFailed("hook:tasker_namespaces", f"expected Namespace or str, got {value!r}")


def _check_handlers(mapping: Any) -> Mapping[Any, type[StepHandler]]:
    stage = "hook:tasker_step_handlers"
    if not isinstance(mapping, Mapping):
        raise _HookFailed(stage, f"expected a mapping of handler name to class, got {mapping!r}")
    for key, cls in mapping.items():
        if not (inspect.isclass(cls) and issubclass(cls, StepHandler)):
            raise _HookFailed(stage, f"handler {key!r} is not a StepHandler subclass: {cls!r}")
        if not (isinstance(key, str) or _is_qualified_key(key)):
            raise _HookFailed(stage, f"handler key {key!r} must be a str or (namespace, name)")
    return mapping


def _is_qualified_key(key: Any) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)


