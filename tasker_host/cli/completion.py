"""Shell completion (click's) for the arguments naming namespaces and workflows. It reads the
plugin catalogue only (never the database) and completes nothing when the catalogue cannot load.

    eval "$(_TASKER_HOST_COMPLETE=bash_source tasker-host)"     # zsh_source / fish_source likewise
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem

from tasker_host.errors import TaskerError
from tasker_host.registry import Registry
from tasker_host.settings import HostSettings


def _registry(ctx: click.Context) -> Registry | None:
    from tasker_host.cli.state import CliState
    from tasker_host.host import load_catalog

    state = ctx.find_object(CliState)
    try:  # completion parses without running the group's callback: settings from the environment
        settings = HostSettings.from_env()
        return load_catalog(settings, entry_points=state.entry_points if state else None).registry
    except (TaskerError, OSError):
        return None


def complete_namespace(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    registry = _registry(ctx)
    if registry is None:
        return []
    return [CompletionItem(ns, help=registry.namespaces[ns].namespace.description or None)
            for ns in sorted(registry.namespaces) if ns.startswith(incomplete)]


def complete_name(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """A workflow name of the namespace given before it (``handlers NAMESPACE NAME``)."""
    registry, namespace = _registry(ctx), ctx.params.get("namespace")
    if registry is None or not isinstance(namespace, str) or namespace not in registry.namespaces:
        return []
    names = sorted({t.name for t in registry.templates_in(namespace)})
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_reference(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``NAMESPACE.NAME`` (and ``NAMESPACE.NAME@VERSION`` once the name is complete)."""
    registry = _registry(ctx)
    if registry is None:
        return []
    found: list[Any] = []
    for ns in sorted(registry.namespaces):
        for t in registry.templates_in(ns):
            found += [f"{ns}.{t.name}", f"{ns}.{t.name}@{t.version}"]
    bare = [r for r in dict.fromkeys(found) if r.startswith(incomplete)]
    if "@" not in incomplete:
        bare = [r for r in bare if "@" not in r] or bare
    return [CompletionItem(r) for r in bare]
