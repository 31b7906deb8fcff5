"""The REST API application: ``create_app(host)`` → a Starlette app serving under ``prefix``.

Lifespan: starts the metrics' count of the store's transitions, makes token revocations reach the token
cache at once where the token store pushes them (PostgreSQL) and, with ``run_worker``, runs
``host.engine.run()`` in the app's task group. Shutdown cancels the engine (it releases the steps
it was running and commits final states before returning), then closes the store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tasker_host import console
from tasker_host.api import audit, events, handlers, health, step_logs, tasks, versions
from tasker_host.api.access_log import AccessLogMiddleware
from tasker_host.api.auth import host_authenticator, require_principal, visible_namespaces, watch_revocations
from tasker_host.api.errors import exception_handlers
from tasker_host.api.metrics import Metrics
from tasker_host.api.openapi import openapi_document
from tasker_host.api.state import Api, Authenticate, WorkerState, api_of
from tasker_host.api.tracing import TracingMiddleware
from tasker_host.engine.supervise import run_supervised
from tasker_host.engine.transition_log import TransitionLog
from tasker_host.errors import ConfigurationError
from tasker_host.host import Host

log = logging.getLogger("tasker_host.api")


async def metrics(request: Request) -> Response:
    """Prometheus text: admins see every namespace's series, other tokens those they may view."""
    api = api_of(request)
    visible = visible_namespaces(api, await require_principal(request))
    return Response(await api.call(api.metrics.render, visible), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> JSONResponse:
    api = api_of(request)
    return JSONResponse(openapi_document(api.prefix, version=_host_version()))


def _host_version() -> str:
    try:
        return version("tasker-host")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def normalize_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip().strip("/")
    return "" if prefix == "/" else prefix


async def _run_worker(api: Api, stop: anyio.Event) -> None:
    """The engine, restarted after a crash (a bug: database outages never stop it); while it
    is down, /health/ready answers 503 with the error."""

    def on_crash(error: BaseException | None) -> None:
        api.worker.running = error is None
        api.worker.error = None if error is None else f"{type(error).__name__}: {error}"

    api.worker.running = True
    try:
        await run_supervised(api.host.engine, stop, grace_seconds=api.worker.grace_seconds, on_crash=on_crash)
    finally:
        api.worker.running = False


def lifespan_for(api: Api) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(api.metrics.start)  # metrics count the store's transitions from now
        unlog = TransitionLog().attach(api.host.events)  # task and step transitions, one line each
        revocations = await anyio.to_thread.run_sync(watch_revocations, api.authenticate, api.host.tokens)
        try:
            async with anyio.create_task_group() as tg:
                stop = anyio.Event()
                if api.worker.enabled:
                    tg.start_soon(_run_worker, api, stop)
                yield
                # claim nothing more; running steps get the grace period, the rest is released
                # and the engine commits final states before the store closes
                stop.set()
        finally:
            unlog()
            if revocations is not None:
                await anyio.to_thread.run_sync(revocations.close)
            await anyio.to_thread.run_sync(api.host.close)
            log.info("tasker API stopped (store closed)")

    return lifespan


def create_app(host: Host, *, prefix: str = "/tasker", run_worker: bool = True, max_body_bytes: int = 1_048_576,
               authenticate: Authenticate | None = None, token_cache_seconds: float = 0.0,
               grace_seconds: float = 0.0, console_secret: str | None = None,
               console_poll_seconds: float = 1.0) -> Starlette:
    """The API for ``host``. ``authenticate`` maps a bearer token to a Principal (None: rejected);
    by default tokens are checked against ``host.tokens`` (issued by ``tasker-host tokens``),
    accepted ones remembered for ``token_cache_seconds``."""
    if max_body_bytes < 1:
        raise ConfigurationError("max_body_bytes must be positive")
    prefix = normalize_prefix(prefix)
    api = Api(host=host, authenticate=authenticate or host_authenticator(host, token_cache_seconds), prefix=prefix,
              max_body_bytes=max_body_bytes, metrics=Metrics(host.store),
              worker=WorkerState(run_worker, grace_seconds=grace_seconds))
    routes = [*tasks.routes(), *events.routes(), *step_logs.routes(), *handlers.routes(), *health.routes(),
              *audit.routes(),
              Route("/metrics", metrics, methods=["GET"]), Route("/openapi.json", openapi, methods=["GET"])]
    routes += versions.routes()  # version lifecycle and drain status
    app = Starlette(routes=[*([Mount(prefix, routes=routes)] if prefix else routes), *console.routes()],
                    middleware=[Middleware(TracingMiddleware, tracing=host.service.tracing),  # outermost
                                Middleware(AccessLogMiddleware, metrics=api.metrics)],
                    exception_handlers={**exception_handlers(), **console.exception_handlers()},
                    lifespan=lifespan_for(api))
    app.state.api = api
    app.state.console = console.make_console(console_secret, console_poll_seconds)  # the web console at /ui
    return app
