"""State sets and small helpers both store implementations share (one reading of base.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tasker_host.models import StepState, TaskState
from tasker_host.store.base import StepOutcome, StepResultBatch, TaskChange, WorkerRecord

#: tasks whose steps may be claimed
LIVE_TASK = frozenset({TaskState.PENDING, TaskState.IN_PROGRESS})
#: tasks nothing can change any more (``error`` is not final: it can be retried, resolved, cancelled)
FINAL_TASK = frozenset({TaskState.COMPLETE, TaskState.CANCELLED, TaskState.RESOLVED_MANUALLY})
#: steps that wait to be claimed (once ``pending_deps`` is 0 and ``ready_at`` has passed)
WAITING_STEP = frozenset({StepState.PENDING, StepState.WAITING_RETRY, StepState.WAITING})
#: steps ``cancel_task`` cancels
CANCELLABLE_STEP = frozenset({StepState.PENDING, StepState.WAITING_RETRY, StepState.WAITING,
                              StepState.IN_PROGRESS})
#: steps whose dependents may run (they count as no longer remaining)
DONE_STEP = frozenset({StepState.COMPLETE, StepState.RESOLVED_MANUALLY})
#: states a :class:`StepOutcome` may carry
OUTCOME_STATE = frozenset({StepState.COMPLETE, StepState.WAITING_RETRY, StepState.ERROR, StepState.CANCELLED,
                           StepState.WAITING})
#: task states in which an event can no longer be used: sending one is refused
ENDED_TASK = FINAL_TASK
WAIT_REASON = "waiting for {what}"

CLAIM_REASON = "claimed by {owner}"
RECLAIM_REASON = "lease of {previous} expired; claimed by {owner}"
RELEASE_REASON = "worker {owner} stopped; released"
#: the lease owner of a step whose worker was reaped: that worker can neither renew nor record it
LOST_OWNER = "{owner} (lost)"


def worker_dead(worker: WorkerRecord, now: float, watching_since: float | None) -> bool:
    """Silent for longer than its ``dead_after`` (counted from ``watching_since`` at the earliest)."""
    return max(worker.heartbeat_at, watching_since or worker.heartbeat_at) + worker.dead_after < now


def silence_cause(worker: WorkerRecord) -> str:
    at = datetime.fromtimestamp(worker.heartbeat_at, UTC).isoformat(timespec="milliseconds")
    return f"no heartbeat since {at.replace('+00:00', 'Z')}"


def gone_cause(worker: WorkerRecord) -> str:
    return f"process {worker.pid} on {worker.hostname} is gone"


def lost_error(attempt: int, worker: str, cause: str) -> dict[str, Any]:
    """``last_error`` of a step whose worker was presumed dead while it ran the step."""
    return {"type": "WorkerLost", "kind": "lost", "message": f"attempt {attempt} lost with worker {worker} ({cause})"}


def check_outcomes(outcomes: Sequence[StepOutcome]) -> None:
    """Refuse a batch with an outcome state :meth:`Store.record` cannot apply (before writing)."""
    for o in outcomes:
        if StepState(o.state) not in OUTCOME_STATE:
            raise ValueError(f"a step outcome cannot be {o.state!r} (step {o.step!r} of task {o.task_id})")


def task_error(outcome: StepOutcome) -> dict[str, Any]:
    """The task's ``error`` when ``outcome`` (an ``error`` outcome) fails it: the cause + the step."""
    error: dict[str, Any] = dict(outcome.error or {})
    error["step"] = outcome.step
    return error


def error_reason(outcome: StepOutcome) -> str:
    message = (outcome.error or {}).get("message") if isinstance(outcome.error, Mapping) else None
    return f"step {outcome.step} failed" + (f": {message}" if message else "")


def merge_changes(changes: Sequence[TaskChange]) -> tuple[TaskChange, ...]:
    """One change per task (first ``before``, last ``after``), dropping round trips."""
    merged: dict[str, TaskChange] = {}
    for c in changes:
        first = merged.get(c.task_id)
        merged[c.task_id] = TaskChange(c.task_id, first.before if first else c.before, c.after)
    return tuple(c for c in merged.values() if c.before != c.after)


def split_waits(outcomes: Sequence[StepOutcome]) -> tuple[list[StepOutcome], list[StepOutcome]]:
    """(the other outcomes, the ``waiting`` ones): stores record waits on a path of their own."""
    others: list[StepOutcome] = []
    waits: list[StepOutcome] = []
    for o in outcomes:
        (waits if StepState(o.state) is StepState.WAITING else others).append(o)
    return others, waits


def join_batches(first: StepResultBatch, second: StepResultBatch) -> StepResultBatch:
    if not first.changes and not first.rejected:
        return second
    return StepResultBatch(merge_changes([*first.changes, *second.changes]), (*first.rejected, *second.rejected))
