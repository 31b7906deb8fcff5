"""The composition root: ``build_host(settings)`` wires plugins, registry, store, engine and
service. The CLI, the API and the tests each build a host with the settings they need."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pluggy
from opentelemetry.trace import TracerProvider

from tasker_host.auth import TokenStore
from tasker_host.collect import build_registry
from tasker_host.contracts.calls import CallFinding, Severity, broken_calls, check_templates, registry_versions
from tasker_host.engine.clock import Clock, RealClock
from tasker_host.engine.config import EngineConfig
from tasker_host.engine.events import EventBus
from tasker_host.engine.invocation import Invoker, LocalRoute, LocalRoutePlugin
from tasker_host.engine.policy import InvocationPolicy
from tasker_host.engine.retry import RetryPolicy
from tasker_host.engine.runner import Engine
from tasker_host.engine.service import TaskService
from tasker_host.engine.signals import Signaller
from tasker_host.engine.tracing import Tracing
from tasker_host.errors import PluginLoadFailures
from tasker_host.plugins import Discovery, EntryPointLike, discover
from tasker_host.registry import ConflictPolicy, Registry
from tasker_host.settings import HostSettings
from tasker_host.store.base import Store
from tasker_host.store.tokens import token_store_for
from tasker_host.templates import TemplateLoader

REMOTE_ROUTE_PLUGIN = "tasker_host.remote_route"


@dataclass(frozen=True)
class Catalog:
    """What the plugins provide, before any start-up policy is applied."""

    discovery: Discovery
    registry: Registry
    # declared calls checked against the callees' contracts (docs/contracts.md); the broken ones
    # are also failures of the calling plugin
    contracts: tuple[CallFinding, ...] = ()

    @property
    def failures(self) -> list:
        return [*self.discovery.failures, *self.registry.failures, *broken_calls(self.contracts)]

    @property
    def contract_warnings(self) -> list[CallFinding]:
        return [f for f in self.contracts if f.severity is Severity.WARNING]


    @property
    def manager(self) -> pluggy.PluginManager:
        return self.discovery.manager


def check_contracts(registry: Registry, settings: HostSettings) -> tuple[CallFinding, ...]:
    """Every declared call of the served templates against the installed callees (calls into
    namespaces served by remote hosts are checked against those hosts by :mod:`remote_contracts`)."""
    templates = [t for versions in registry.templates.values() for t in versions]
    remote = [h.namespace for h in settings.remote_hosts]
    return tuple(check_templates(templates, registry_versions(registry), skip=remote))


def with_remote_contracts(catalog: Catalog, settings: HostSettings, client: Callable[[], Any] | None) -> Catalog:
    """The catalog with the remote hosts' contract findings added (see :mod:`remote_contracts`)."""
    from tasker_host import remote_contracts  # imports httpx: only when remote hosts are configured

    templates = [t for versions in catalog.registry.templates.values() for t in versions]
    found = tuple(remote_contracts.check_remote_calls(templates, settings.remote_hosts,
                                                      client or remote_contracts.default_client))
    if settings.strict_plugins and (broken := broken_calls(found)):
        raise PluginLoadFailures(broken)
    return replace(catalog, contracts=catalog.contracts + found)


def load_catalog(
    settings: HostSettings,
    *,
    entry_points: Iterable[EntryPointLike] | None = None,
    extra_plugins: Iterable[tuple[str, Any]] = (),
) -> Catalog:
    """Discover plugins and build the registry; raises only in strict mode, then with every
    load failure, template problem and (when the policy refuses them) conflict at once."""
    # Loading allocates a great many long-lived objects (YAML nodes, template documents) and no
    # cyclic garbage, so the cyclic GC only re-scans a growing heap: ~12 % of start-up for
    # 5,000 templates, and the part that grows faster than linearly. Pause it for the load.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        discovery = discover(entry_points, extra_plugins=extra_plugins)  # strict: checked below
        registry = build_registry(discovery.contributions, TemplateLoader())
    finally:
        if gc_was_enabled:
            gc.enable()
    catalog = Catalog(discovery, registry, check_contracts(registry, settings))
    if settings.strict_plugins and catalog.failures:
        refused = registry.conflicts if settings.on_conflict is ConflictPolicy.REFUSE else ()
        raise PluginLoadFailures(catalog.failures, refused)
    return catalog


def open_catalog(settings: HostSettings, **kwargs: Any) -> Catalog:
    """A catalog the host may start with: refuses (``ConflictError``) unless quarantining."""
    catalog = load_catalog(settings, **kwargs)
    catalog.registry.check(settings.on_conflict)
    return catalog


def open_store(settings: HostSettings) -> Store:
    """The store the settings name: ``memory`` (no persistence), a URL, or embedded SQLite."""
    from tasker_host.store import open_store as open_url

    url = settings.database_url
    return open_url("memory://" if url == "memory" else url, durable_steps=settings.durable_steps)


@dataclass
class Host:
    settings: HostSettings
    catalog: Catalog
    store: Store
    events: EventBus
    service: TaskService
    engine: Engine
    clock: Clock
    tokens: TokenStore  # API tokens, in the store's database (memory store: in memory)

    @property
    def registry(self) -> Registry:
        return self.catalog.registry

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        return self.catalog.manager

    def close(self) -> None:
        remote = self.plugin_manager.get_plugin(REMOTE_ROUTE_PLUGIN)
        if remote is not None:
            remote.close()
        self.store.close()


def build_host(
    settings: HostSettings | None = None,
    *,
    entry_points: Iterable[EntryPointLike] | None = None,
    extra_plugins: Iterable[tuple[str, Any]] = (),
    store: Store | None = None,
    clock: Clock | None = None,
    engine_config: EngineConfig | None = None,
    policy: RetryPolicy | None = None,
    contracts_client: Callable[[], Any] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Host:
    """Build a whole host: catalog (checked against the conflict policy), store, engine, service.

    With ``remote_hosts``, the declared calls into their namespaces are checked against what
    those hosts publish (``contracts_client`` makes the ``httpx.Client``; tests pass one with a
    ``MockTransport``): a broken one is a plugin failure (fatal under ``strict_plugins``), an
    unreachable host a warning. ``tracer_provider``: where the host's spans go (none: no-op
    spans; see docs/observability.md)."""
    settings = settings or HostSettings()
    catalog = open_catalog(settings, entry_points=entry_points, extra_plugins=extra_plugins)
    if settings.remote_hosts:
        catalog = with_remote_contracts(catalog, settings, contracts_client)
    store = store if store is not None else open_store(settings)
    tokens = token_store_for(store)
    clock = clock or RealClock()
    events = EventBus(catalog.manager)
    tracing = Tracing(tracer_provider)
    engine = Engine(store, catalog.registry, clock, events, config=engine_config or settings.engine,
                    policy=policy, tracing=tracing)
    service = TaskService(catalog.registry, store, clock, events, on_created=engine.on_work,
                          claim_request=engine.claim_request, tracing=tracing)
    engine.invoke = Invoker(catalog.manager)
    invocations = InvocationPolicy.from_rules(settings.allow_invocations, settings.deny_invocations)
    if settings.remote_hosts:  # namespaces served by other hosts: routed before the local route
        from tasker_host.remote import RemoteRoutePlugin  # imports httpx: only when configured

        catalog.manager.register(RemoteRoutePlugin(settings.remote_hosts, tracing=tracing), name=REMOTE_ROUTE_PLUGIN)
    engine.send = Signaller(engine, catalog.manager, invocations)  # ctx.send
    route = LocalRoute(service, engine, catalog.manager, invocations)
    catalog.manager.register(LocalRoutePlugin(route), name="tasker_host.local_route")
    return Host(settings, catalog, store, events, service, engine, clock, tokens=tokens)
