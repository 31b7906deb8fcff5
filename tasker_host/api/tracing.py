"""One server span per HTTP request, parent: the request's ``traceparent`` header.

Our own middleware rather than ``opentelemetry-instrumentation-asgi``: the host's spans must come
from the ``TracerProvider`` given to ``build_host`` (no global provider or propagator), the core
depends only on ``opentelemetry-api`` (the instrumentation package would be one more dependency,
whose semantic-convention switches change between releases), and what a request span needs here
is a dozen lines. Without an SDK the span is the API's non-recording one, which still carries the
incoming context: a task created by the request joins the caller's trace (``tasks.traceparent``).

Attributes: ``http.request.method``, ``url.path``, ``http.route`` (the matched route template),
``http.response.status_code``; a 5xx marks the span as an error. Headers (the bearer token among
them) and the query string are never recorded.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, use_span
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasker_host.engine.tracing import Tracing

_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    def __init__(self, app: ASGIApp, tracing: Tracing):
        self.app, self.tracing = app, tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ()) if k in _PROPAGATED}
        method = scope["method"]
        span = self.tracing.tracer.start_span(
            method, context=self.tracing.extract(carrier), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]})
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_and_watch)
        finally:
            if span.is_recording():
                _finish(span, scope, method, status)
            span.end()


def _finish(span: Any, scope: Scope, method: str, status: int) -> None:
    route = getattr(scope.get("route"), "path", None)
    if route:
        template = scope.get("root_path", "") + route
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
