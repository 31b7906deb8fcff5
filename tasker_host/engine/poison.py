"""Recording a batch that the database refused: find the outcome at fault, fail its step with
the cause, record the rest.

The runner records many steps' outcomes in one transaction. When that transaction fails for a
reason that is not about the connection (a value the database cannot store, a bug in a driver's
encoding), one outcome spoils the batch for everyone. :func:`record_one_by_one` then records the
outcomes one at a time; an outcome that fails alone is replaced by an ``error`` outcome that says
why (no results, a plain message), so the step ends and its task fails visibly instead of
stopping the runner. Only if even that cannot be recorded is the outcome dropped (logged): the
step keeps its lease and runs again after it expires, counted against its retry limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from tasker_host.errors import StoreUnavailableError
from tasker_host.models import StepState
from tasker_host.store.base import StepOutcome, StepResultBatch

log = logging.getLogger("tasker_host.engine")

Record = Callable[[Sequence[StepOutcome]], Awaitable[StepResultBatch]]
MESSAGE_LIMIT = 500  # characters of the database's complaint kept in the step's error


def unrecordable(outcome: StepOutcome, exc: BaseException) -> StepOutcome:
    """The ``error`` outcome that replaces one the database refused to store."""
    cause = _plain(f"{type(exc).__name__}: {exc}")
    message = f"the step's {outcome.state.value} outcome could not be recorded ({cause})"
    return replace(outcome, state=StepState.ERROR, reason=message, results=None, ready_at=None,
                   error={"type": "UnrecordableOutcome", "kind": "permanent", "message": message})


async def record_one_by_one(record: Record, batch: Sequence[StepOutcome],
                            ) -> tuple[list[StepOutcome], StepResultBatch]:
    """Record ``batch`` one outcome per transaction. Returns the outcomes as applied (a refused
    one replaced by its ``error`` outcome) and the merged result. Connection failures are not
    handled here: they propagate (``record`` retries them)."""
    applied: list[StepOutcome] = []
    changes: list[Any] = []
    rejected: list[StepOutcome] = []
    for outcome in batch:
        result, used = await _record_or_fail(record, outcome)
        if result is None:
            rejected.append(outcome)
            continue
        applied.append(used)
        changes.extend(result.changes)
        rejected.extend(result.rejected)
    return applied, StepResultBatch(tuple(changes), tuple(rejected))


async def _record_or_fail(record: Record, outcome: StepOutcome) -> tuple[StepResultBatch | None, StepOutcome]:
    try:
        return await record([outcome]), outcome
    except StoreUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - about this outcome: fail its step instead
        failed = unrecordable(outcome, exc)
        log.error("step %s of task %s: %s; the step is failed", outcome.step, outcome.task_id, failed.reason)
    try:
        return await record([failed]), failed
    except StoreUnavailableError:
        raise
    except Exception:  # noqa: BLE001 - nothing more to try: the lease expires, the step runs again
        log.exception("step %s of task %s: even its failure could not be recorded; it runs again "
                      "when its lease expires", outcome.step, outcome.task_id)
        return None, outcome


def _plain(text: str) -> str:
    """ASCII-safe and short: the complaint may itself carry the value the database refused."""
    text = text.replace("\x00", "\\0").encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."
