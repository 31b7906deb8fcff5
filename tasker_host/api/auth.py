"""Bearer authentication and namespace authorization for the routes.

* :func:`bearer_token` parses ``Authorization: Bearer <token>``;
* :func:`host_authenticator` checks tokens against ``host.tokens`` (the token store);
* :func:`require_principal` → the request's :class:`Principal` or 401;
* :func:`may` / :func:`visible_namespaces` apply :func:`tasker_host.auth.authorize` (plugin
  ``tasker_authorize`` opinions first, then the default policy).

A namespace the principal cannot view is reported as if it did not exist (404); an action it may
not take in a namespace it can view is a 403.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from tasker_host.api.access_log import note
from tasker_host.api.errors import unauthorized
from tasker_host.api.state import Api, Authenticate, api_of
from tasker_host.auth import SHARED_NAMESPACE, Action, Principal, authorize

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.host import Host

_BEARER = re.compile(r"Bearer[ \t]+(\S+)[ \t]*", re.IGNORECASE)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    match = _BEARER.fullmatch(header or "")
    return match.group(1) if match else None


def host_authenticator(host: Host) -> Authenticate:
    """Tokens checked against the host's token store (``tasker-host tokens`` issues them)."""
    from tasker_host.tokens import authenticate

    tokens: Any = host.tokens
    return lambda bearer: authenticate(tokens, bearer)


async def require_principal(request: Request) -> Principal:
    api = api_of(request)
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise unauthorized("this endpoint needs an 'Authorization: Bearer <token>' header")
    principal = await api.call(api.authenticate, token)
    if principal is None:
        raise unauthorized("unknown or revoked token")
    note(request, principal=principal.name)
    return principal


def may(api: Api, principal: Principal, action: Action, namespace: str) -> bool:
    return authorize(api.host.plugin_manager, principal, action, namespace)


def visible_namespaces(api: Api, principal: Principal) -> list[str] | None:
    """The namespaces whose tasks and templates the principal may list (None: all, for admins).

    Candidates are the registry's namespaces, the principal's grants and ``shared``; each is
    asked of the policy (so a plugin's ``tasker_authorize`` can widen or narrow the view).
    """
    if principal.admin:
        return None
    candidates = {*api.host.registry.namespaces, *(g.namespace for g in principal.grants), SHARED_NAMESPACE}
    return sorted(ns for ns in candidates if may(api, principal, Action.INDEX, ns))
