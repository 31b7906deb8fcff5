"""Issuing and checking API tokens (the service side of :mod:`tasker_host.auth`'s token model).

Persistence is a :class:`~tasker_host.auth.TokenStore` (``host.tokens``; see
:mod:`tasker_host.store.tokens`)::

    issued = issue_token(host.tokens, "ci-payments", grants=["payments", "shared:view"], now=clock.now())
    issued.token              # tsk_...: show it once, it is not stored anywhere
    authenticate(host.tokens, issued.token)   # -> Principal("ci-payments", grants=(...))
    host.tokens.revoke_token("ci-payments", clock.now())
    authenticate(host.tokens, issued.token)   # -> None
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from tasker_host.audit import Actor, AuditAction, entry_for
from tasker_host.auth import Grant, IssuedToken, Principal, TokenRecord, TokenStore, new_token, token_digest
from tasker_host.errors import ConfigurationError

__all__ = ["MAX_NAME_LENGTH", "authenticate", "check_token_request", "issue_token", "revoke_token", "token_doc"]

MAX_NAME_LENGTH = 200
_ID_LIKE = re.compile(r"[0-9a-f]{32}")  # what token ids look like: such names would be ambiguous
_BEARER = re.compile(r"bearer\s+", re.IGNORECASE)


def check_token_request(name: str, *, admin: bool = False, grants: Iterable[Grant | str] = (),
                        ) -> tuple[str, tuple[Grant, ...]]:
    """The stripped name and the parsed, de-duplicated grants of a token request; raises
    :class:`ConfigurationError` for an empty, overlong or id-like name, a malformed grant, or
    admin together with grants / neither (what :func:`issue_token` checks before storing)."""
    name = name.strip()
    if not name:
        raise ConfigurationError("a token needs a name (who or what uses it, e.g. ci-payments)")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(f"token name too long ({len(name)} characters, at most {MAX_NAME_LENGTH})")
    if _ID_LIKE.fullmatch(name):
        raise ConfigurationError(f"token name {name!r} looks like a token id: pick a descriptive name")
    parsed = tuple(dict.fromkeys(g if isinstance(g, Grant) else Grant.parse(g) for g in grants))
    if admin and parsed:
        raise ConfigurationError("an admin token may do everything: give it no namespace grants")
    if not admin and not parsed:
        raise ConfigurationError("a token needs admin rights or at least one namespace grant")
    return name, parsed


def issue_token(tokens: TokenStore, name: str, *, admin: bool = False, grants: Iterable[Grant | str] = (),
                now: float, actor: Actor | None = None) -> IssuedToken:
    """Create and store a token for ``name``: an admin, or the given namespace grants (exactly one
    of the two). Grants are :class:`Grant` objects or text (``payments``, ``payments:view``).

    Raises :class:`ConfigurationError` (nothing stored) when :func:`check_token_request` refuses the
    request or the name is already in use.
    """
    name, parsed = check_token_request(name, admin=admin, grants=grants)
    token = new_token()
    record = TokenRecord(id=uuid.uuid4().hex, name=name, digest=token_digest(token), admin=admin,
                         grants=parsed, created_at=now)
    audit = None if actor is None else entry_for(actor, AuditAction.TOKEN_CREATE, now, target=name, details={
        "admin": admin, "grants": [str(g) for g in parsed]})
    tokens.add_token(record, **({} if audit is None else {"audit": audit}))
    return IssuedToken(record, token)


def revoke_token(tokens: TokenStore, id_or_name: str, *, now: float, actor: Actor | None = None) -> TokenRecord | None:
    """Revoke a token (by id or name; see :meth:`TokenStore.revoke_token`), recorded in the audit
    trail for ``actor`` when it revokes (not when the token was revoked already)."""
    if actor is None:
        return tokens.revoke_token(id_or_name, now)
    return tokens.revoke_token(id_or_name, now, audit=entry_for(actor, AuditAction.TOKEN_REVOKE, now,
                                                                  target=id_or_name))


def authenticate(tokens: TokenStore, bearer: str | None) -> Principal | None:
    """The principal of an active token, or None (unknown, revoked, empty).

    ``bearer`` is the token itself; an ``Authorization`` header value (``Bearer tsk_...``) works too.
    """
    token = (bearer or "").strip()
    if scheme := _BEARER.match(token):
        token = token[scheme.end():]
    if not token:
        return None
    record = tokens.token_by_digest(token_digest(token))
    return record.principal if record is not None and record.active else None


def token_doc(record: TokenRecord) -> dict[str, Any]:
    """A token's document for ``--json`` and the API: never the token, never its digest."""
    from tasker_host.views import iso

    return {"id": record.id, "name": record.name, "admin": record.admin,
            "grants": [str(g) for g in record.grants], "created_at": iso(record.created_at),
            "revoked": not record.active, "revoked_at": iso(record.revoked_at)}
