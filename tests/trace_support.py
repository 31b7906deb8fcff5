"""Spans for tracing tests: a TracerProvider per host with the SDK's in-memory exporter, and
helpers to read one trace's tree (parents, links) out of what several hosts exported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tasker_host.engine.tracing import traceparent_of


@dataclass
class Recorder:
    """A host's own provider and what it exported."""

    provider: TracerProvider = field(default_factory=TracerProvider)
    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)

    def __post_init__(self) -> None:
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def root(self, name: str = "client") -> tuple[object, str]:
        """A finished root span (the caller) and its ``traceparent``."""
        span = self.provider.get_tracer("test").start_span(name)
        span.end()
        parent = traceparent_of(span)
        assert parent is not None
        return span, parent


def by_name(spans: Iterable[ReadableSpan], name: str) -> list[ReadableSpan]:
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} among {sorted({s.name for s in spans})}"
    return sorted(found, key=lambda s: s.attributes.get("tasker.attempt", 0) if s.attributes else 0)


def one(spans: Iterable[ReadableSpan], name: str) -> ReadableSpan:
    [span] = by_name(spans, name)
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    return span.get_span_context().span_id


def trace_ids(spans: Iterable[ReadableSpan]) -> set[int]:
    return {s.get_span_context().trace_id for s in spans}


def step_spans(spans: Iterable[ReadableSpan], namespace: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(f"run {namespace}.")]
