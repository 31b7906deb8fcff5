"""Prometheus metrics: one :class:`~prometheus_client.CollectorRegistry` per application.

* ``tasker_tasks{namespace,state}`` and ``tasker_steps{namespace,state}`` (steps of unfinished
  tasks; ``state="waiting"``: steps waiting for an event or a timer) — counted in the store at
  scrape time (:mod:`tasker_host.api.stats`);
* ``tasker_step_duration_seconds{namespace,step,outcome}`` (histogram; ``outcome`` complete,
  error, retry, or waiting: an attempt that ended in a wait) and
  ``tasker_step_retries_total{namespace,step}``, ``tasker_tasks_created_total{namespace}`` — fed by
  the host's lifecycle events (only steps run by this process's engine);
* ``tasker_http_requests_total{method,status}`` and ``tasker_http_request_duration_seconds{method}``;
* ``tasker_store_up`` — 0 when the last count query failed.

:meth:`Metrics.render` takes the namespaces the scraping principal may view: series labelled with
another ``namespace`` are left out (their names, step names and numbers are that team's); series
without a namespace label (HTTP, store) are for every valid token. ``None`` (admins): everything.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tasker_host.engine.events import EventKind, LifecycleEvent

log = logging.getLogger("tasker_host.api")
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_OUTCOMES = {EventKind.STEP_COMPLETED: "complete", EventKind.STEP_FAILED: "error",
             EventKind.STEP_RETRYING: "retry", EventKind.STEP_WAITING: "waiting"}  # waiting: the attempt's run
_MAX_TRACKED = 100_000  # started steps awaiting their outcome (cancelled steps never report one)


class StoreCollector(Collector):
    """Task and step counts, queried from the store at each scrape."""

    def __init__(self, store: Any):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("tasker_store_up", "1 when the store answered the count query")
        try:
            counts = self.store.count_by_state()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
            log.exception("counting tasks for /metrics failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        tasks = GaugeMetricFamily("tasker_tasks", "Tasks by namespace and state", labels=["namespace", "state"])
        for (ns, state), n in sorted(counts.tasks.items()):
            tasks.add_metric([ns, state], n)
        yield tasks
        steps = GaugeMetricFamily("tasker_steps", "Steps of unfinished tasks by namespace and state",
                                  labels=["namespace", "state"])
        for (ns, state), n in sorted(counts.steps.items()):
            steps.add_metric([ns, state], n)
        yield steps


class Metrics:
    def __init__(self, store: Any):
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store))
        r = self.registry
        self.step_seconds = Histogram("tasker_step_duration_seconds", "Step attempt duration",
                                      ["namespace", "step", "outcome"], buckets=STEP_BUCKETS, registry=r)
        self.retries = Counter("tasker_step_retries_total", "Step attempts that will be retried",
                               ["namespace", "step"], registry=r)
        self.created = Counter("tasker_tasks_created_total", "Tasks created through this process",
                               ["namespace"], registry=r)
        self.requests = Counter("tasker_http_requests_total", "HTTP requests", ["method", "status"], registry=r)
        self.request_seconds = Histogram("tasker_http_request_duration_seconds", "HTTP request duration",
                                         ["method"], registry=r)
        self._started: dict[tuple[str, str, int | None], float] = {}
        self._lock = threading.Lock()

    def subscribe(self, events: Any) -> Callable[[], None]:
        """Listen to ``host.events``; returns the unsubscribe function."""
        return events.subscribe(self.on_event)

    def on_event(self, event: LifecycleEvent) -> None:
        if event.kind is EventKind.TASK_CREATED:
            self.created.labels(event.namespace).inc()
            return
        if event.step is None:
            return
        key = (event.task_id, event.step, event.attempt)
        if event.kind is EventKind.STEP_STARTED:
            with self._lock:
                if len(self._started) >= _MAX_TRACKED:  # forget the oldest (its outcome was lost)
                    self._started.pop(next(iter(self._started)))
                self._started[key] = event.at
            return
        outcome = _OUTCOMES.get(event.kind)
        if outcome is None:
            return
        if event.kind is EventKind.STEP_RETRYING:
            self.retries.labels(event.namespace, event.step).inc()
        with self._lock:
            started = self._started.pop(key, None)
        if started is not None:
            self.step_seconds.labels(event.namespace, event.step, outcome).observe(max(0.0, event.at - started))

    def observe_request(self, method: str, status: int, seconds: float) -> None:
        self.requests.labels(method, str(status)).inc()
        self.request_seconds.labels(method).observe(seconds)

    def render(self, namespaces: Collection[str] | None = None) -> bytes:
        """The exposition text; only series of ``namespaces`` (None: every namespace)."""
        if namespaces is None:
            return generate_latest(self.registry)
        return generate_latest(NamespaceView(self.registry, frozenset(namespaces)))


class NamespaceView(Collector):
    """``source``'s metric families without the samples labelled with a namespace not in ``namespaces``."""

    def __init__(self, source: Collector, namespaces: frozenset[str]):
        self.source, self.namespaces = source, namespaces

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            kept = copy.copy(family)
            kept.samples = [s for s in family.samples
                            if "namespace" not in s.labels or s.labels["namespace"] in self.namespaces]
            yield kept
