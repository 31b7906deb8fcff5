"""Calls between hosts: ``ctx.invoke`` on a namespace that host configuration maps to another
tasker-host (``TASKER_REMOTE_HOSTS``, see docs/remote.md) is delivered over that host's REST API.

The caller's code is the same as for a local call. :class:`RemoteRoutePlugin` answers the
``tasker_route_invocation`` hook for the mapped namespaces (before the built-in in-process route,
which is ``trylast``). :class:`RemoteRoute` creates the child with ``POST {base}/tasks`` under an
idempotency key made of the calling task's id and the call's invocation key, so a re-run of the
calling step re-attaches to the same remote child; with ``wait`` it then polls
``GET {base}/tasks/{id}`` until the child is final. Failures are classified for the engine's
retry rules by :func:`http_error`: a request the remote host refuses is permanent, an unavailable
host is retried (``Retry-After`` honoured).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import anyio.lowlevel
import httpx
from opentelemetry.trace import Status, StatusCode

from tasker_host.context import InvocationResult
from tasker_host.engine.tracing import Tracing, traceparent_of
from tasker_host.errors import PermanentError, RetryableError, StepError
from tasker_host.markers import hookimpl
from tasker_host.settings import RemoteHost

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.engine.invocation import InvocationRequest

log = logging.getLogger("tasker_host.remote")

FINAL_STATUSES = frozenset({"complete", "error", "cancelled", "resolved_manually"})
CREATED_HTTP = frozenset({200, 201})  # 201: created; 200: the idempotency key matched an existing task
PERMANENT_HTTP = frozenset({400, 401, 403, 404, 409, 410, 422})  # everything else is retried (410: sunset)
MESSAGE_LIMIT = 500
MAX_IDEMPOTENCY_KEY = 200  # the API's limit for the Idempotency-Key header

Sleep = Callable[[float], Awaitable[None]]
ClientFactory = Callable[[], httpx.AsyncClient]
Now = Callable[[], float]


def default_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """Bounded exponential poll interval: ``first`` seconds, times ``factor``, at most ``ceiling``."""

    first: float = 0.05
    factor: float = 2.0
    ceiling: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.ceiling)


def idempotency_key(request: InvocationRequest) -> str:
    """The same for every re-run of the calling step's n-th call: the remote host re-attaches.
    Readable (``<task id>:<step>#<n>``) unless too long for the API; then the call part is hashed."""
    key = f"{request.caller.id}:{request.invocation_key}"
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return f"{request.caller.id}:{hashlib.sha256(request.invocation_key.encode()).hexdigest()[:40]}"


# -- classification --------------------------------------------------------------------------


def http_error(response: httpx.Response, what: str, now: float | None = None) -> StepError:
    """400/401/403/404/409/410/422: :class:`PermanentError`; any other status: :class:`RetryableError`
    (``retry_after`` from the ``Retry-After`` header, seconds or HTTP date, when present)."""
    status = response.status_code
    message = error_message(response)
    text = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    if status in PERMANENT_HTTP:
        return PermanentError(text)
    wait = retry_after(response.headers.get("Retry-After"), time.time() if now is None else now)
    return RetryableError(text, retry_after=wait)


def error_message(response: httpx.Response) -> str:
    """The message of a JSON error body (``message``, ``error``, ``detail``, nested), else its text."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()[:MESSAGE_LIMIT]
    while isinstance(body, Mapping):
        key = next((k for k in ("message", "error", "detail") if body.get(k)), None)
        if key is None:
            break
        body = body[key]
    return (body if isinstance(body, str) else json.dumps(body))[:MESSAGE_LIMIT]


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- the HTTP client -------------------------------------------------------------------------


class SharedClient:
    """The plugin's one ``httpx.AsyncClient``, created on first use and bound to the event loop
    that created it (a host later driven by another event loop gets a fresh client)."""

    def __init__(self, factory: ClientFactory):
        self._factory = factory
        self._client: httpx.AsyncClient | None = None
        self._loop: Any = None

    def get(self) -> httpx.AsyncClient:
        loop = anyio.lowlevel.current_token()
        if self._client is None or self._loop != loop:
            self._client, self._loop = self._factory(), loop
        return self._client

    def _take(self) -> tuple[httpx.AsyncClient | None, Any]:
        taken = self._client, self._loop
        self._client = self._loop = None
        return taken

    async def aclose(self) -> None:
        client, loop = self._take()
        if client is not None and loop == anyio.lowlevel.current_token():
            await client.aclose()

    def close(self) -> None:
        """From synchronous code (``Host.close``): closes the client on its event loop while that
        loop still runs; once the loop is over nothing can be awaited on it and it is dropped."""
        client, loop = self._take()
        native = getattr(loop, "native_token", None)
        if client is not None and isinstance(native, asyncio.AbstractEventLoop) and native.is_running():
            asyncio.run_coroutine_threadsafe(client.aclose(), native)


# -- the route ---------------------------------------------------------------------------------


class RemoteRoute:
    """Delivers calls to one remote host: create (idempotently), then poll until final."""

    def __init__(self, remote: RemoteHost, client: SharedClient, *, sleep: Sleep = anyio.sleep,
                 poll: PollSchedule = PollSchedule(), now: Now = time.time, tracing: Tracing | None = None):
        self.remote, self.client, self.sleep, self.poll, self.now = remote, client, sleep, poll, now
        self.tracing = tracing or Tracing()  # a client span per request (the host's provider)

    async def deliver(self, request: InvocationRequest) -> InvocationResult:
        doc = await self._create(request)
        if request.wait:
            doc = await self._wait(doc, request)
        return self._result(doc, request)

    async def send_event(self, request: InvocationRequest, task_id: str, event: str, payload: Any) -> dict[str, Any]:
        """``ctx.send`` to a task of this host: ``POST {base}/tasks/{id}/events/{name}`` under the
        call's key (``request.invocation_key``: a re-run sends nothing twice); the stored event."""
        path = f"/tasks/{quote(task_id, safe='')}/events/{quote(event, safe='')}"
        headers = {**self._headers(request), "Idempotency-Key": request.invocation_key[:MAX_IDEMPOTENCY_KEY]}
        response = await self._call("POST", path, request, "/tasks/{task_id}/events/{name}", json=payload,
                                    headers=headers)
        if response.status_code not in CREATED_HTTP:
            raise self._refused(response, f"sending event {event} to task {task_id}")
        doc = response.json()
        if not isinstance(doc, dict):
            raise PermanentError(f"host {self.remote.base_url} answered an event without a document")
        return doc

    async def _create(self, request: InvocationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"namespace": request.namespace, "name": request.name,
                                "context": dict(request.context)}
        if request.version is not None:
            body["version"] = request.version
        headers = {**self._headers(request), "Idempotency-Key": idempotency_key(request)}
        response = await self._call("POST", "/tasks", request, "/tasks", json=body, headers=headers)
        if response.status_code not in CREATED_HTTP:
            raise self._refused(response, f"creating {request.namespace}.{request.name}")
        doc = self._document(response)
        log.info("remote child task %s (%s) on %s is %s [correlation %s]", doc["id"],
                 doc.get("full_name", request.namespace), self.remote.base_url, doc["status"],
                 request.correlation_id, extra=self._log_extra(request))
        return doc

    async def _wait(self, doc: dict[str, Any], request: InvocationRequest) -> dict[str, Any]:
        delays = self.poll.delays()
        path = f"/tasks/{quote(str(doc['id']), safe='')}"
        while doc["status"] not in FINAL_STATUSES:
            await self.sleep(next(delays))
            response = await self._call("GET", path, request, "/tasks/{task_id}", headers=self._headers(request))
            if response.status_code != 200:
                raise self._refused(response, f"polling remote child task {doc['id']}")
            doc = self._document(response)
        if doc["status"] != "complete":
            raise PermanentError(self._ended(doc, request))
        return doc

    async def _call(self, method: str, path: str, request: InvocationRequest, route: str, **kw: Any,
                    ) -> httpx.Response:
        url = self.remote.base_url + path
        with self.tracing.calling(method, url, route, request.traceparent) as span:
            if (traceparent := traceparent_of(span)) is not None:  # the remote side's parent: this call
                kw["headers"] = {**kw.get("headers", {}), "traceparent": traceparent}
            response = await self._send(method, url, path, request, **kw)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return response

    async def _send(self, method: str, url: str, path: str, request: InvocationRequest, **kw: Any,
                    ) -> httpx.Response:
        try:
            response = await self.client.get().request(method, url, **kw)
        except httpx.RequestError as exc:  # connection refused, timeouts, broken responses
            log.warning("%s %s failed: %s: %s [correlation %s]", method, url, type(exc).__name__, exc,
                        request.correlation_id, extra=self._log_extra(request))
            raise RetryableError(f"cannot reach host {self.remote.base_url} ({method} {path}): "
                                 f"{type(exc).__name__}: {exc}") from exc
        log.info("%s %s -> HTTP %s [correlation %s]", method, url, response.status_code,
                 request.correlation_id, extra=self._log_extra(request))
        return response

    def _headers(self, request: InvocationRequest) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.remote.token}", "Accept": "application/json"}
        if request.correlation_id.isascii() and request.correlation_id.isprintable():  # a valid header value
            headers["X-Correlation-Id"] = request.correlation_id
        return headers  # (and traceparent: added per call, see _call)

    def _refused(self, response: httpx.Response, action: str) -> StepError:
        return http_error(response, f"host {self.remote.base_url} answered {action}", self.now())

    def _document(self, response: httpx.Response) -> dict[str, Any]:
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not isinstance(doc.get("status"), str):
            raise PermanentError(f"host {self.remote.base_url} answered HTTP {response.status_code} "
                                 f"without a task document (id, status): {response.text[:200]!r}")
        return doc

    def _ended(self, doc: dict[str, Any], request: InvocationRequest) -> str:
        error = doc.get("error")
        message = error.get("message", "") if isinstance(error, dict) else ""
        name = doc.get("full_name") or f"{request.namespace}.{request.name}"
        return (f"remote child task {doc['id']} ({name}) on host {self.remote.base_url} ended "
                f"{doc['status']}" + (f": {message}" if message else ""))

    def _result(self, doc: dict[str, Any], request: InvocationRequest) -> InvocationResult:
        steps = doc.get("steps") if request.wait else None
        results = {s["name"]: s.get("results") for s in steps or () if isinstance(s, dict) and "name" in s}
        return InvocationResult(
            doc["id"], str(doc.get("namespace") or request.namespace), str(doc.get("name") or request.name),
            str(doc.get("version") or request.version or ""), doc["status"],
            str(doc.get("correlation_id") or request.correlation_id), results)

    def _log_extra(self, request: InvocationRequest) -> dict[str, Any]:
        """Structured fields (the ``fields`` the host's log formatters print)."""
        return {"fields": {"correlation_id": request.correlation_id, "remote_host": self.remote.base_url,
                           "namespace": request.namespace, "task_id": request.caller.id,
                           "step": request.caller_step}}


class RemoteRoutePlugin:
    """Built-in plugin: routes calls to the namespaces of ``remote_hosts`` to those hosts.

    ``client_factory`` makes the one ``httpx.AsyncClient`` (tests pass one with an
    ``httpx.MockTransport``); ``sleep`` waits between polls (tests pass a no-op); ``now`` is the
    wall clock used to read ``Retry-After`` dates.
    """

    def __init__(self, remote_hosts: Iterable[RemoteHost], *, client_factory: ClientFactory = default_client,
                 sleep: Sleep = anyio.sleep, poll: PollSchedule = PollSchedule(), now: Now = time.time,
                 tracing: Tracing | None = None):
        self.client = SharedClient(client_factory)
        self.routes = {h.namespace: RemoteRoute(h, self.client, sleep=sleep, poll=poll, now=now, tracing=tracing)
                       for h in remote_hosts}

    @hookimpl
    def tasker_route_invocation(self, request: InvocationRequest) -> RemoteRoute | None:
        return self.routes.get(request.namespace)

    async def aclose(self) -> None:
        await self.client.aclose()

    def close(self) -> None:
        self.client.close()
