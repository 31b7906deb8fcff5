"""Health routes (no token needed; details only with an admin token):

* ``/health/live`` — 200 while the process serves requests;
* ``/health/ready`` — 200 only when the database answers (within 2 s), at least one plugin
  namespace is loaded, no conflict is unresolved (with ``--on-conflict=quarantine`` they are
  reported, not blocking) and, when this process runs the engine, the engine is running;
  otherwise 503. The body names the failing checks coarsely (``failing``: ``database``,
  ``plugins``, ``conflicts``, ``worker``); with an admin token it adds the ``reasons`` and the
  ``warnings`` (plugin load failures, quarantined entries) in full;
* ``/health/status`` — without an admin token only ``status: up``, ``ready`` and ``failing``;
  with one also versions, plugins (as ``tasker-host plugins --json``), counts, worker.

A request with a token that is not accepted is a 401, as on every other route: details name
distributions, versions, namespaces and database errors, which are nobody else's business.
"""

from __future__ import annotations

import enum
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tasker_host.api.auth import optional_principal
from tasker_host.api.state import Api, api_of
from tasker_host.auth import Principal
from tasker_host.registry import ConflictPolicy
from tasker_host.views import plugins_doc

DATABASE_TIMEOUT = 2.0


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _database_problem(api: Api) -> str | None:
    probe = api.host.service.next_ready_at
    try:
        with anyio.fail_after(DATABASE_TIMEOUT):
            if api.inline:
                probe()
            else:
                await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    except TimeoutError:
        return f"database did not answer within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"database error: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


class Check(enum.StrEnum):
    """A readiness check, as named to callers without a token."""

    DATABASE = "database"
    PLUGINS = "plugins"
    CONFLICTS = "conflicts"
    WORKER = "worker"


@dataclass
class Readiness:
    failing: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fail(self, check: Check, reason: str) -> None:
        if check not in self.failing:
            self.failing.append(check)
        self.reasons.append(reason)

    def doc(self, detailed: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": "not_ready" if self.failing else "ready",
                               "failing": [c.value for c in self.failing]}
        return {**doc, "reasons": self.reasons, "warnings": self.warnings} if detailed else doc


async def readiness(api: Api) -> Readiness:
    found = Readiness()
    if (db := await _database_problem(api)) is not None:
        found.fail(Check.DATABASE, db)
    registry, settings = api.host.registry, api.host.settings
    if not registry.namespaces:
        found.fail(Check.PLUGINS, "no plugin namespaces are loaded")
    if registry.conflicts and settings.on_conflict is not ConflictPolicy.QUARANTINE:
        for c in registry.conflicts:
            found.fail(Check.CONFLICTS, f"unresolved conflict: {c.describe()}")
    if api.worker.enabled and not api.worker.running:
        found.fail(Check.WORKER, f"worker is not running{': ' + api.worker.error if api.worker.error else ''}")
    found.warnings += [f"quarantined: {q.subject} ({q.reason})" for q in registry.quarantined]
    found.warnings += [f"plugin failure: {f.describe()}" for f in api.host.catalog.failures]
    found.warnings += [f"contract: {f.describe()}" for f in api.host.catalog.contract_warnings]
    return found


async def ready(request: Request) -> JSONResponse:
    api = api_of(request)
    detailed = _whole_host_viewer(await optional_principal(request))
    found = await readiness(api)
    return JSONResponse(found.doc(detailed), status_code=503 if found.failing else 200)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


async def status(request: Request) -> JSONResponse:
    api = api_of(request)
    detailed = _whole_host_viewer(await optional_principal(request))
    found = await readiness(api)
    doc = {"status": "up", "ready": not found.failing, "failing": [c.value for c in found.failing]}
    if not detailed:
        return JSONResponse(doc)
    host = api.host
    try:
        counts: Any = (await api.call(host.service.count_by_state)).tasks_by_state()
    except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
        counts = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return JSONResponse({
        **doc, "reasons": found.reasons, "warnings": found.warnings,
        "versions": {"tasker_host": _version("tasker-host"), "python": platform.python_version()},
        "uptime_seconds": round(time.time() - api.started_at, 3),
        "database": {"dialect": getattr(host.store, "dialect", type(host.store).__name__)},
        "plugins": plugins_doc(host.catalog.discovery, host.registry, host.settings.on_conflict,
                               host.catalog.contracts),
        "counts": {"namespaces": len(host.registry.namespaces), "templates": host.registry.template_count,
                   "handlers": len(host.registry.handlers), "tasks": counts},
        "worker": {"enabled": api.worker.enabled, "running": api.worker.running, "error": api.worker.error,
                   "owner": host.engine.config.owner},
    })


def _whole_host_viewer(principal: Principal | None) -> bool:
    """Details name every team's distributions, namespaces and errors: an admin's business only
    (a team token gets the anonymous answer; its own namespaces are in the catalogue routes)."""
    return principal is not None and principal.admin


def routes() -> list[Route]:
    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/health/status", status, methods=["GET"]),
    ]
