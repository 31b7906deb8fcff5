"""Prometheus metrics: one :class:`~prometheus_client.CollectorRegistry` per application.

* ``tasker_tasks{namespace,state}`` and ``tasker_steps{namespace,state}`` (steps of unfinished
  tasks; ``state="waiting"``: steps waiting for an event or a timer) — counted in the store at
  scrape time;
* task counters, step duration / attempts / queue-wait histograms and cross-namespace calls, per
  namespace and template@version — derived from the store's transitions at scrape time, so they
  cover the work of every process sharing the database (:mod:`tasker_host.api.store_metrics`);
* ``tasker_http_requests_total{method,status}`` and ``tasker_http_request_duration_seconds{method}``
  (this process's requests);
* ``tasker_store_up`` — 0 when the last store query of a scrape failed.

:meth:`Metrics.render` takes the namespaces the scraping principal may view: series labelled with
namespaces none of which it may view are left out (their names, step names and numbers are those
teams'); a cross-namespace call (``caller_namespace`` → ``namespace``) is shown to both teams.
Series without a namespace label (HTTP, store) are for every valid token. ``None`` (admins):
everything.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tasker_host.api.store_metrics import TransitionMetrics

log = logging.getLogger("tasker_host.api")
NAMESPACE_LABELS = ("namespace", "caller_namespace")


class StoreCollector(Collector):
    """Task and step counts, queried from the store at each scrape; first brings ``transitions``
    (collected after this collector) up to date."""

    def __init__(self, store: Any, transitions: TransitionMetrics):
        self.store, self.transitions = store, transitions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("tasker_store_up", "1 when the store answered the scrape's queries")
        try:
            self.transitions.refresh()
            counts = self.store.count_by_state()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
            log.exception("reading the store for /metrics failed")
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
        self.transitions = TransitionMetrics(store)
        self.registry.register(StoreCollector(store, self.transitions))
        self.registry.register(self.transitions)
        r = self.registry
        self.requests = Counter("tasker_http_requests_total", "HTTP requests", ["method", "status"], registry=r)
        self.request_seconds = Histogram("tasker_http_request_duration_seconds", "HTTP request duration",
                                         ["method"], registry=r)

    def start(self) -> None:
        """Count the store's transitions from now on (at start-up; a failure is logged and the
        first scrape starts counting instead)."""
        try:
            self.transitions.start()
        except Exception:  # noqa: BLE001 - a database outage must not stop the application
            log.warning("metrics: the store did not answer at start-up; counting starts at the first scrape")

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
            kept.samples = [s for s in family.samples if self.visible(s.labels)]
            yield kept

    def visible(self, labels: dict[str, str]) -> bool:
        named = [labels[k] for k in NAMESPACE_LABELS if k in labels]
        return not named or any(ns in self.namespaces for ns in named)
