"""Event routes: ``POST /tasks/{id}/events/{name}`` sends an event to a task (a manager's
approval, a provider's webhook), ``GET /tasks/{id}/events`` lists the task's events.

Order of checks for a send (nothing is written before the last one): auth (401) → the task exists
and its namespace is viewable (404) → may ``signal`` in it (403) → Idempotency-Key (422) → media
type / size / JSON (415 / 413 / 400) → the name and payload (422 ``invalid_request``, every
problem) → the payload satisfies the schemas declared for the event (422 ``invalid_event``, every
violation) → the task has not ended (409 ``task_ended``) → stored. The body is the payload (any
JSON value; an empty body sends ``null``).

A first send answers **201**; a replay with the same ``Idempotency-Key`` (same task and event
name) answers **200** with the original event (header ``Idempotent-Replayed: true``) and writes
nothing, even after the task has ended.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from tasker_host.api.access_log import correlation_header
from tasker_host.api.auth import may, require_principal
from tasker_host.api.body import read_json
from tasker_host.api.errors import forbidden
from tasker_host.api.requests import idempotency_key
from tasker_host.api.responses import JSONResponse
from tasker_host.api.state import api_of
from tasker_host.api.tasks import api_actor, visible_task
from tasker_host.auth import Action
from tasker_host.store.waits import SendStatus


async def send_event(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    task = await visible_task(request, api, principal)
    if not may(api, principal, Action.SIGNAL, task.namespace):
        raise forbidden(f"{principal.name} may not send events to tasks in namespace {task.namespace!r}")
    key = idempotency_key(request.headers)
    payload = await read_json(request, api.max_body_bytes, optional=True)
    name = request.path_params["name"]
    result = await api.call(api.host.service.send_event, task.id, name, payload, idempotency_key=key,
                            sender=principal.name, actor=api_actor(principal, correlation_header(request.scope)))
    assert result.event is not None
    duplicate = result.status is SendStatus.DUPLICATE
    doc = {**result.event.as_dict(), "woke": result.woke, "duplicate": duplicate}
    headers = {"Idempotent-Replayed": "true"} if duplicate else None
    return JSONResponse(doc, status_code=200 if duplicate else 201, headers=headers)


async def list_events(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    task = await visible_task(request, api, principal)
    events = await api.call(api.host.service.task_events, task.id)
    return JSONResponse({"events": [e.as_dict() for e in events]})


def routes() -> list[Route]:
    return [
        Route("/tasks/{task_id}/events/{name}", send_event, methods=["POST"]),
        Route("/tasks/{task_id}/events", list_events, methods=["GET"]),
    ]
