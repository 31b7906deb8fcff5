"""Steps that wait for an event or a timer (plugin SDK; see ``docs/waiting.md``).

A handler waits by *returning* what ``ctx.wait_for`` / ``ctx.sleep_until`` build::

    def process(self, ctx):
        approval = ctx.event("approval")          # None until the event came
        if approval is None:
            return ctx.wait_for("approval", schema=APPROVAL, timeout=timedelta(hours=48))
        return {"approved": approval["approved"]}

The attempt ends there: the step is stored as ``waiting`` and holds no worker slot, connection or
lease. It runs again (from the top, like a retry) when the event is sent, or when its timer fires:
then ``ctx.event(name)`` raises :class:`~tasker_host.errors.EventTimeoutError`, which the handler
may catch to decide what a timeout means. ``ctx.wake`` says why the step runs again.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jsonschema

from tasker_host.errors import EventTimeoutError, PermanentError
from tasker_host.store.waits import Wake
from tasker_host.values import value_problems

#: event names: a letter, then letters, digits, ``_``, ``-`` or ``.`` (URL-safe: they are path segments)
EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")


class WakeReason(enum.StrEnum):
    EVENT = "event"  # the event it waited for arrived
    TIMEOUT = "timeout"  # it waited for an event that did not come in time
    TIMER = "timer"  # its ctx.sleep_until time came


@dataclass(frozen=True, slots=True)
class Wait:
    """What a handler returns to wait: an event (with an optional timeout) or a time."""

    event: str | None = None
    schema: Mapping[str, Any] | None = None
    timeout_seconds: float | None = None
    until: float | None = None  # epoch seconds

    def describe(self) -> str:
        return f"event {self.event!r}" if self.event else "a timer"


@dataclass(frozen=True, slots=True)
class WakeInfo:
    """Why a step that waited runs again (``ctx.wake``), and what it was sent."""

    reason: WakeReason
    event: str | None  # the event its last wait was for
    since: float | None  # when it started waiting
    payloads: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # delivered, by name, oldest first


def event_name_problems(name: object) -> list[str]:
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        return [f"event name {name!r} must be a letter followed by up to 99 letters, digits, '_', '-' or '.'"]
    return []


def wait_for(name: str, schema: Mapping[str, Any] | None, timeout: timedelta | float | None,
             config: Mapping[str, Any]) -> Wait:
    """Build (and check) a wait for event ``name``; ``schema`` defaults to the step's declared
    ``handler_config.events.<name>.schema``. Bad arguments raise :class:`PermanentError`."""
    if problems := event_name_problems(name):
        raise PermanentError(problems[0])
    schema = schema if schema is not None else declared_schema(config, name)
    if schema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            raise PermanentError(f"the schema of event {name!r} is not a valid JSON Schema: {exc.message}") from None
        if value_problems(schema):
            raise PermanentError(f"the schema of event {name!r} cannot be stored")
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if seconds is not None and not (isinstance(seconds, (int, float)) and 0 < seconds < math.inf):
        raise PermanentError(f"the timeout of a wait must be a positive duration, not {timeout!r}")
    return Wait(name, dict(schema) if schema is not None else None, float(seconds) if seconds else None)


def sleep_until(when: datetime) -> Wait:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise PermanentError(f"ctx.sleep_until needs a timezone-aware datetime, not {when!r}")
    return Wait(until=when.timestamp())


def declared_schema(config: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """``handler_config: {events: {NAME: {schema: {...}}}}``: known before the step waits, so an
    event sent early is checked too."""
    events = config.get("events")
    declared = events.get(name) if isinstance(events, Mapping) else None
    schema = declared.get("schema") if isinstance(declared, Mapping) else None
    return schema if isinstance(schema, Mapping) else None


def wake_info(wake: Wake) -> WakeInfo:
    wait = wake.wait
    payloads: dict[str, tuple[Any, ...]] = {}
    for e in wake.events:
        payloads[e.name] = (*payloads.get(e.name, ()), e.payload)
    delivered = wait.get("delivered")
    if delivered is not None and any(e.id == delivered for e in wake.events):
        reason = WakeReason.EVENT
    else:
        reason = WakeReason.TIMEOUT if wait.get("event") else WakeReason.TIMER
    return WakeInfo(reason, wait.get("event"), wait.get("since"), payloads)


def event_payload(wake: WakeInfo | None, name: str) -> Any:
    """The latest payload of event ``name`` delivered to the step; None when none was. Raises
    :class:`EventTimeoutError` when the step's last wait, for ``name``, timed out."""
    if wake is None:
        return None
    if wake.reason is WakeReason.TIMEOUT and wake.event == name:
        raise EventTimeoutError(name, wake.since)
    sent = wake.payloads.get(name)
    return sent[-1] if sent else None


def payload_problems(schema: Mapping[str, Any] | None, payload: Any) -> list[dict[str, str]]:
    """Every violation of ``schema`` by ``payload`` (path, message), in a stable order."""
    if schema is None:
        return []
    validator = jsonschema.validators.validator_for(schema)(dict(schema))
    errors = sorted(validator.iter_errors(payload), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [{"path": "payload" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
             "message": e.message} for e in errors]
