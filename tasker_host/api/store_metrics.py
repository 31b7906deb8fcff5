"""Task and step metrics derived from the store's transitions (every process's work).

At each scrape :class:`TransitionMetrics` reads the transitions written since the previous one
(``Store.metric_facts``) and folds them into counters and histograms, labelled by namespace and
template@version (``template``, ``version``):

* ``tasker_tasks_created_total`` / ``_started_total`` (pending → in_progress) /
  ``_completed_total`` / ``_failed_total`` (→ error) / ``_cancelled_total``;
* ``tasker_step_duration_seconds{..., step, outcome}``: each attempt, claim to outcome (``complete``,
  ``retry``, ``error``, ``cancelled``, ``waiting``: the attempt ended in a wait for an event or a timer);
* ``tasker_step_attempts{..., step}``: the attempts a step took, observed when it completes or fails;
* ``tasker_step_retries_total{..., step}``: attempts that will be retried;
* ``tasker_step_queue_wait_seconds``: from a step becoming runnable (created with its dependencies
  done, its last dependency done, or its retry backoff over) to a worker claiming it;
* ``tasker_invocations_total{caller_namespace, namespace}``: child tasks created by ``ctx.invoke``;
* ``tasker_deprecated_version_tasks_total{namespace, target}``: tasks created on a deprecated version
  (``target``: ``namespace.name@version``), labelled with the *caller's* namespace: the parent's for
  ``ctx.invoke``, ``direct`` for the API and the CLI.

Counting starts when the application starts (:meth:`TransitionMetrics.start`): like any Prometheus
counter they restart from zero with the process, and ``rate()`` / ``increase()`` handle that.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tasker_host.store.metric_facts import Fact

log = logging.getLogger("tasker_host.api")
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 7, 10, 15, 20)
TEMPLATE = ("namespace", "template", "version")
TASK_KINDS = ("created", "started", "completed", "failed", "cancelled")
_OUTCOMES = {"complete": "complete", "waiting_retry": "retry", "error": "error", "cancelled": "cancelled",
             "waiting": "waiting"}  # waiting: the attempt returned ctx.wait_for / ctx.sleep_until
_TASK_ENDS = {"complete": "completed", "error": "failed", "cancelled": "cancelled"}
_MAX_OPEN = 100_000  # attempts started and not yet ended, remembered at most
Labels = tuple[str, ...]


class Counts:
    """A counter family: a number per label values (plain dicts: a scrape folds many thousands)."""

    def __init__(self, name: str, doc: str, labels: Sequence[str]):
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.values: dict[Labels, float] = {}

    def inc(self, key: Labels) -> None:
        self.values[key] = self.values.get(key, 0) + 1

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in sorted(self.values.items()):
            family.add_metric(list(key), value)
        return family


class Histograms:
    """A histogram family: per label values, observations per bucket (``le`` inclusive) and their sum."""

    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]):
        self.name, self.doc, self.labels, self.buckets = name, doc, list(labels), tuple(buckets)
        self.values: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, key: Labels, value: float) -> None:
        found = self.values.get(key)
        if found is None:
            found = self.values[key] = ([0] * (len(self.buckets) + 1), [0.0])
        found[0][bisect.bisect_left(self.buckets, value)] += 1
        found[1][0] += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for key, (counts, total) in sorted(self.values.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*map(_bound, self.buckets), "+Inf"), counts, strict=True):
                cumulative += n
                buckets.append((bound, cumulative))
            family.add_metric(list(key), buckets, total[0])
        return family


def _bound(value: float) -> str:
    return str(float(value))


class TransitionMetrics(Collector):
    """The store-derived series; ``refresh`` reads what was written since the last scrape."""

    def __init__(self, store: Any, clock: Callable[[], float] = time.time, limit: int = 50_000,
                 budget_seconds: float = 5.0):
        self.store, self.clock, self.limit, self.budget = store, clock, limit, budget_seconds
        self.tasks = {kind: Counts(f"tasker_tasks_{kind}", f"Tasks {kind} (every process)", TEMPLATE)
                      for kind in TASK_KINDS}
        self.step_seconds = Histograms("tasker_step_duration_seconds", "Step attempt duration, claim to outcome",
                                       (*TEMPLATE, "step", "outcome"), STEP_BUCKETS)
        self.attempts = Histograms("tasker_step_attempts", "Attempts a step took (when it completed or failed)",
                                   (*TEMPLATE, "step"), ATTEMPT_BUCKETS)
        self.retries = Counts("tasker_step_retries", "Step attempts that will be retried", (*TEMPLATE, "step"))
        self.queue_wait = Histograms("tasker_step_queue_wait_seconds", "Runnable step until a worker claimed it",
                                     TEMPLATE, STEP_BUCKETS)
        self.invocations = Counts("tasker_invocations", "Child tasks created by ctx.invoke",
                                  ("caller_namespace", "namespace"))
        self.deprecated = Counts("tasker_deprecated_version_tasks",
                                 "Tasks created on a deprecated version, by the caller's namespace",
                                 ("namespace", "target"))
        self._cursor: Any = None
        self._open: dict[tuple[str, str], float] = {}  # (task, step) → its current attempt's start
        self._lock = threading.Lock()

    def start(self) -> None:
        """Count from now on (the application's start-up)."""
        with self._lock:
            if self._cursor is None:
                _, self._cursor = self.store.metric_facts(None, self.clock())

    def refresh(self) -> None:
        """Fold the transitions written since the last call, ``limit`` at a time, for at most
        ``budget_seconds`` (a backlog beyond it is read by the next scrapes); raises when the
        store fails (what was folded stays folded: each batch moves the cursor)."""
        with self._lock:
            if self._cursor is None:
                _, self._cursor = self.store.metric_facts(None, self.clock())
                return
            deadline = time.monotonic() + self.budget
            while True:
                facts, self._cursor = self.store.metric_facts(self._cursor, self.clock(), self.limit)
                for fact in facts:
                    self.fold(fact)
                if len(facts) < self.limit or time.monotonic() >= deadline:
                    return

    def fold(self, f: Fact) -> None:
        labels = (f.namespace, f.name, f.version)
        if f.step is None:
            self._fold_task(f, labels)
        elif f.to_state == "in_progress":
            self._fold_claim(f, labels)
        elif f.from_state == "in_progress" and f.to_state in _OUTCOMES:
            self._fold_outcome(f, labels)

    def _fold_task(self, f: Fact, labels: Labels) -> None:
        if f.from_state is None:
            self.tasks["created"].inc(labels)
            if f.caller is not None:
                self.invocations.inc((f.caller, f.namespace))
            if f.deprecated:
                self.deprecated.inc((f.caller or "direct", f"{f.namespace}.{f.name}@{f.version}"))
        elif f.from_state == "pending" and f.to_state == "in_progress":
            self.tasks["started"].inc(labels)
        elif f.to_state in _TASK_ENDS:
            self.tasks[_TASK_ENDS[f.to_state]].inc(labels)

    def _fold_claim(self, f: Fact, labels: Labels) -> None:
        assert f.step is not None
        if len(self._open) >= _MAX_OPEN:  # forget the oldest (its outcome was lost)
            self._open.pop(next(iter(self._open)))
        self._open[(f.task_id, f.step)] = f.at
        # the step's row still describes this attempt (else it moved on since: not measured)
        if f.from_state != "in_progress" and f.started_at == f.at and f.ready_since is not None:
            self.queue_wait.observe(labels, max(0.0, f.at - f.ready_since))

    def _fold_outcome(self, f: Fact, labels: Labels) -> None:
        assert f.step is not None
        started = self._open.pop((f.task_id, f.step), None)
        if started is None and f.started_at is not None and f.started_at <= f.at:
            started = f.started_at  # claimed before counting began
        outcome = _OUTCOMES[f.to_state]
        if started is not None:
            self.step_seconds.observe((*labels, f.step, outcome), max(0.0, f.at - started))
        if outcome == "retry":
            self.retries.inc((*labels, f.step))
        elif outcome in ("complete", "error") and f.attempts:
            self.attempts.observe((*labels, f.step), f.attempts)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families: list[Counts | Histograms] = [*self.tasks.values(), self.step_seconds, self.attempts,
                                                   self.retries, self.queue_wait, self.invocations, self.deprecated]
            yield from (f.family() for f in families)
