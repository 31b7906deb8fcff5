"""Per template version (``namespace.name@version``): tasks by status, the last start, tasks
waiting on a child task, which namespaces call it (from the parent links recorded by
``ctx.invoke``) and who started it since a given time (``caller_namespace``; ``direct`` for tasks
created through the API or the CLI). The drain status of the console's versions page and of
``tasker-host versions``: exact counts read in one consistent snapshot, never a periodic refresh.
The SQL store aggregates in the database (``store/sql/version_stats.py``), the memory store with
:func:`stats_of` over its records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tasker_host.models import TaskState
from tasker_host.store.base import UNFINISHED, TaskRecord

VersionKey = tuple[str, str, str]  # namespace, name, version
LIVE = (TaskState.PENDING.value, TaskState.IN_PROGRESS.value)
DIRECT = "direct"  # the caller of a task no other task started (API, CLI, console)


@dataclass
class VersionStats:
    by_status: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # key + status → tasks
    last_created: dict[VersionKey, float] = field(default_factory=dict)
    waiting_on_child: Counter[VersionKey] = field(default_factory=Counter)  # live tasks with a live child
    # key + caller namespace → tasks (all time; the caller_namespace recorded by ctx.invoke)
    callers: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    # key + caller namespace (or DIRECT) → tasks created since ``since`` (only when it was given)
    started_by: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def versions(self) -> list[VersionKey]:
        return sorted({k[:3] for k in self.by_status})


def stats_of(tasks: Iterable[TaskRecord], namespaces: Sequence[str] | None,
             since: float | None = None) -> VersionStats:
    """The same aggregation over task records (the memory store)."""
    everything: Mapping[str, TaskRecord] = {t.id: t for t in tasks}
    wanted = None if namespaces is None else set(namespaces)
    stats = VersionStats()
    for t in everything.values():
        if wanted is not None and t.namespace not in wanted:
            continue
        key = (t.namespace, t.name, t.version)
        stats.by_status[(*key, t.status.value)] += 1
        stats.last_created[key] = max(stats.last_created.get(key, t.created_at), t.created_at)
        if t.caller_namespace is not None:
            stats.callers[(*key, t.caller_namespace)] += 1
        if since is not None and t.created_at >= since:
            stats.started_by[(*key, t.caller_namespace or DIRECT)] += 1
    waiting = {t.parent_task_id for t in everything.values() if t.parent_task_id and t.status.value in LIVE}
    for parent_id in waiting:
        p = everything.get(parent_id or "")
        if p is not None and p.status.value in LIVE and (wanted is None or p.namespace in wanted):
            stats.waiting_on_child[(p.namespace, p.name, p.version)] += 1
    return stats


def using(tasks: Iterable[TaskRecord], distribution: str, namespaces: Sequence[str]) -> Iterator[TaskRecord]:
    """``Store.unfinished_using`` over task records (the memory store), oldest first."""
    wanted = set(namespaces)
    found = [t for t in tasks if t.status in UNFINISHED and (
        t.namespace in wanted or (t.provenance or {}).get("distribution") == distribution)]
    yield from sorted(found, key=lambda t: (t.created_at, t.id))
