"""Drain status per ``namespace.name@version`` (``tasker-host versions``, ``GET /versions...``)
and what still needs a distribution (``tasker-host drain-check``). Pure: the counts come from
``Store.version_stats`` (one consistent snapshot, exact), the lifecycle fields from the registry.

A version is **drained** when no task of it is pending, in progress (which includes tasks waiting
on a child task) or in error (failed, awaiting a retry, a manual resolution or a cancellation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from packaging.version import InvalidVersion, Version

from tasker_host import lifecycle
from tasker_host.models import TaskState, TaskTemplate
from tasker_host.registry import Registry
from tasker_host.store.base import TaskRecord
from tasker_host.store.version_stats import VersionKey, VersionStats
from tasker_host.views import iso

DAY = 86_400.0
DEFAULT_DAYS = 30
MAX_DAYS = 3_650
OTHERS = "other namespaces"  # callers the viewer may not see, counted together


def versions_doc(registry: Registry, stats: VersionStats, *, days: int, now: float,
                 namespaces: Iterable[str], name: str | None = None,
                 sees: Callable[[str], bool] = lambda ns: True) -> dict[str, Any]:
    """Every version of the ``namespaces`` (only template ``name`` if given) that is installed or
    has tasks, with its lifecycle and drain status. ``sees``: may the viewer see that caller's name."""
    wanted = set(namespaces)
    installed = {_key(t): t for ns in wanted for t in registry.templates_in(ns) if name is None or t.name == name}
    recorded = {k for k in stats.versions() if k[0] in wanted and (name is None or k[1] == name)}
    today = lifecycle.day_of(now)
    rows = [_row(key, installed.get(key), stats, registry, today, sees) for key in sorted(set(installed) | recorded,
                                                                                         key=_order)]
    return {"days": days, "since": iso(now - days * DAY), "versions": rows}


def _key(t: TaskTemplate) -> VersionKey:
    return (t.namespace, t.name, str(t.version))


def _order(key: VersionKey) -> tuple[Any, ...]:
    try:
        return (key[0], key[1], 0, Version(key[2]), "")
    except InvalidVersion:
        return (key[0], key[1], 1, None, key[2])


def _row(key: VersionKey, t: TaskTemplate | None, stats: VersionStats, registry: Registry, today: Any,
         sees: Callable[[str], bool]) -> dict[str, Any]:
    ns, name, version = key
    counts = {s.value: stats.by_status.get((*key, s.value), 0) for s in TaskState}
    started: Counter[str] = Counter()
    for (cns, cname, cversion, caller), n in stats.started_by.items():
        if (cns, cname, cversion) == key:
            started[caller if caller == "direct" or sees(caller) else OTHERS] += n
    replacement = registry.replacement(ns, name, t.replaced_by, today) if t is not None else None
    unfinished = counts["pending"] + counts["in_progress"] + counts["error"]
    return {
        "namespace": ns, "name": name, "version": version, "full_name": f"{ns}.{name}@{version}",
        "installed": t is not None,
        "deprecated": t.deprecated if t is not None else None,
        "replaced_by": t.replaced_by if t is not None else None,
        "replacement": replacement.full_name if replacement is not None else None,
        "sunset": t.sunset.isoformat() if t is not None and t.sunset else None,
        "sunset_reached": bool(t is not None and t.sunset_reached(today)),
        "tasks": {"pending": counts["pending"], "in_progress": counts["in_progress"],
                  "waiting_on_children": stats.waiting_on_child.get(key, 0), "error": counts["error"],
                  "complete": counts["complete"], "cancelled": counts["cancelled"],
                  "resolved_manually": counts["resolved_manually"]},
        "drained": unfinished == 0,
        "last_started_at": iso(stats.last_created.get(key)),
        "started_by": dict(sorted(started.items())),
    }


# --- drain-check ----------------------------------------------------------------------------------
def handler_namespaces(registry: Registry, distribution: str) -> dict[str, set[str]]:
    """Namespace → the handler names ``distribution`` provides there."""
    found: dict[str, set[str]] = {}
    for (ns, handler), entry in registry.handlers.items():
        if entry.provenance.distribution == distribution:
            found.setdefault(ns, set()).add(handler)
    return found


def provides_anything(registry: Registry, distribution: str) -> bool:
    return (any(e.provenance.distribution == distribution for e in registry.namespaces.values())
            or any(e.provenance.distribution == distribution for e in registry.handlers.values())
            or any(t.provenance is not None and t.provenance.distribution == distribution
                   for ts in registry.templates.values() for t in ts))


def needing(tasks: Sequence[TaskRecord], distribution: str, handlers: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The unfinished tasks (candidates from ``Store.unfinished_using``) that need ``distribution``:
    their template came from it, or one of their steps uses a handler it provides."""
    found = []
    for task in tasks:
        why = []
        if (task.provenance or {}).get("distribution") == distribution:
            why.append("template")
        used = sorted({s.get("handler_class", "") for s in task.template.get("steps", ())
                       if isinstance(s, dict)} & handlers.get(task.namespace, set()))
        if used:
            why.append("handlers " + ", ".join(used))
        if why:
            found.append({"id": task.id, "full_name": task.full_name, "status": task.status.value,
                          "created_at": iso(task.created_at), "needs": why})
    return found


def drain_check(registry: Registry, store: Any, distribution: str) -> dict[str, Any]:
    """``tasker-host drain-check``'s document: may ``distribution`` be uninstalled now?"""
    handlers = handler_namespaces(registry, distribution)
    blocking = needing(store.unfinished_using(distribution, sorted(handlers)), distribution, handlers)
    return {"distribution": distribution, "installed": provides_anything(registry, distribution),
            "safe_to_uninstall": not blocking, "tasks": blocking}
