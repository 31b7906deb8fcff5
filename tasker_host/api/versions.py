"""Version lifecycle and drain status (:mod:`tasker_host.drain`):

* ``GET /versions?days=N`` → ``{"days", "since", "versions": [...]}`` for every namespace the
  principal may view;
* ``GET /versions/{namespace}`` and ``GET /versions/{namespace}/{name}`` → the same for one
  namespace / one template (another namespace: 404 ``unknown_namespace``, as if unknown).

Each version: lifecycle (``deprecated``, ``replaced_by`` and the installed ``replacement``,
``sunset``, ``sunset_reached``), exact task counts (``pending``, ``in_progress``,
``waiting_on_children``, ``error``, ...), ``drained``, ``last_started_at`` and ``started_by``
(caller namespace → tasks started in the last ``days`` days, default 30; ``direct``: through the
API or the CLI; callers the principal may not view are counted as ``other namespaces``).
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tasker_host.api.auth import may, require_principal, visible_namespaces
from tasker_host.api.errors import ApiError, invalid_request, problem
from tasker_host.api.requests import unknown_params
from tasker_host.api.state import Api, api_of
from tasker_host.api.tasks import known_namespace, unknown_namespace
from tasker_host.auth import Action, Principal
from tasker_host.drain import DEFAULT_DAYS, MAX_DAYS, versions_doc
from tasker_host.values import value_problems


def parse_days(params: QueryParams) -> int:
    problems = unknown_params(params, ("days",))
    text = params.get("days")
    days = DEFAULT_DAYS
    if text is not None:
        if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
            problems.append(problem("days", f"must be a whole number of days from 1 to {MAX_DAYS}"))
        else:
            days = int(text)
    if problems:
        raise invalid_request(f"invalid query ({len(problems)} problem(s))", problems)
    return days


async def _answer(request: Request, api: Api, principal: Principal, namespaces: list[str] | None,
                  name: str | None = None) -> JSONResponse:
    days = parse_days(request.query_params)
    service = api.host.service
    stats = await api.call(service.version_stats, namespaces, days)
    scope = namespaces if namespaces is not None else sorted(set(api.host.registry.namespaces)
                                                              | {k[0] for k in stats.versions()})
    doc = versions_doc(api.host.registry, stats, days=days, now=service.clock.now(), namespaces=scope, name=name,
                       sees=lambda ns: may(api, principal, Action.SHOW, ns))
    if namespaces is not None and len(namespaces) == 1 and not doc["versions"] and name is None \
            and not known_namespace(api, namespaces[0]):
        raise unknown_namespace(api, principal, namespaces[0])
    if name is not None and not doc["versions"]:
        names = sorted({t.name for t in api.host.registry.templates_in(scope[0])})
        raise ApiError(404, "unknown_template", f"namespace {scope[0]!r} has no template {name!r} and no "
                       "tasks of one", available=names)
    return JSONResponse(doc)


def _viewable(request: Request, api: Api, principal: Principal) -> str:
    namespace = request.path_params["namespace"]
    if value_problems(namespace) or value_problems(request.path_params.get("name", "")) \
            or not may(api, principal, Action.SHOW, namespace):  # (a NUL names nothing stored)
        raise unknown_namespace(api, principal, namespace)
    return namespace


async def all_versions(request: Request) -> JSONResponse:
    api, principal = api_of(request), await require_principal(request)
    return await _answer(request, api, principal, visible_namespaces(api, principal))


async def namespace_versions(request: Request) -> JSONResponse:
    api, principal = api_of(request), await require_principal(request)
    return await _answer(request, api, principal, [_viewable(request, api, principal)])


async def template_versions(request: Request) -> JSONResponse:
    api, principal = api_of(request), await require_principal(request)
    return await _answer(request, api, principal, [_viewable(request, api, principal)], request.path_params["name"])


def routes() -> list[Route]:
    return [
        Route("/versions", all_versions, methods=["GET"]),
        Route("/versions/{namespace}", namespace_versions, methods=["GET"]),
        Route("/versions/{namespace}/{name}", template_versions, methods=["GET"]),
    ]

