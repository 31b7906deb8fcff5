"""Catalogue routes (the seed's ``/handlers`` shapes, from :mod:`tasker_host.views`):

* ``GET /handlers`` → ``{"namespaces": [{namespace, description, owner, provider, handlers: [...]}]}``
  (summaries: ``id, namespace, version, full_name, description, step_count, step_names,
  available_versions``), every version of every template;
* ``GET /handlers/{namespace}`` → one namespace document, each handler in detail (steps with
  their dependencies, retry settings, context schema, provider);
* ``GET /handlers/{namespace}/{name}?version=SPEC`` → the template SPEC resolves to (newest stable
  without SPEC), in detail, with ``available_versions``.

Only namespaces the principal may view are listed; another namespace is a 404 as if unknown. A
viewable namespace quarantined by a plugin conflict is a 503 ``namespace_quarantined``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tasker_host.api.auth import require_principal, visible_namespaces
from tasker_host.api.requests import parse_version_param
from tasker_host.api.state import Api, api_of
from tasker_host.api.tasks import known_namespace, unknown_namespace
from tasker_host.auth import Principal
from tasker_host.views import namespace_doc, template_doc


async def catalogue(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    registry, visible = api.host.registry, visible_namespaces(api, principal)
    names = [ns for ns in registry.namespaces if visible is None or ns in visible]
    return JSONResponse({"namespaces": [namespace_doc(registry, ns, detail=False) for ns in names]})


def _namespace(request: Request, api: Api, principal: Principal) -> str:
    namespace = request.path_params["namespace"]
    visible = visible_namespaces(api, principal)
    if not known_namespace(api, namespace) or (visible is not None and namespace not in visible):
        raise unknown_namespace(api, principal, namespace)
    api.host.registry.namespace(namespace)  # a quarantined one: 503 naming the plugins that claim it
    return namespace


async def namespace(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    return JSONResponse(namespace_doc(api.host.registry, _namespace(request, api, principal)))


async def template(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    spec = parse_version_param(request.query_params)
    chosen = api.host.registry.resolve(_namespace(request, api, principal), request.path_params["name"], spec)
    return JSONResponse(template_doc(chosen, api.host.registry))


def routes() -> list[Route]:
    return [
        Route("/handlers", catalogue, methods=["GET"]),
        Route("/handlers/{namespace}", namespace, methods=["GET"]),
        Route("/handlers/{namespace}/{name}", template, methods=["GET"]),
    ]
