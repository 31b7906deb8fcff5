"""``GET /audit``: the audit trail, newest first, paginated like ``GET /tasks``.

Admins read every row (those without a namespace too: tokens, console sign-ins); any other
principal the rows of the namespaces it manages (the ``audit`` action, a manage action, so a
plugin's ``tasker_authorize`` may widen or narrow it). Asking for a namespace it does not manage,
or having none, is a 403.

Query: ``namespace`` (repeatable), ``since`` (ISO-8601 or epoch seconds, inclusive), ``limit``
(1-200, default 50), ``cursor`` (the ``next_cursor`` of the previous page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import Route

from tasker_host.api.auth import may, require_principal
from tasker_host.api.errors import forbidden, invalid_request, problem
from tasker_host.api.requests import _limit, _timestamp, unknown_params
from tasker_host.api.responses import JSONResponse
from tasker_host.api.state import Api, api_of
from tasker_host.audit import AuditFilter, audit_doc
from tasker_host.auth import Action, Principal
from tasker_host.values import value_problems

PARAMS = ("namespace", "since", "limit", "cursor")
CURSOR_PREFIX = "a"


@dataclass(frozen=True, slots=True)
class AuditQuery:
    namespaces: list[str] | None
    since: float | None
    before_id: int | None
    limit: int


def parse_audit_query(params: QueryParams) -> AuditQuery:
    problems = unknown_params(params, PARAMS)
    problems += [p.as_dict() for k, v in params.multi_items() for p in value_problems(v, k)]
    namespaces = list(params.getlist("namespace"))
    if any(not ns for ns in namespaces):
        problems.append(problem("namespace", "must not be empty"))
    since = _timestamp(params.get("since"), "since", problems)
    limit = _limit(params.get("limit"), problems)
    before = _cursor(params.get("cursor"), problems)
    if problems:
        raise invalid_request(f"invalid query ({len(problems)} problem(s))", problems)
    return AuditQuery(namespaces or None, since, before, limit)


def _cursor(value: str | None, problems: list[dict[str, str]]) -> int | None:
    if value is None:
        return None
    if not (value.startswith(CURSOR_PREFIX) and value[1:].isdigit() and len(value) < 20):
        problems.append(problem("cursor", "not a cursor this API returned (use next_cursor as is)"))
        return None
    return int(value[1:])


def managed_namespaces(api: Api, principal: Principal) -> list[str]:
    """The namespaces whose audit trail the principal may read (not for admins: they read all)."""
    candidates = {*api.host.registry.namespaces, *(g.namespace for g in principal.grants)}
    return sorted(ns for ns in candidates if may(api, principal, Action.AUDIT, ns))


def scope(api: Api, principal: Principal, asked: list[str] | None) -> list[str] | None:
    """The namespaces to list (None: every row), or a 403."""
    if principal.admin:
        return asked
    managed = managed_namespaces(api, principal)
    if asked is None:
        if not managed:
            raise forbidden(f"{principal.name} manages no namespace: the audit trail is for admins and "
                            "a namespace's managers")
        return managed
    refused = [ns for ns in asked if ns not in managed]
    if refused:
        raise forbidden(f"{principal.name} may not read the audit trail of {', '.join(map(repr, refused))} "
                        "(admins, or the namespace's managers)")
    return asked


async def list_audit(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    q = parse_audit_query(request.query_params)
    namespaces = scope(api, principal, q.namespaces)
    query = AuditFilter(namespaces=namespaces, since=q.since, before_id=q.before_id, limit=q.limit + 1)
    found = await api.call(api.host.service.list_audit, query)
    page = found[:q.limit]
    cursor = f"{CURSOR_PREFIX}{page[-1].id}" if len(found) > q.limit else None
    return JSONResponse({"entries": [audit_doc(r) for r in page], "next_cursor": cursor})


def routes() -> list[Route]:
    return [Route("/audit", list_audit, methods=["GET"])]


def openapi_paths(p: str) -> dict[str, Any]:
    """``GET /audit`` in the OpenAPI document (its schemas are inline)."""
    from tasker_host.api.openapi import errors, param
    from tasker_host.api.requests import DEFAULT_LIMIT, MAX_LIMIT
    from tasker_host.audit import ActorKind, AuditAction

    text, maybe = {"type": "string"}, {"type": ["string", "null"]}
    entry = {"type": "object", "properties": {
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "principal": text,
        "token_name": maybe, "actor_kind": {"type": "string", "enum": [k.value for k in ActorKind]},
        "os_user": maybe, "action": {"type": "string", "enum": [a.value for a in AuditAction]},
        "namespace": maybe, "target": maybe, "details": {"type": "object"}, "correlation_id": maybe}}
    page = {"type": "object", "required": ["entries", "next_cursor"],
            "properties": {"entries": {"type": "array", "items": entry}, "next_cursor": maybe}}
    when = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}
    return {f"{p}/audit": {"get": {
        "operationId": "listAudit", "summary": "The audit trail, newest first (admins; managers: their namespaces)",
        "parameters": [
            param("namespace", "query", {"type": "array", "items": {"type": "string", "minLength": 1}},
                  "only these namespaces (repeatable); a non-admin must manage each", style="form", explode=True),
            param("since", "query", when, "at or after (ISO-8601 or epoch seconds)"),
            param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                     "default": DEFAULT_LIMIT}),
            param("cursor", "query", {"type": "string", "pattern": "^a[0-9]+$"}, "next_cursor of the previous page"),
        ],
        "responses": {"200": {"description": "A page of audit rows",
                              "content": {"application/json": {"schema": page}}}, **errors(401, 403, 422)}}}}
