"""The console's read-only pages: namespaces overview, task list, task page, plugins.
Server-rendered and readable without JavaScript; htmx only refreshes parts of them live."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tasker_host.api.state import Api, api_of
from tasker_host.auth import Action
from tasker_host.console import live, task_view
from tasker_host.console.access import PageError, Viewer, console_of, may_do, viewable_namespaces, viewer, visible_task
from tasker_host.console.listing import PAGE_SIZE, parse_list_query
from tasker_host.models import TaskState
from tasker_host.store.base import TaskFilter
from tasker_host.views import iso, plugins_doc

RECENT_FAILURES = 5
MAX_CHILDREN = 200


def render(request: Request, who: Viewer | None, template: str, status_code: int = 200, **context: Any) -> Response:
    context.update(request=request, who=who, iso=iso, duration=task_view.duration,
                   notice=request.query_params.get("notice"))
    return console_of(request).templates.TemplateResponse(request, template, context, status_code=status_code)


async def status_counts(api: Api, who: Viewer) -> tuple[dict[str, Counter[str]], str]:
    """Tasks by status per namespace the viewer may see (none of the others is even counted),
    and their fingerprint for the live stream."""
    counts = await api.call(api.host.store.count_by_state)
    found: dict[str, Counter[str]] = {}
    for (namespace, status), n in counts.tasks.items():
        if who.sees(namespace):
            found.setdefault(namespace, Counter())[status] += n
    return found, live.counts_fingerprint(counts, who)


async def overview(request: Request) -> Response:
    api, who = api_of(request), await viewer(request)
    registry, (counts, seen) = api.host.registry, await status_counts(api, who)
    namespaces = []
    for ns in viewable_namespaces(api, who):
        entry = registry.namespaces[ns]
        failures = await api.call(api.host.store.list_tasks, TaskFilter(
            namespaces=[ns], status=TaskState.ERROR, limit=RECENT_FAILURES, newest_first=True))
        namespaces.append({"name": ns, "entry": entry, "templates": registry.templates_in(ns),
                           "counts": counts.get(ns, Counter()), "failures": failures})
    return render(request, who, "overview.html", namespaces=namespaces, states=[s.value for s in TaskState],
                  seen=seen)


async def task_list(request: Request) -> Response:
    api, who = api_of(request), await viewer(request)
    query = parse_list_query(request.query_params)
    if query.problems:
        raise PageError(400, "Invalid filters", "; ".join(query.problems))
    wanted = query.values.get("namespace")
    namespaces = [wanted] if wanted else who.visible
    if wanted and not who.sees(wanted):
        namespaces = []  # as the API: another team's namespace lists nothing
    found = [] if namespaces == [] else await api.call(
        api.host.store.list_tasks, query.task_filter(namespaces, PAGE_SIZE + 1))
    page = found[:PAGE_SIZE]
    totals: Counter[str] = Counter()
    counts, seen = await status_counts(api, who)
    for ns, c in counts.items():
        if not wanted or ns == wanted:
            totals.update(c)
    next_url = query.url(after=page[-1].id) if len(found) > PAGE_SIZE else None
    return render(request, who, "tasks.html", tasks=page, query=query, next_url=next_url, totals=totals,
                  namespaces=viewable_namespaces(api, who), states=[s.value for s in TaskState], seen=seen)


async def task_page(request: Request) -> Response:
    api, who = api_of(request), await viewer(request)
    task = await visible_task(api, who, request.path_params["task_id"])
    transitions = await api.call(api.host.store.transitions, task.id)
    logs = await api.call(api.host.store.step_logs, task.id)
    children = await api.call(api.host.store.list_tasks, TaskFilter(parent_task_id=task.id, limit=MAX_CHILDREN))
    parent = None
    if task.parent_task_id:
        found = await api.call(api.host.store.get_task, task.parent_task_id, with_steps=False)
        parent = found if found is not None and who.sees(found.namespace) else None
    ns = task.namespace
    return render(request, who, "task.html", task=task, seen=live.task_fingerprint(task),
                  rows=task_view.step_rows(task, transitions, time.time(), logs),
                  dag=task_view.dag(task), context_json=task_view.pretty(dict(task.context)),
                  error_json=task_view.pretty(dict(task.error)) if task.error else None,
                  children=[c for c in children if who.sees(c.namespace)], parent=parent,
                  may_cancel=may_do(api, who, Action.CANCEL, ns) and task.status not in task_view.FINAL_TASK,
                  may_retry=may_do(api, who, Action.RETRY, ns) and task.status is TaskState.ERROR,
                  may_resolve=may_do(api, who, Action.RESOLVE, ns),
                  may_signal=may_do(api, who, Action.SIGNAL, ns) and task.status not in task_view.FINAL_TASK)


async def plugins_page(request: Request) -> Response:
    """Admins see everything ``tasker-host plugins`` shows; others the distributions that serve
    a namespace they may see (failures and conflicts name other teams' namespaces: admins only)."""
    api, who = api_of(request), await viewer(request)
    host = api.host
    doc = plugins_doc(host.catalog.discovery, host.registry, host.settings.on_conflict)
    if who.visible is not None:
        dists = []
        for d in doc["distributions"]:
            mine = [ns for ns in d["namespaces"] if who.sees(ns)]
            if mine and len(mine) == len(d["namespaces"]):
                dists.append(d)
        doc = {**doc, "distributions": dists, "failures": None, "conflicts": None, "quarantined": None}
    return render(request, who, "plugins.html", doc=doc)


async def versions_page(request: Request) -> Response:
    """Per ``namespace.name@version``: live work, the last start, deprecation notes and the
    namespaces that call it (another team's name only where the viewer may see it)."""
    api, who = api_of(request), await viewer(request)
    stats = await api.call(api.host.store.version_stats, who.visible)
    registry = api.host.registry
    registered = {(t.namespace, t.name, str(t.version)): t for ns in viewable_namespaces(api, who)
                  for t in registry.templates_in(ns)}
    rows = []
    for key in sorted(set(registered) | set(stats.versions())):
        callers: Counter[str] = Counter()
        for (ns, name, version, caller), n in stats.callers.items():
            if (ns, name, version) == key:
                callers[caller if who.sees(caller) else "other namespaces"] += n
        rows.append({"key": key, "template": registered.get(key),
                     "counts": {s.value: stats.by_status.get((*key, s.value), 0) for s in TaskState},
                     "waiting": stats.waiting_on_child.get(key, 0), "last": stats.last_created.get(key),
                     "callers": sorted(callers.items())})
    return render(request, who, "versions.html", rows=rows)
