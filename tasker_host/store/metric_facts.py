"""Transitions as the metrics read them: ``Store.metric_facts(cursor, now, limit)``.

``/metrics`` derives its task and step counters and histograms from the store's transitions (the
log every process writes), so on PostgreSQL the numbers cover the work of every worker process,
not only this one (see docs/observability.md, "Metrics"). Each scrape reads only the transitions
written since the previous one: the caller keeps the opaque cursor the store hands back.

A :class:`Fact` is one transition plus what the folding needs: the task's template, the caller
namespace of a task created by ``ctx.invoke`` (on its creation only), and for a step transition the
step's current ``attempts`` / ``started_at`` and ``ready_since`` (when the step last became
runnable: its ``ready_at``, or the latest completion of its dependencies when that is later).

Semantics every implementation follows: ``metric_facts(None, ...)`` returns no facts and a cursor at
the current end of the log; with a cursor, the facts written after it (at most ``limit``, oldest
first) and the cursor after them; a fact is returned once. The SQL store orders by the
transitions' ids; on PostgreSQL an id can commit after a higher one (concurrent transactions),
so the cursor remembers the ids skipped over and returns them when they appear, for
:data:`GAP_SECONDS` (an id still missing then was rolled back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GAP_SECONDS = 120.0  # how long a skipped transition id is awaited
MAX_GAPS = 10_000  # skipped ids remembered at most (a larger jump: a rolled back batch)


@dataclass(frozen=True, slots=True)
class Fact:
    task_id: str
    step: str | None  # None: a task transition
    from_state: str | None
    to_state: str
    at: float
    namespace: str
    name: str
    version: str
    caller: str | None = None  # creation of a child task: its parent's namespace
    attempts: int | None = None  # step transitions: the step's current values
    started_at: float | None = None
    ready_since: float | None = None
    deprecated: bool = False  # creation of a task on a deprecated version (a lifecycle warning)


@dataclass(frozen=True, slots=True)
class IdCursor:
    """The SQL store's cursor: the highest id read, and skipped ids (id → when first missed)."""

    after: int
    gaps: Mapping[int, float] = field(default_factory=dict)

    def advance(self, ids: Iterable[int], now: float) -> IdCursor:
        """The cursor after reading ``ids`` (ascending, each above ``after`` or a gap)."""
        gaps = {i: t for i, t in self.gaps.items() if now - t < GAP_SECONDS}
        after = self.after
        for i in ids:
            gaps.pop(i, None)
            if i > after:
                if i - after - 1 <= MAX_GAPS - len(gaps):
                    gaps.update(dict.fromkeys(range(after + 1, i), now))
                after = i
        return IdCursor(after, gaps)


@dataclass(frozen=True, slots=True)
class CountCursor:
    """The memory store's cursor: transitions read per task."""

    seen: Mapping[str, int] = field(default_factory=dict)


def is_deprecated_creation(warnings: Any) -> bool:
    """Whether a task's recorded ``warnings`` say it was created on a deprecated version."""
    return isinstance(warnings, (list, tuple)) and any(
        isinstance(w, Mapping) and w.get("code") == "deprecated_version" for w in warnings)


def ready_since(ready_at: float | None, depends_on: Iterable[str], completed: Mapping[str, Any]) -> float | None:
    """When a step last became runnable: its ``ready_at`` (creation, retry backoff end) or the
    latest completion among its dependencies, whichever is later."""
    times = [t for t in (ready_at, *(completed.get(d) for d in depends_on)) if isinstance(t, (int, float))]
    return max(times) if times else None
