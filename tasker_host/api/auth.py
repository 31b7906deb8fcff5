"""Bearer authentication and namespace authorization for the routes.

* :func:`bearer_token` parses ``Authorization: Bearer <token>``;
* :func:`host_authenticator` checks tokens against ``host.tokens`` (the token store);
* :func:`require_principal` → the request's :class:`Principal` or 401;
  :func:`optional_principal` → the same, or None when no token is sent (health details);
* :func:`may` / :func:`visible_namespaces` apply :func:`tasker_host.auth.authorize` (plugin
  ``tasker_authorize`` opinions first, then the default policy).

A namespace the principal cannot view is reported as if it did not exist (404); an action it may
not take in a namespace it can view is a 403.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from tasker_host.api.access_log import note
from tasker_host.api.errors import unauthorized
from tasker_host.api.state import Api, Authenticate, api_of
from tasker_host.auth import SHARED_NAMESPACE, Action, Principal, authorize, token_digest

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.host import Host

_BEARER = re.compile(r"Bearer[ \t]+(\S+)[ \t]*", re.IGNORECASE)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    match = _BEARER.fullmatch(header or "")
    return match.group(1) if match else None


def host_authenticator(host: Host, cache_seconds: float = 0.0) -> Authenticate:
    """Tokens checked against the host's token store (``tasker-host tokens`` issues them).

    With ``cache_seconds`` > 0 an accepted token's principal is remembered that long, sparing a
    database read per request. A revocation reaches the cache at once where the token store
    pushes revocations (PostgreSQL, memory: see :func:`watch_revocations`), else within that
    time. Unknown or revoked tokens are never cached.
    """
    from tasker_host.tokens import authenticate

    tokens: Any = host.tokens
    check = partial(authenticate, tokens)
    return TokenCache(check, cache_seconds) if cache_seconds > 0 else check


class TokenCache:
    """Remembers accepted bearer tokens (by digest) for ``seconds``; bounded in size. A miss is
    checked once: requests that arrive together with an unknown or expired token wait for that
    one check instead of each querying the token store."""

    def __init__(self, check: Authenticate, seconds: float, *, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self._check, self._seconds, self._capacity, self._clock = check, seconds, capacity, clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._checking = threading.Lock()
        self._generation = 0  # bumped by forget / clear: a check that overlapped one is not kept

    def forget(self, digest: str) -> None:
        """Drop one token (by digest): it was revoked. Safe from any thread."""
        self._generation += 1
        self._entries.pop(digest, None)

    def clear(self) -> None:
        """Drop every token (revocations may have been missed). Safe from any thread."""
        self._generation += 1
        self._entries.clear()

    def cached(self, bearer: str) -> Principal | None:
        """The principal if the token was accepted lately (no I/O: safe on the event loop)."""
        hit = self._entries.get(token_digest(bearer))
        return hit[1] if hit is not None and hit[0] > self._clock() else None

    def __call__(self, bearer: str) -> Principal | None:
        if (principal := self.cached(bearer)) is not None:
            return principal
        with self._checking:
            if (principal := self.cached(bearer)) is not None:
                return principal  # checked by the request this one waited for
            key, generation = token_digest(bearer), self._generation
            principal = self._check(bearer)
            if principal is None:
                self._entries.pop(key, None)
                return None
            if len(self._entries) >= self._capacity:
                self._entries.clear()
            if generation == self._generation:  # else a revocation may have raced this check
                self._entries[key] = (self._clock() + self._seconds, principal)
            return principal


def watch_revocations(authenticate: Authenticate, tokens: Any) -> Any:
    """Make ``tokens``' revocations reach the ``authenticate`` cache at once: the listener to
    close at shutdown, or None (no cache, or a token store that does not push revocations)."""
    if not isinstance(authenticate, TokenCache) or not getattr(tokens, "revocations_pushed", False):
        return None
    return tokens.listen(authenticate.forget, authenticate.clear)


async def require_principal(request: Request) -> Principal:
    api = api_of(request)
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise unauthorized("this endpoint needs an 'Authorization: Bearer <token>' header")
    cached = getattr(api.authenticate, "cached", None)  # a TokenCache answers hits on the loop
    principal = cached(token) if cached is not None else None
    if principal is None:
        principal = await api.call(api.authenticate, token)
    if principal is None:
        raise unauthorized("unknown or revoked token")
    note(request, principal=principal.name)
    return principal


async def optional_principal(request: Request) -> Principal | None:
    """None without an ``Authorization`` header; else the principal, or 401 for a bad token
    (a probe that sends a token wants to know that it is not accepted)."""
    if "authorization" not in request.headers:
        return None
    return await require_principal(request)


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
