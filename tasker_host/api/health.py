"""Health routes (no authentication):

* ``/health/live`` — 200 while the process serves requests;
* ``/health/ready`` — 200 only when the database answers (within 2 s), at least one plugin
  namespace is loaded, no conflict is unresolved (with ``--on-conflict=quarantine`` they are
  reported, not blocking) and, when this process runs the engine, the engine is running;
  otherwise 503 with the ``reasons``. Plugin load failures and quarantined entries are listed as
  ``warnings``;
* ``/health/status`` — versions, plugins (as ``tasker-host plugins --json``), counts, worker.
"""

from __future__ import annotations

import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tasker_host.api.state import Api, api_of
from tasker_host.registry import ConflictPolicy
from tasker_host.views import plugins_doc

DATABASE_TIMEOUT = 2.0


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _database_problem(api: Api) -> str | None:
    store = api.host.store
    try:
        with anyio.fail_after(DATABASE_TIMEOUT):
            if api.inline:
                store.next_ready_at()
            else:
                await anyio.to_thread.run_sync(store.next_ready_at, abandon_on_cancel=True)
    except TimeoutError:
        return f"database did not answer within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"database error: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _catalog_findings(api: Api) -> tuple[list[str], list[str]]:
    registry, settings = api.host.registry, api.host.settings
    reasons, warnings = [], []
    if not registry.namespaces:
        reasons.append("no plugin namespaces are loaded")
    if registry.conflicts and settings.on_conflict is not ConflictPolicy.QUARANTINE:
        reasons += [f"unresolved conflict: {c.describe()}" for c in registry.conflicts]
    warnings += [f"quarantined: {q.subject} ({q.reason})" for q in registry.quarantined]
    warnings += [f"plugin failure: {f.describe()}" for f in api.host.catalog.failures]
    return reasons, warnings


async def ready(request: Request) -> JSONResponse:
    api = api_of(request)
    reasons, warnings = _catalog_findings(api)
    if (db := await _database_problem(api)) is not None:
        reasons.insert(0, db)
    if api.worker.enabled and not api.worker.running:
        reasons.append(f"worker is not running{': ' + api.worker.error if api.worker.error else ''}")
    body = {"status": "ready" if not reasons else "not_ready", "reasons": reasons, "warnings": warnings}
    return JSONResponse(body, status_code=200 if not reasons else 503)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


async def status(request: Request) -> JSONResponse:
    api = api_of(request)
    host = api.host
    try:
        counts: Any = (await api.call(host.store.count_by_state)).tasks_by_state()
    except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
        counts = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return JSONResponse({
        "versions": {"tasker_host": _version("tasker-host"), "python": platform.python_version()},
        "uptime_seconds": round(time.time() - api.started_at, 3),
        "database": {"dialect": getattr(host.store, "dialect", type(host.store).__name__)},
        "plugins": plugins_doc(host.catalog.discovery, host.registry, host.settings.on_conflict),
        "counts": {"namespaces": len(host.registry.namespaces), "templates": host.registry.template_count,
                   "handlers": len(host.registry.handlers), "tasks": counts},
        "worker": {"enabled": api.worker.enabled, "running": api.worker.running, "error": api.worker.error,
                   "owner": host.engine.config.owner},
    })


def routes() -> list[Route]:
    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/health/status", status, methods=["GET"]),
    ]
