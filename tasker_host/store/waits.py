"""Values of steps that wait, and of the events sent to tasks (both stores use them).

A handler that returns ``ctx.wait_for(name, ...)`` or ``ctx.sleep_until(when)`` ends its attempt
with a ``waiting`` :class:`~tasker_host.store.base.StepOutcome` carrying a *wait document*
(``steps.wait``)::

    {"event": "approval" | None,   # the event it waits for (None: a plain timer)
     "schema": {...} | None,       # JSON Schema its payload must satisfy (checked by the sender's edge)
     "timeout_at": float | None,   # epoch seconds: give up waiting then (with an event)
     "until": float | None,        # epoch seconds: wake then (a timer, ctx.sleep_until)
     "since": float,               # when it started waiting
     "delivered": int | None}      # the id of the event that woke it, once one did

Recording it: the step becomes ``waiting`` with no lease, ``attempts - 1`` (a wait is not a
failed attempt: the retry limit counts failures only) and ``ready_at`` = ``timeout_at`` or
``until`` (NULL: no timer). A waiting step is claimable exactly like a retry once ``ready_at`` has
passed, through the same partial index: that is the durable timer. If an event of that name is
already stored and not delivered (sent before the step waited), it is delivered at once.

Sending an event (:meth:`Store.send_event`) stores it and, when a step of the task waits for that
name and has not been woken yet, delivers it: the event records the step, the step's wait records
the event, and its ``ready_at`` becomes now. Events to a task that has ended (complete,
cancelled, resolved manually) are refused; an ``idempotency_key`` already used for that task and
event name returns the original event and writes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NewEvent:
    task_id: str
    name: str
    payload: Any = None
    idempotency_key: str | None = None
    sender: str | None = None  # who sent it: a principal's name, or "task:ID" for ctx.send


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    task_id: str
    name: str
    payload: Any
    idempotency_key: str | None
    sender: str | None
    created_at: float
    step: str | None = None  # the step it was delivered to (None: not yet)
    delivered_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_id": self.task_id, "name": self.name, "payload": self.payload,
                "idempotency_key": self.idempotency_key, "sender": self.sender, "created_at": self.created_at,
                "step": self.step, "delivered_at": self.delivered_at}


class SendStatus(enum.StrEnum):
    SENT = "sent"  # stored (and delivered if a step waited for it)
    DUPLICATE = "duplicate"  # the idempotency key was used: the original event, nothing written
    NO_TASK = "no_task"
    ENDED = "ended"  # the task is complete, cancelled or resolved: nothing can use the event


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    event: EventRecord | None = None
    woke: str | None = None  # the waiting step this event woke, if any
    task_status: str | None = None


@dataclass(frozen=True, slots=True)
class Wake:
    """What a step that waited before learns when it runs again: its last wait document and the
    events delivered to it (oldest first)."""

    wait: Mapping[str, Any]
    events: tuple[EventRecord, ...] = ()


def wait_doc(event: str | None, schema: Mapping[str, Any] | None, timeout_at: float | None,
             until: float | None, since: float) -> dict[str, Any]:
    return {"event": event, "schema": dict(schema) if schema is not None else None, "timeout_at": timeout_at,
            "until": until, "since": since, "delivered": None}


def wake_at(wait: Mapping[str, Any]) -> float | None:
    """When a waiting step's timer fires (``ready_at``): its timeout or its wake time, if any."""
    times = [t for t in (wait.get("timeout_at"), wait.get("until")) if t is not None]
    return min(times) if times else None
