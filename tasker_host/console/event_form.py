"""The console's form for sending an event to a waiting step, built from the event's JSON Schema:
one input per top-level property (a checkbox for a boolean, a number input for a number or an
integer, a select for an ``enum`` of strings, a text input for a string, a JSON text area for
anything else), and the posted form turned back into the payload. The service checks the payload
against the schema (every problem listed) before anything is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from tasker_host.store.base import StepRecord

FIELD_PREFIX = "field."  # form names of the payload's properties (csrf_token stays apart)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "checkbox", "number", "integer", "select", "text" or "json"
    required: bool
    description: str = ""
    options: tuple[str, ...] = ()

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name


@dataclass(frozen=True)
class EventForm:
    event: str
    fields: tuple[Field, ...]  # empty: one JSON text area for the whole payload


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(schema.get("enum"), list) and all(isinstance(v, str) for v in schema["enum"]):
        return "select"
    return {"boolean": "checkbox", "number": "number", "integer": "integer", "string": "text"}.get(
        kind if isinstance(kind, str) else "", "json")


def form_of(step: StepRecord) -> EventForm | None:
    """The form for the event ``step`` waits for (None: it waits for a timer, or got its event)."""
    wait = step.wait or {}
    if step.state.value != "waiting" or not wait.get("event") or wait.get("delivered") is not None:
        return None
    schema = wait.get("schema") or {}
    properties = schema.get("properties") if schema.get("type") == "object" else None
    if not isinstance(properties, Mapping):
        return EventForm(wait["event"], ())
    required = set(schema.get("required") or ())
    return EventForm(wait["event"], tuple(
        Field(name, _kind(sub if isinstance(sub, Mapping) else {}), name in required,
              str((sub or {}).get("description", "")) if isinstance(sub, Mapping) else "",
              tuple((sub or {}).get("enum") or ()) if _kind(sub if isinstance(sub, Mapping) else {}) == "select"
              else ())
        for name, sub in properties.items()))


def payload_of(form: EventForm, posted: FormData) -> tuple[Any, list[str]]:
    """The payload the posted form stands for, and what could not be read (problems)."""
    if not form.fields:
        return _json(str(posted.get("payload") or "").strip() or "null", "payload")
    payload: dict[str, Any] = {}
    problems: list[str] = []
    for f in form.fields:
        raw = posted.get(f.input_name)
        text = raw.strip() if isinstance(raw, str) else ""
        if f.kind == "checkbox":
            payload[f.name] = raw is not None
            continue
        if not text:
            continue  # left empty: absent (the schema says whether it is required)
        if f.kind in ("number", "integer"):
            value, problem = _json(text, f.name)
            if problem or isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{f.name}: {text!r} is not a number")
                continue
            payload[f.name] = value
        elif f.kind == "json":
            value, problem = _json(text, f.name)
            problems += problem
            payload[f.name] = value
        else:
            payload[f.name] = text
    return payload, problems


def _json(text: str, what: str) -> tuple[Any, list[str]]:
    try:
        return json.loads(text), []
    except ValueError as exc:
        return None, [f"{what}: not JSON ({exc})"]
