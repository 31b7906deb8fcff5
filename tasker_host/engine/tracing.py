"""OpenTelemetry spans of the host (docs/observability.md, "Traces").

The host imports only ``opentelemetry-api``. :class:`Tracing` wraps a tracer of the
``TracerProvider`` the composition root was given; without one it uses the API's no-op provider,
whose spans record nothing yet still carry an incoming trace context through (a host without the
SDK passes ``traceparent`` on from its API to its tasks and their calls). Nothing here touches
the API's global provider or propagator: each host (and each test) has its own.

The spans, all short:

* ``create <namespace>.<template>``: a task's creation (resolve, validate). Its context is stored
  on the task (``tasks.traceparent``): the task's step attempts are its children, in whatever
  process and however much later they run. Its parent is the caller's context: the API request
  (``traceparent`` header), or the step attempt that called ``ctx.invoke``.
* ``run <namespace>.<template>/<step>``: ONE attempt of one step, from claim to outcome (never a
  span for a task's whole life). A retry links to the attempt before it.
* the API's server span (``tasker_host.api.tracing``) and the remote route's client spans.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import (
    Link,
    NoOpTracerProvider,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tasker_host.context import TaskInfo
from tasker_host.models import Provenance

SCOPE = "tasker_host"
PARSED_CACHE_SIZE = 4096  # parsed trace contexts kept (tasks in flight share them across steps)


class Tracing:
    """The host's tracer and the W3C trace-context helpers (``traceparent`` text <-> contexts)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.enabled = provider is not None  # False: the API's no-op spans (context passes through)
        self.tracer: Tracer = (provider or NoOpTracerProvider()).get_tracer(SCOPE, _host_version())
        self._propagator = TraceContextTextMapPropagator()
        # a task's steps share one parsed context; a plain dict (emptied when full): creations in
        # worker threads and the runner's loop use it at once, and single dict operations are atomic
        self._parsed: dict[str, Context] = {}

    # -- W3C trace context -------------------------------------------------------------------
    def context_of(self, traceparent: str | None) -> Context | None:
        """The context a ``traceparent`` names; None for none or an invalid one."""
        if not traceparent:
            return None
        context = self._parsed.get(traceparent)
        if context is None:
            context = self._propagator.extract({"traceparent": traceparent})
            if not get_current_span(context).get_span_context().is_valid:
                return None
            if len(self._parsed) >= PARSED_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[traceparent] = context
        return context

    def span_context_of(self, traceparent: str | None) -> SpanContext | None:
        context = self.context_of(traceparent)
        return None if context is None else get_current_span(context).get_span_context()

    def extract(self, headers: Mapping[str, str]) -> Context:
        """The context of incoming headers (``traceparent``, ``tracestate``); empty when absent."""
        return self._propagator.extract(headers)

    # -- spans -------------------------------------------------------------------------------
    @contextmanager
    def creating(self, namespace: str, name: str, version: str, task_id: str, correlation_id: str,
                 traceparent: str | None = None) -> Iterator[Span]:
        """The creation span of a resolved request; parent: ``traceparent`` if given, else the
        current context (the API request's span). Exceptions (an invalid context) are recorded
        and re-raised."""
        span = self.tracer.start_span(
            f"create {namespace}.{name}", context=self.context_of(traceparent), kind=SpanKind.INTERNAL,
            attributes={"tasker.namespace": namespace, "tasker.template": name, "tasker.version": version,
                        "tasker.task_id": task_id, "tasker.correlation_id": correlation_id})
        try:  # (not made current: nothing inside starts spans)
            yield span
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
            raise
        finally:
            span.end()

    @contextmanager
    def calling(self, method: str, url: str, route: str, traceparent: str | None) -> Iterator[Span]:
        """A client span for an HTTP call made on behalf of the attempt ``traceparent`` names
        (the remote route's): name ``<METHOD> <route>``, the URL (no query string) and, set by
        the caller, the response status; a transport error is recorded. Send
        ``traceparent_of(span)`` (or, untraced, ``traceparent``) with the request."""
        span = self.tracer.start_span(f"{method} {route}", context=self.context_of(traceparent),
                                      kind=SpanKind.CLIENT, attributes={"http.request.method": method, "url.full": url})
        try:
            yield span
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
            raise
        finally:
            span.end()

    def start_attempt(self, info: TaskInfo, traceparent: str | None, step: str, attempt: int,
                      plugin: Provenance | None, previous: str | None) -> Span:
        """A step attempt's span (the caller ends it): child of the task's stored context, linked
        to the previous attempt's span (``previous``, a retry after backoff). No stored context:
        a root span (the task was created where nothing traced it)."""
        links = [Link(sc, {"tasker.link": "previous_attempt"})] if (sc := self.span_context_of(previous)) else None
        attributes: dict[str, Any] = {
            "tasker.namespace": info.namespace, "tasker.template": info.name, "tasker.version": info.version,
            "tasker.step": step, "tasker.attempt": attempt, "tasker.task_id": info.id,
            "tasker.correlation_id": info.correlation_id or info.id}
        if plugin is not None:
            attributes["tasker.plugin.distribution"] = plugin.distribution
            attributes["tasker.plugin.version"] = plugin.distribution_version
        return self.tracer.start_span(f"run {info.namespace}.{info.name}/{step}",
                                      context=self.context_of(traceparent) or Context(),
                                      kind=SpanKind.CONSUMER, attributes=attributes, links=links)


@contextmanager
def current_span(span: Span) -> Iterator[None]:
    """``span`` is the current span inside the block (what ``use_span`` does, minus its
    exception handling: the runner records failures itself)."""
    if not span.get_span_context().is_valid:  # an untraced task: nothing to make current
        yield
        return
    token = attach(set_span_in_context(span))
    try:
        yield
    finally:
        detach(token)


def traceparent_of(span: Span) -> str | None:
    """The W3C ``traceparent`` of a span (None: not a valid span context)."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) in a ``traceparent`` (for log lines)."""
    if not traceparent or len(traceparent) < 35:
        return None
    return traceparent[3:35]


def attempt_ended(span: Span, outcome: str, error: Mapping[str, Any] | None = None,
                  exc: BaseException | None = None) -> None:
    """Mark an attempt's span with its outcome (``complete``, ``waiting_retry``, ``error``,
    ``cancelled``) and, for a failure, the error, its class (``permanent`` / ``retryable`` /
    ``timeout``: ``tasker.error.class``) and the exception event; then end it."""
    if span.is_recording() and outcome != "complete":  # (complete: the status stays unset, nothing to add)
        span.set_attribute("tasker.outcome", outcome)
        if error is not None:
            span.set_attribute("tasker.error.class", str(error.get("kind", "retryable")))
            span.set_attribute("error.type", str(error.get("type", "")))
            if exc is not None:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{error.get('type')}: {error.get('message')}"[:500]))
    span.end()


def _host_version() -> str:
    try:
        return version("tasker-host")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
