"""Task routes: create, list, show, cancel, retry, resolve a step.

Order of checks for a creation (nothing is written before the last one):
auth (401) → media type / size / JSON (415 / 413 / 400) → shape (422, every problem) → the
namespace is viewable (else 404, as if unknown) → it is not quarantined (503) → may manage it
(403) → the template resolves (404 with ``available``) → the context satisfies its schema (422,
every violation) → create.

An ``Idempotency-Key`` makes creation safe to retry: the first request answers **201**, a replay
with the same key (in the same namespace) answers **200** with the same task and writes nothing; a
replay whose name, context or version request does not match that task is a **409**.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packaging.version import Version
from starlette.requests import Request
from starlette.routing import Route

from tasker_host.api.access_log import correlation_header, note_task
from tasker_host.api.auth import may, require_principal, visible_namespaces
from tasker_host.api.body import read_json
from tasker_host.api.errors import ApiError, forbidden
from tasker_host.api.requests import (
    CreateRequest,
    encode_cursor,
    idempotency_key,
    parse_create,
    parse_list_query,
    parse_resolve,
)
from tasker_host.api.responses import JSONResponse
from tasker_host.api.state import Api, api_of
from tasker_host.audit import Actor, ActorKind
from tasker_host.auth import Action, Principal
from tasker_host.engine.service import TaskService
from tasker_host.errors import VersionSunsetError
from tasker_host.models import TaskTemplate
from tasker_host.store.base import CreateResult, TaskFilter, TaskRecord
from tasker_host.values import value_problems
from tasker_host.versions import VersionRequest
from tasker_host.views import task_doc

MAX_CHILDREN = 500


def unknown_namespace(api: Api, principal: Principal, namespace: str) -> ApiError:
    visible = visible_namespaces(api, principal)
    known = sorted(api.host.registry.namespaces)
    available = known if visible is None else [ns for ns in known if ns in visible]
    return ApiError(404, "unknown_namespace", f"unknown namespace {namespace!r}", available=available)


def known_namespace(api: Api, namespace: str) -> bool:
    """Served by this host, or quarantined (installed, but claimed by more than one plugin)."""
    registry = api.host.registry
    return namespace in registry.namespaces or bool(registry.namespace_claims(namespace))


def resolve_template(api: Api, principal: Principal, req: CreateRequest) -> TaskTemplate:
    """Check access and resolve the template; validate the context against its schema."""
    registry = api.host.registry
    if not known_namespace(api, req.namespace) or not may(api, principal, Action.SHOW, req.namespace):
        raise unknown_namespace(api, principal, req.namespace)
    registry.namespace(req.namespace)  # a quarantined one: 503 naming the plugins that claim it
    if not may(api, principal, Action.CREATE, req.namespace):
        raise forbidden(f"{principal.name} may not create tasks in namespace {req.namespace!r}")
    template = api.host.service.resolve(req.namespace, req.name, req.version)
    api.host.service.validate_context(template, req.context)
    return template


def _same_request(task: TaskRecord, req: CreateRequest) -> bool:
    if task.name != req.name or dict(task.context) != req.context:
        return False
    return req.version is None or VersionRequest.parse(req.version).select([Version(task.version)]) is not None


async def create_task(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    key = idempotency_key(request.headers)
    req = parse_create(await read_json(request, api.max_body_bytes))
    try:
        template = resolve_template(api, principal, req)
    except VersionSunsetError:  # a replay still answers the task its first request created
        replayed = await api.call(api.host.service.replay, req.namespace, key)
        if replayed is None:
            raise
        return _answer(request, api, req, key, CreateResult(replayed, created=False))
    correlation = correlation_header(request.scope)
    new = api.host.service.prepare(req.namespace, req.name, str(template.version), req.context,
                                   idempotency_key=key, correlation_id=correlation,
                                   actor=api_actor(principal, correlation))
    return _answer(request, api, req, key, await api.creates.create(new))


def _answer(request: Request, api: Api, req: CreateRequest, key: str | None, result: CreateResult) -> JSONResponse:
    note_task(request, result.task)
    if not result.created and not _same_request(result.task, req):
        raise ApiError(409, "idempotency_conflict",
                       f"Idempotency-Key {key!r} was used for another request (task {result.task.id})")
    headers = {"Location": f"{api.prefix}/tasks/{result.task.id}"}
    if not result.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(task_doc(result.task, with_steps=False), status_code=201 if result.created else 200,
                        headers=headers)


async def list_tasks(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    q = parse_list_query(request.query_params)
    visible = visible_namespaces(api, principal)
    namespaces = q.namespaces if visible is None else [ns for ns in (q.namespaces or visible) if ns in visible]
    if namespaces is not None and not namespaces:
        return JSONResponse({"tasks": [], "next_cursor": None})
    query = TaskFilter(namespaces=namespaces, name=q.name, version=q.version, status=q.status,
                       created_after=q.created_after, created_before=q.created_before, after_id=q.after_id,
                       limit=q.limit + 1, newest_first=q.newest_first, id_prefix=q.id_prefix)
    found = await api.call(api.host.service.list_tasks, query)
    page = found[:q.limit]
    cursor = encode_cursor(page[-1].id) if len(found) > q.limit else None
    return JSONResponse({"tasks": [task_doc(t, with_steps=False) for t in page], "next_cursor": cursor})


async def visible_task(request: Request, api: Api, principal: Principal) -> TaskRecord:
    """The task of the path, or 404 when it does not exist or its namespace is not viewable."""
    task_id = request.path_params["task_id"]
    task = None if value_problems(task_id) else await api.call(api.host.service.find_task, task_id)  # (NUL: none)
    if task is None or not may(api, principal, Action.SHOW, task.namespace):
        raise ApiError(404, "not_found", f"no task {task_id!r}")
    note_task(request, task)
    return task


async def full_doc(api: Api, principal: Principal, task: TaskRecord) -> dict[str, Any]:
    """The task document with its steps and the ids of its (viewable) child tasks."""
    children = await api.call(api.host.service.children, task.id, MAX_CHILDREN)
    doc = task_doc(task)
    doc["children"] = [c.id for c in children if may(api, principal, Action.SHOW, c.namespace)]
    return doc


async def show_task(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    task = await visible_task(request, api, principal)
    return JSONResponse(await full_doc(api, principal, task))


async def _act(request: Request, api: Api, principal: Principal, action: Action,
               change: Callable[[TaskService, str, Actor], TaskRecord]) -> JSONResponse:
    """Check the principal may ``action`` the path's task, then ``change(service, task_id, actor)``."""
    task = await visible_task(request, api, principal)
    if not may(api, principal, action, task.namespace):
        raise forbidden(f"{principal.name} may not {action.value} tasks in namespace {task.namespace!r}")
    service = api.host.service
    updated = await api.call(change, service, task.id, api_actor(principal, correlation_header(request.scope)))
    if action is Action.CANCEL:
        api.host.engine.cancel_running(task.id)  # steps running here stop now (on the loop)
    return JSONResponse(await full_doc(api, principal, updated))


async def cancel_task(request: Request) -> JSONResponse:
    api, principal = api_of(request), await require_principal(request)
    return await _act(request, api, principal, Action.CANCEL,
                      lambda service, task_id, actor: service.cancel_task(task_id, actor=actor))


async def retry_task(request: Request) -> JSONResponse:
    api, principal = api_of(request), await require_principal(request)
    return await _act(request, api, principal, Action.RETRY,
                      lambda service, task_id, actor: service.retry_task(task_id, actor=actor))


async def resolve_step(request: Request) -> JSONResponse:
    api, principal = api_of(request), await require_principal(request)
    results = parse_resolve(await read_json(request, api.max_body_bytes, optional=True))
    step = request.path_params["step"]
    return await _act(request, api, principal, Action.RESOLVE,
                      lambda service, task_id, actor: service.resolve_step(task_id, step, results, actor=actor))


def api_actor(principal: Principal, correlation_id: str | None) -> Actor:
    """Who the audit trail records for a request: the token's principal."""
    return Actor.of_token(principal.name, ActorKind.API, correlation_id)


def by_method(path: str, **endpoints: Any) -> Route:
    """One route per path, whatever the methods (so a 405 lists every allowed method in Allow)."""
    async def dispatch(request: Request) -> JSONResponse:
        return await endpoints[request.method.lower()](request)

    return Route(path, dispatch, methods=[m.upper() for m in endpoints])


def routes() -> list[Route]:
    return [
        by_method("/tasks", post=create_task, get=list_tasks),
        by_method("/tasks/{task_id}", get=show_task, delete=cancel_task),
        Route("/tasks/{task_id}/retry", retry_task, methods=["POST"]),
        Route("/tasks/{task_id}/steps/{step}/resolve", resolve_step, methods=["POST"]),
    ]
